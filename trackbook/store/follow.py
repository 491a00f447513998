"""Following runs while they train: :class:`Follower` and what each poll returns, :class:`FollowUpdate`.

A follower remembers, per series (run, metric), the last point it handed out (its
step and timestamp: the *cursor*). Each :meth:`Follower.poll` asks the store only for
the points after the cursors of the series that moved since the previous poll, so a
poll costs about as much as the points that are new, not as the runs' length, on the
backends with an incremental read (MLflow SQL stores, ``trackbook serve``, a stock
``mlflow server``); see each backend's ``_read_history_after``.

Which series moved comes from what a run listing already tells (MLflow's latest
point of each metric, Aim's last value and step, a TensorBoard folder's files); a
series that moved stays asked for one more poll, so that points the listing saw
before the points table did are not left behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook.store import frames as F

if TYPE_CHECKING:
    from collections.abc import Sequence

#: (run id, metric name): one series.
SeriesKey = tuple[str, str]


@dataclass(frozen=True)
class Cursor:
    """Where a follower stands in one series: the last point handed out, and how many."""

    step: int
    timestamp: int  # ms since the epoch
    count: int  # points handed out so far
    at_step: int = 1  # of them at ``step`` (a series logged at one step throughout has them all there)


@dataclass(frozen=True, eq=False)
class FollowUpdate:
    """What one :meth:`Follower.poll` found.

    Attributes:
        points: the points new since the previous poll (the first poll: every point so
            far), with exactly :meth:`Store.history`'s columns and dtypes
            (:data:`trackbook.columns.HISTORY_COLUMNS`), sorted as it sorts them.
        runs: the :meth:`Store.runs` frame of every followed run as of this poll.
        new_runs: ids of the runs seen for the first time in this poll.
        changed: ids of runs seen before whose status or ``stale`` flag changed since
            the previous poll.
        reread: series (run id, metric) whose points in ``points`` are the whole series
            again, not only the new ones: the store showed that a point had been added
            before the cursor (see :class:`Follower`). Replace what you hold of them.
    """

    points: pd.DataFrame
    runs: pd.DataFrame
    new_runs: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    reread: list[SeriesKey] = field(default_factory=list)


class Follower:
    """Follows runs (an experiment's, as new ones start, or a fixed set) point by point.

    Get one with :meth:`Store.follow`; call :meth:`poll` as often as a view refreshes.

    "New" is per series (run, metric): a point is new when its step is greater than
    the step of the last point handed out, or equal with a later timestamp. So a poll
    misses a point logged *after* the follower read past its step at an *earlier*
    step (a late evaluation back-filled at step 100 once step 200 was read), and a
    second point at exactly the step and timestamp of the last one handed out. The
    points table of an MLflow store has no cheap per-series count that would show
    them (counting is as slow as reading), so an MLflow follower misses them; a
    backend that reads whole series anyway (Aim, TensorBoard, the fallback) compares
    the series' length with the points handed out, and when more are there re-reads
    the series whole and names it in :attr:`FollowUpdate.reread`. ``store.history()``
    always has every point.

    Example:
        >>> follower = store.follow("ppo-cartpole", metrics=["rollout/ep_rew_mean"])  # doctest: +SKIP
        >>> update = follower.poll()  # doctest: +SKIP
        >>> update.points.groupby("run_id", observed=True).size()  # doctest: +SKIP
    """

    def __init__(
        self,
        store: Any,  # a trackbook.store.Store (base.py imports this module, not the other way)
        experiment: str | Sequence[str] | None = None,
        *,
        runs: Any = None,
        metrics: str | Sequence[str] | None = None,
        stale_after: float = 900.0,
    ) -> None:
        if experiment is not None and runs is not None:
            raise ValueError(
                "store.follow() got both experiment= and runs=: pass one (runs of an experiment as they "
                "start: experiment=NAME; a fixed set: runs=IDS), or neither for every experiment."
            )
        self.store = store
        self.stale_after = stale_after
        self._metrics = [metrics] if isinstance(metrics, str) else None if metrics is None else list(dict.fromkeys(metrics))
        self._experiment_ids = None if experiment is None else store._resolve_experiments(experiment)
        self._fixed = None
        if runs is not None:
            self._fixed = store._as_run_ids(runs)
            store._require_runs(self._fixed)
        self._run_ids: list[str] = []
        self._states: dict[str, tuple[str, bool]] = {}
        self._cursors: dict[SeriesKey, Cursor] = {}
        self._signatures: dict[SeriesKey, Any] = {}
        self._recent: set[SeriesKey] = set()  # series that got points last poll: asked again once
        self._last_records: list | None = None
        self._last_frame: pd.DataFrame | None = None
        self._empty: pd.DataFrame | None = None

    @property
    def run_ids(self) -> list[str]:
        """Ids of the runs followed so far, in the order they were first seen."""
        return list(self._run_ids)

    def poll(self) -> FollowUpdate:
        """The points, runs and changes since the previous poll.

        Returns:
            A :class:`FollowUpdate`; the first poll carries every point so far.

        Raises:
            StoreUnavailable, AccessDenied: as the store's reads do.
        """
        records = self._records()
        frame = self._runs_frame(records)
        states = dict(zip(frame[C.RUN_ID], zip(frame[C.STATUS], frame[C.STALE].astype(bool), strict=True), strict=True))
        # oldest first, so that new runs are listed (and coloured) in the order they started
        seen = set(self._run_ids)  # not _states: a run deleted and restored is no new run
        new_runs = [r for r in reversed(frame[C.RUN_ID].tolist()) if r not in seen]
        changed = [r for r in frame[C.RUN_ID] if r in self._states and self._states[r] != states[r]]
        status_moved = {r for r in states if r not in self._states or self._states[r][0] != states[r][0]}

        wanted: dict[SeriesKey, Cursor | None] = {}
        signatures = self.store._follow_signatures(records)
        keep = None if self._metrics is None else set(self._metrics)
        for key, signature in signatures.items():
            if keep is not None and key[1] not in keep:
                continue
            if (key not in self._cursors or self._signatures.get(key) != signature
                    or key in self._recent or key[0] in status_moved):
                wanted[key] = self._cursors.get(key)

        run_ids = self._run_ids + new_runs
        raw, reread = self.store._read_history_after(wanted) if wanted else (_no_points(), set())
        # only now: a poll that failed above leaves the follower as it was, to be asked again
        self._signatures.update(signatures)
        self._run_ids = run_ids
        if len(raw):
            points = F.finish_history(raw, self._run_ids)
        else:  # most polls of a quiet store: typed once per set of runs
            if self._empty is None or list(self._empty[C.RUN_ID].cat.categories) != self._run_ids:
                self._empty = F.finish_history(_no_points(), self._run_ids)
            points = self._empty.copy()
        self._advance(points, set(reread))
        self._states = states
        return FollowUpdate(points=points, runs=frame, new_runs=new_runs, changed=changed, reread=sorted(reread))

    # ---------------------------------------------------------------------- helpers

    def _records(self):
        store = self.store
        if self._fixed is not None:
            return store._get_runs(self._fixed)
        return store._list_runs(self._experiment_ids)

    def _runs_frame(self, records: list) -> pd.DataFrame:
        """``runs_frame`` of the records, with only the ``stale`` flags recomputed while
        the records stay as they were (building the frame is most of an idle poll)."""
        if self._last_frame is not None and records == self._last_records:
            return self._last_frame.assign(**{C.STALE: _stale(self._last_frame, records, self.stale_after)})
        frame = F.runs_frame(records, stale_after=self.stale_after)
        self._last_records, self._last_frame = records, frame
        return frame

    def _advance(self, points: pd.DataFrame, reread: set[SeriesKey]) -> None:
        """Move the cursors past ``points`` (already sorted by run, metric, step, timestamp)."""
        self._recent = set()
        if points.empty:
            return
        runs = points[C.RUN_ID].astype(str).to_numpy()
        metrics = points[C.METRIC].astype(str).to_numpy()
        steps = points[C.STEP].to_numpy()
        times = pd.DatetimeIndex(points[C.TIMESTAMP]).asi8 // 1_000_000
        boundary = np.flatnonzero((runs[1:] != runs[:-1]) | (metrics[1:] != metrics[:-1]))
        starts = np.concatenate([[0], boundary + 1])
        ends = np.concatenate([boundary + 1, [len(points)]])
        for start, end in zip(starts, ends, strict=True):
            key = (runs[start], metrics[start])
            # the last point in (step, timestamp) order; rows are sorted by step, then timestamp
            last = end - 1
            old = None if key in reread else self._cursors.get(key)
            step = int(steps[last])
            at_step = int(np.count_nonzero(steps[start:end] == step))
            if old is not None and old.step == step:
                at_step += old.at_step
            count = (0 if old is None else old.count) + int(end - start)
            self._cursors[key] = Cursor(step, int(times[last]), count, at_step)
            self._recent.add(key)


def _stale(frame: pd.DataFrame, records: list, stale_after: float) -> np.ndarray:
    """The ``stale`` column of ``frame`` (rows of ``records``) as of now, by the rule of ``runs_frame``."""
    now_ms = time.time() * 1000.0
    by_id = {r.run_id: F.is_stale(r, now_ms, stale_after) for r in records}
    return np.array([bool(by_id.get(r, False)) for r in frame[C.RUN_ID]], dtype=bool)


def _no_points() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})


def after_cursors(
    frame: pd.DataFrame, wanted: dict[SeriesKey, Cursor | None], *, whole: bool = True
) -> tuple[pd.DataFrame, set[SeriesKey]]:
    """The points of ``frame`` (raw: timestamps in ms) of the ``wanted`` series that lie
    after their cursors.

    With ``whole`` (the backend read each series whole) the series tells more: one
    longer than the points handed out plus the new ones, or with a point at or before
    the cursor's step but a later timestamp than the cursor's, has had a point added
    (or, in Aim, replaced) behind the cursor; it is returned whole, and named in the
    second value.
    """
    if frame.empty or not wanted:
        return frame.iloc[:0], set()
    runs = frame[C.RUN_ID].astype(str).to_numpy()
    metrics = frame[C.METRIC].astype(str).to_numpy()
    keys = pd.MultiIndex.from_arrays([runs, metrics])
    wanted_index = pd.MultiIndex.from_tuples(list(wanted)) if wanted else keys[:0]
    position = wanted_index.get_indexer(keys)
    inside = position >= 0
    cursors = [wanted[k] for k in wanted]
    big = np.iinfo(np.int64).min
    c_step = np.array([big if c is None else c.step for c in cursors], dtype=np.int64)
    c_time = np.array([big if c is None else c.timestamp for c in cursors], dtype=np.int64)
    c_count = np.array([0 if c is None else c.count for c in cursors], dtype=np.int64)
    steps = frame[C.STEP].to_numpy(dtype="int64")
    times = frame[C.TIMESTAMP].to_numpy(dtype="int64")
    pos = np.where(inside, position, 0)
    new = inside & ((steps > c_step[pos]) | ((steps == c_step[pos]) & (times > c_time[pos])))
    total = np.bincount(position[inside], minlength=len(cursors))
    fresh = np.bincount(position[new], minlength=len(cursors))
    # logged after the cursor's point, yet not after it in step order: a late or replaced point
    behind = np.bincount(position[inside & ~new & (times > c_time[pos])], minlength=len(cursors))
    late = (total > c_count + fresh) | (behind > 0)
    late &= np.array([c is not None for c in cursors], dtype=bool) & whole
    keep = new | (inside & late[pos])
    reread = {k for k, is_late in zip(wanted, late, strict=True) if is_late}
    return frame[keep].reset_index(drop=True), reread
