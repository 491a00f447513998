"""The read port: :class:`Store`.

In the shape of Optuna's ``BaseStorage``: a backend implements a handful of private
primitives (list experiments, list runs, read metric points, list and fetch artifacts)
that return plain records, and the public reads live here, once, so the frames have
the same shape whichever backend answered (built by :mod:`trackbook.store.frames`).
Questions asked *of* runs (chains, studies, comparisons, statistics) are functions in
:mod:`trackbook.analysis` that take a store and use only these public reads.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trackbook import columns as C
from trackbook._uri import redact_uri
from trackbook.errors import ExperimentNotFound, InvalidRunId, RunNotFound
from trackbook.store import frames as F
from trackbook.store.frames import RunRecord
from trackbook.store.filters import apply_filter
from trackbook.store.follow import Cursor, Follower, after_cursors

RunsLike = str | Iterable[str] | pd.DataFrame | pd.Series


def _gc_paused(method):
    """Run ``method`` with Python's cyclic garbage collector paused (as it was after).

    A read of thousands of runs makes hundreds of thousands of small objects (records,
    signatures, manifest entries); each time they set off a full collection it walks
    every object of the process (an MLflow and pandas session holds ~300,000), a cost
    that grows with both, and was a third of a cold 10,000-run history(). The few
    cycles a read leaves are collected at the first collection after it.
    """
    import functools
    import gc

    @functools.wraps(method)
    def paused(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return paused


class Store(abc.ABC):
    """Read access to one experiment store; every answer is a pandas DataFrame.

    Get one with :func:`trackbook.connect`. Backends: :class:`~trackbook.store.MLflowStore`
    and :class:`~trackbook.store.AimStore`.
    """

    #: Short backend name, e.g. ``"mlflow"``.
    kind: str = ""
    #: What a run id of this backend looks like; other values are rejected before
    #: they reach a query.
    run_id_pattern: re.Pattern[str] = re.compile(r"[0-9a-f]{8,64}")

    def __init__(self, uri: str, *, cache_dir: str | Path | None = None) -> None:
        from trackbook.store._cache import HistoryCache

        self.uri = uri
        #: Parquet cache of finished runs' histories; ``store.cache.clear()`` empties it.
        self.cache = HistoryCache(uri, None if cache_dir is None else Path(cache_dir))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_uri(self.uri)!r})"

    # ------------------------------------------------------------------ public API

    def experiments(self) -> pd.DataFrame:
        """All experiments, one row each (columns: :data:`trackbook.columns.EXPERIMENT_COLUMNS`).

        Example:
            >>> store.experiments()["name"].tolist()  # doctest: +SKIP
            ['ppo-cartpole', 'hpo-cartpole']
        """
        frame = pd.DataFrame.from_records(self._list_experiments(), columns=C.EXPERIMENT_COLUMNS)
        frame[C.CREATION_TIME] = F.to_utc(frame[C.CREATION_TIME])
        return frame.sort_values(C.NAME, kind="stable", ignore_index=True)

    def runs(
        self,
        experiment: str | Sequence[str] | None = None,
        *,
        filter: str | None = None,  # noqa: A002 - the name users know from MLflow
        status: str | Sequence[str] | None = None,
        run_ids: Iterable[str] | None = None,
        stale_after: float = 900.0,
    ) -> pd.DataFrame:
        """One row per run, newest first (columns documented in :mod:`trackbook.columns`).

        Example:
            >>> runs = store.runs("ppo-cartpole", filter="params.learning_rate > 1e-4")  # doctest: +SKIP

        Args:
            experiment: an experiment name or id, or several; all experiments if None.
            filter: a pandas query over the returned columns. ``params.x``, ``tags.x``
                and ``metrics.x`` may be written bare; names with other characters go in
                backticks (```metrics.eval/mean_reward` > 100``). MLflow's ``=``, ``AND``
                and ``OR`` are accepted too.
            status: keep only runs with this status (or these statuses).
            run_ids: keep only these runs.
            stale_after: seconds without a heartbeat or metric after which a RUNNING
                run is marked ``stale`` (its process died without ending it).

        Returns:
            The runs, sorted by start time, newest first.

        Raises:
            ExperimentNotFound: an experiment name or id is unknown.
            InvalidFilter: the filter does not parse or names a missing column.
        """
        if run_ids is not None:
            ids = self._as_run_ids(list(run_ids))
            records = self._get_runs(ids) if ids else []
            if experiment is not None:
                wanted = set(self._resolve_experiments(experiment))
                records = [r for r in records if r.experiment_id in wanted]
        else:
            exp_ids = None if experiment is None else self._resolve_experiments(experiment)
            records = self._list_runs(exp_ids)
        frame = F.runs_frame(records, stale_after=stale_after)
        if status is not None:
            frame = frame[frame[C.STATUS].isin(F.check_statuses(status))]
        if filter:
            frame = apply_filter(frame, filter)
        return frame.reset_index(drop=True)

    def run(self, run_id: str) -> pd.Series:
        """One run's details: the row :meth:`runs` would return for it, without empty fields.

        Raises:
            InvalidRunId: ``run_id`` is not shaped like a run id of this store.
            RunNotFound: no run has this id.
        """
        return self.lookup([run_id]).iloc[0].dropna()

    def lookup(self, runs: RunsLike, *, stale_after: float = 900.0) -> pd.DataFrame:
        """The runs named by ``runs``, one row each in the order given (columns of :meth:`runs`).

        The one lookup by id: unlike ``runs(run_ids=...)``, which keeps the runs it
        finds, it fails when any id names no run.

        Example:
            >>> store.lookup([run_a, run_b])[["name", "status"]]  # doctest: +SKIP

        Args:
            runs: a run id, run ids, or a frame with a ``run_id`` column.

        Raises:
            InvalidRunId: a value is not shaped like a run id of this store.
            RunNotFound: some ids name no run (every one of them is listed).
        """
        ids = self._as_run_ids(runs)
        found = self.runs(run_ids=ids, stale_after=stale_after)
        missing = [r for r in ids if r not in set(found[C.RUN_ID])]
        if missing:
            raise RunNotFound(self._missing_run_message(missing), run_ids=missing)
        return found.set_index(C.RUN_ID, drop=False).loc[ids].reset_index(drop=True)

    @_gc_paused
    def history(
        self,
        runs: RunsLike,
        metrics: str | Sequence[str] | None = None,
        *,
        max_points: int | None = None,
        cache: bool = True,
    ) -> pd.DataFrame:
        """Metric points of runs as a long frame: ``run_id, metric, step, value, timestamp``.

        Points come in bulk (a few set-based queries or concurrent pages, never one
        call per run and metric); finished runs are then served from a local Parquet
        cache (see :attr:`cache`).

        Example:
            >>> hist = store.history(store.runs("ppo-cartpole"), metrics=["eval/mean_reward"])  # doctest: +SKIP
            >>> hist.pivot_table(index="step", columns="run_id", values="value")  # doctest: +SKIP

        Args:
            runs: a run id, run ids, or a frame from :meth:`runs` (its ``run_id`` column).
            metrics: a metric name or names; all metrics of the runs if None.
            max_points: down-sample each series (run, metric) to at most this many
                points for plotting, keeping every bucket's first, last, min and max
                (see :func:`trackbook.store.frames.downsample`). Off by default: every point is returned.
            cache: read finished runs through the local cache (and fill it).

        Returns:
            Points sorted by run (in the order given), metric and step. NaN and ±inf are
            kept as logged.

        Raises:
            RunNotFound: a run id is unknown.
        """
        run_ids = self._as_run_ids(runs)
        if isinstance(metrics, str):
            metrics = [metrics]
        metrics = None if metrics is None else list(dict.fromkeys(metrics))
        if max_points is not None and (not isinstance(max_points, int) or max_points < 4):
            raise ValueError(f"max_points={max_points!r}: pass an int >= 4 (first, last, min and max of a bucket), or None.")
        if not run_ids or metrics == []:
            return F.empty_history()
        index = {r.run_id: r for r in self._require_runs(run_ids, self._history_index)}

        wanted: dict[str, dict[str, Any]] = {}
        for rid in run_ids:
            sigs = index[rid].signatures()
            wanted[rid] = sigs if metrics is None else {m: sigs.get(m) for m in metrics}
        cache = cache and self._history_cacheable()
        cacheable = {r: wanted[r] for r in run_ids if cache and index[r].status in C.FINAL_STATUSES}
        hits, missed = self.cache.get_many(cacheable) if cacheable else (None, [])
        parts = [] if hits is None else [hits]
        missed_set = set(missed)
        to_read = [r for r in run_ids if r not in cacheable or r in missed_set]
        if to_read:
            names = metrics if metrics is not None else sorted({m for r in to_read for m in wanted[r]})
            fresh = self._read_history(to_read, names)
            parts.append(fresh)
            if cache:
                read = self._signatures_of_read(fresh)
                finished = {
                    r: wanted[r] if read is None else {m: read.get(r, {}).get(m) for m in wanted[r]}
                    for r in to_read if index[r].status in C.FINAL_STATUSES
                }
                self.cache.put_many(fresh, finished, complete=metrics is None)
        frame = F.finish_history(F.concat_points(parts), run_ids)
        return frame if max_points is None else F.downsample(frame, max_points)

    def follow(
        self,
        experiment: str | Sequence[str] | None = None,
        *,
        runs: RunsLike | None = None,
        metrics: str | Sequence[str] | None = None,
        stale_after: float = 900.0,
    ) -> Follower:
        """A :class:`~trackbook.store.follow.Follower`: poll it for the points logged since its last poll.

        Example:
            >>> follower = store.follow("ppo-cartpole")  # doctest: +SKIP
            >>> first = follower.poll()                   # every point so far  # doctest: +SKIP
            >>> later = follower.poll()                   # only the new ones   # doctest: +SKIP
            >>> later.new_runs, later.changed             # runs that started, runs that ended  # doctest: +SKIP

        Args:
            experiment: follow the runs of this experiment (name or id) or these, new runs
                included as they start. With neither this nor ``runs``: every experiment.
            runs: follow only these runs (ids or a frame from :meth:`runs`).
            metrics: a metric name or names; None follows every metric of the runs,
                including metrics they log for the first time later.
            stale_after: as for :meth:`runs`.

        Returns:
            A follower; nothing is read until its first ``poll()``.

        Raises:
            ValueError: both ``experiment`` and ``runs`` were given.
            ExperimentNotFound: an experiment is unknown.
            RunNotFound: a run id is unknown.
        """
        return Follower(self, experiment, runs=runs, metrics=metrics, stale_after=stale_after)

    def artifacts(self, run_id: str, path: str = "") -> pd.DataFrame:
        """Files a run logged, recursively under ``path``: columns ``path, size``."""
        self._require_runs([run_id])
        rows = self._list_artifacts(run_id, path.strip("/"))
        frame = pd.DataFrame.from_records(rows, columns=C.ARTIFACT_COLUMNS)
        frame[C.SIZE] = frame[C.SIZE].astype("Int64")
        return frame.sort_values(C.PATH, ignore_index=True)

    def download_artifact(self, run_id: str, path: str, dst: str | Path | None = None) -> Path:
        """Copy one artifact (file or folder) of a run to ``dst`` (a new temp folder if None).

        Returns:
            The local path of the copy.
        """
        self._require_runs([run_id])
        if dst is None:
            import tempfile

            dst = tempfile.mkdtemp(prefix="trackbook-artifact-")
        Path(dst).mkdir(parents=True, exist_ok=True)
        return Path(self._download_artifact(run_id, path.strip("/"), Path(dst)))

    # ------------------------------------------------------------ backend primitives

    @abc.abstractmethod
    def _list_experiments(self) -> list[dict[str, Any]]:
        """Rows with the keys of ``EXPERIMENT_COLUMNS`` (creation_time in ms)."""

    @abc.abstractmethod
    def _list_runs(self, experiment_ids: list[str] | None) -> list[RunRecord]:
        """Every active run of these experiments (all experiments if None)."""

    @abc.abstractmethod
    def _get_runs(self, run_ids: list[str]) -> list[RunRecord]:
        """The runs with these ids; unknown ids are left out."""

    def _history_cacheable(self) -> bool:
        """Whether this store's metric signatures change with every added point (else no caching)."""
        return True

    def _history_index(self, run_ids: list[str]) -> list[RunRecord]:
        """Records of these runs with status and metric signatures; unknown ids left out.

        Backends with a cheaper way to get just these override it.
        """
        return self._get_runs(run_ids)

    def _signatures_of_read(self, points: pd.DataFrame) -> dict[str, dict[str, Any]] | None:
        """Run id -> {metric: signature} of the series in ``points``, which
        :meth:`_read_history` just read whole, where a backend's signature is one the
        points themselves tell (then the cache keeps that, not the index's, which may
        say :data:`~trackbook.store._mlflow_sql.UNREAD`); None: the index's signatures."""
        return None

    @abc.abstractmethod
    def _read_history(self, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
        """Points of these metrics of existing runs: columns ``run_id, metric, step, value,
        timestamp`` (ms).

        Any order, though (run, metric, step) order saves a sort.
        """

    def _follow_signatures(self, records: list[RunRecord]) -> dict[tuple[str, str], Any]:
        """Per series (run, metric) of these runs, something that changes when points
        are added after its last one: a :class:`Follower` reads only the series whose
        signature moved. Every metric of the runs is listed (new ones too)."""
        return {(r.run_id, m): sig for r in records for m, sig in r.signatures().items()}

    def _read_history_after(
        self, wanted: dict[tuple[str, str], Cursor | None]
    ) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
        """The points of each wanted series (run, metric) after its cursor (all of them
        where the cursor is None): raw, as :meth:`_read_history` returns them.

        Also the series returned whole because points were found before the cursor.
        This fallback reads the series whole and keeps what lies after the cursors
        (:func:`~trackbook.store.follow.after_cursors`); backends that can seek to a
        step override it so that a poll costs the new points only.
        """
        run_ids = list(dict.fromkeys(r for r, _ in wanted))
        metrics = sorted({m for _, m in wanted})
        return after_cursors(self._read_history(run_ids, metrics), wanted)

    @abc.abstractmethod
    def _list_artifacts(self, run_id: str, path: str) -> list[tuple[str, int | None]]:
        """``(path, size)`` of every file under ``path``, recursively."""

    @abc.abstractmethod
    def _download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        """Copy the artifact at ``path`` into the folder ``dst``; return the copy's path."""

    # ---------------------------------------------------------------------- helpers

    def _check_run_id(self, value: object) -> str:
        if not isinstance(value, str) or not self.run_id_pattern.fullmatch(value):
            raise InvalidRunId(
                f"{value!r} is not a {self.kind} run id (expected {self.run_id_pattern.pattern}). "
                f"Pass the id shown in the run_id column of store.runs()."
            )
        return value

    def _as_run_ids(self, runs: RunsLike) -> list[str]:
        if isinstance(runs, pd.DataFrame):
            if C.RUN_ID not in runs.columns:
                raise ValueError(
                    f"runs= got a DataFrame without a '{C.RUN_ID}' column (columns: "
                    f"{list(runs.columns)[:8]}). Pass store.runs(...) or a list of run ids."
                )
            values: Iterable[Any] = runs[C.RUN_ID]
        elif isinstance(runs, str):
            values = [runs]
        elif isinstance(runs, Iterable):
            values = runs
        else:
            raise ValueError(
                f"runs={runs!r}: pass a run id, a list of run ids, or a frame from store.runs(...)."
            )
        return list(dict.fromkeys(self._check_run_id(v) for v in values))

    def _require_runs(self, run_ids: list[str], lookup=None) -> list[RunRecord]:
        """Records of ``run_ids`` from ``lookup`` (``_get_runs`` by default); RunNotFound if any is missing."""
        records = (lookup or self._get_runs)(run_ids)
        missing = set(run_ids) - {r.run_id for r in records}
        if missing:
            raise RunNotFound(self._missing_run_message(sorted(missing)), run_ids=sorted(missing))
        return records

    def _missing_run_message(self, run_ids: list[str]) -> str:
        listed = ", ".join(run_ids[:5]) + (" ..." if len(run_ids) > 5 else "")
        return (
            f"No run with id {listed} in {redact_uri(self.uri)}. Check the id against "
            f"store.runs()['run_id'], or connect to the store that holds it."
        )

    def _resolve_experiments(self, experiment: str | Sequence[str]) -> list[str]:
        wanted = [experiment] if isinstance(experiment, str) else list(experiment)
        known = self._list_experiments()
        by_name = {e[C.NAME]: e[C.EXPERIMENT_ID] for e in known}
        by_id = {e[C.EXPERIMENT_ID] for e in known}
        deleted = {e[C.EXPERIMENT_ID]: e[C.NAME] for e in known if e.get(C.LIFECYCLE_STAGE) == "deleted"}
        ids = []
        for item in wanted:
            found = by_name.get(item, item if item in by_id else None)
            if found in deleted:
                # MLflow deletes an experiment's runs with it: an empty frame would read as
                # "no runs yet", which is not what the store holds.
                raise ExperimentNotFound(
                    f"Experiment {deleted[found]!r} (id {found}) in {redact_uri(self.uri)} is deleted, and "
                    f"its runs with it. Restore it to read them: "
                    f"mlflow experiments restore --experiment-id {found}"
                )
            if found is not None:
                ids.append(found)
            else:
                names = ", ".join(sorted(by_name)) or "none"
                raise ExperimentNotFound(
                    f"No experiment named (or with id) {item!r} in {redact_uri(self.uri)}. "
                    f"Experiments there: {names}."
                )
        return ids
