"""Aim backend of :class:`~trackbook.store.Store`: an on-disk Aim repository (``aim:///path``).

MLflow's concepts map onto an Aim run as trackbook's writers lay them out (see
:mod:`trackbook.columns`): params in ``run["hparams"]`` (nested dicts flattened with
dots), key-value tags in ``run["tags"]``, status and parent run in ``run["trackbook"]``.
Runs written by plain Aim read too: FINISHED once closed, RUNNING while active.
"""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trackbook import _aim
from trackbook import columns as C
from trackbook import layout as L
from trackbook.errors import RunNotFound
from trackbook.store.base import RunRecord, Store


class AimStore(Store):
    """Runs in an Aim repository.

    Example:
        >>> store = AimStore("aim:///data/aim")  # doctest: +SKIP
    """

    kind = "aim"
    run_id_pattern = re.compile(r"[0-9a-f]{24}")

    def __init__(self, uri: str, *, cache_dir: str | Path | None = None) -> None:
        super().__init__(uri, cache_dir=cache_dir)
        self.path = _aim.aim_path(uri)
        self._repo = _aim.open_repo(self.path)

    def _fresh_repo(self):
        """The repository, with runs closed since the last read made visible."""
        _aim.index_pending_runs(self._repo)
        return self._repo

    # ---------------------------------------------------------------- experiments

    def _list_experiments(self) -> list[dict[str, Any]]:
        return [
            {
                C.EXPERIMENT_ID: e.uuid,
                C.NAME: e.name,
                C.LIFECYCLE_STAGE: "deleted" if e.archived else "active",
                C.CREATION_TIME: None if e.creation_time is None else e.creation_time * 1000.0,
            }
            for e in self._repo.structured_db.experiments()
        ]

    # ----------------------------------------------------------------------- runs

    def _list_runs(self, experiment_ids: list[str] | None) -> list[RunRecord]:
        experiments = self._list_experiments()
        names = {e[C.NAME]: e[C.EXPERIMENT_ID] for e in experiments}
        if experiment_ids is None:
            wanted = {e[C.EXPERIMENT_ID] for e in experiments if e[C.LIFECYCLE_STAGE] == "active"}
        else:
            wanted = set(experiment_ids)
        repo = self._fresh_repo()
        with _aim.many_runs(repo):
            records = [_record(run, names) for run in repo.iter_runs() if not run.archived]
        return [r for r in records if r.experiment_id in wanted]

    def _get_runs(self, run_ids: list[str]) -> list[RunRecord]:
        names = {e[C.NAME]: e[C.EXPERIMENT_ID] for e in self._list_experiments()}
        with _aim.many_runs(self._fresh_repo()) as get:
            runs = [get(run_id) for run_id in run_ids]
            return [_record(run, names) for run in runs if run is not None and not run.archived]

    def _run(self, run_id: str):
        run = self._fresh_repo().get_run(run_id)
        if run is None:
            raise RunNotFound(self._missing_run_message([run_id]))
        return run

    # -------------------------------------------------------------------- history

    def _read_history_after(self, wanted):
        """The base fallback, on purpose: Aim keys a metric's points by a hash of their
        step (sequence version 2; ``SequenceV2Data.range`` refuses, "Range selection
        cannot be applied to data stored with reservoir sampling"), so no read seeks to
        a step. A poll reads only the series whose summary moved (see ``_last_values``),
        each whole, in numpy (``_series_arrays``), and keeps the points after the
        cursors; reading whole, it also sees a point replaced behind the cursor (Aim
        keeps one point per step) and sends that series again."""
        return super()._read_history_after(wanted)

    def _read_history(self, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
        wanted = set(metrics)
        series: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]] = []
        with _aim.many_runs(self._fresh_repo()) as get:
            for run_id in run_ids:  # one run open at a time: each holds its own RocksDB caches
                run, metric = get(run_id), None
                if run is None:
                    raise RunNotFound(self._missing_run_message([run_id]))
                for name, context, _ in run.iter_metrics_info():
                    label = _metric_label(name, context.to_dict())
                    metric = run.get_metric(name, context) if label in wanted else None
                    if metric is not None:
                        series.append((run_id, label, *_series_arrays(metric)))
                del run, metric
        if not series:
            return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
        counts = np.array([len(s[2]) for s in series])

        def labels(i: int) -> pd.Categorical:
            names, codes = np.unique(np.array([s[i] for s in series], dtype=object), return_inverse=True)
            return pd.Categorical.from_codes(np.repeat(codes.astype(np.int32), counts), categories=names)

        return pd.DataFrame(
            {
                C.RUN_ID: labels(0),
                C.METRIC: labels(1),
                C.STEP: np.concatenate([s[2] for s in series]).astype("int64"),
                C.VALUE: np.concatenate([s[3] for s in series]).astype("float64"),
                C.TIMESTAMP: np.round(np.concatenate([s[4] for s in series]) * 1000.0).astype("int64"),
            }
        )

    # ------------------------------------------------------------------ artifacts

    def _list_artifacts(self, run_id: str, path: str) -> list[tuple[str, int | None]]:
        out = []
        for name, artifact in self._run(run_id).artifacts.items():
            if path and not (name == path or name.startswith(path + "/")):
                continue
            out.append((name, _local_size(artifact.uri)))
        return out

    def _download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        artifacts = self._run(run_id).artifacts
        chosen = {n: a for n, a in artifacts.items() if n == path or n.startswith(path + "/")}
        if not chosen:
            raise FileNotFoundError(
                f"Run {run_id} has no artifact {path!r}; it has: {', '.join(sorted(artifacts)) or 'none'}."
            )
        for name, artifact in chosen.items():
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = _local_path(artifact.uri)
            if source is not None:
                shutil.copyfile(source, target)
            else:  # a remote artifact store (s3://...): let Aim fetch it
                artifact.download(str(target.parent))
        return dst / path


_SCALAR = np.dtype([("flag", "u1"), ("value", "<f8")])
_INT_FLAG, _FLOAT_FLAG = 2, 3  # aim.storage.encoding's type bytes for int64 and double


def _series_arrays(metric: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, values and timestamps (s) of one Aim metric, sorted by step.

    Aim's ``numpy()`` decodes point by point. Here each column's raw records are
    taken from the run's RocksDB view and decoded at once with numpy (a record is one
    type byte and 8 little-endian bytes). Anything unexpected (an older sequence
    format, columns not aligned, a non-scalar value) falls back to Aim's own reader.
    """
    try:
        return _raw_series_arrays(metric)
    except (ValueError, AttributeError, KeyError):
        steps, (values, times) = metric.data.view(["val", "time"]).numpy()
        return steps, np.asarray(values, dtype="float64"), np.asarray(times, dtype="float64")


def _raw_series_arrays(metric: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if metric.version != 2:
        raise ValueError("not a version-2 sequence")
    container = metric.series_tree.container
    keys0 = None
    columns = {}
    for column in ("step", "val", "time"):
        keys, values = _column_records(container, column, None if keys0 is None else len(keys0))
        if keys0 is None:
            keys0 = keys
        elif not np.array_equal(keys, keys0):
            raise ValueError("columns are not aligned")
        raw = b"".join(values)
        if len(raw) != _SCALAR.itemsize * len(values):
            raise ValueError("not scalar records")
        records = np.frombuffer(raw, dtype=_SCALAR)
        flags = records["flag"]
        is_int = flags == _INT_FLAG
        if not (is_int | (flags == _FLOAT_FLAG)).all():
            raise ValueError("not numbers")
        as_float = records["value"]
        as_int = as_float.view("<i8")
        if column == "step":
            if not is_int.all():
                raise ValueError("non-integer steps")
            columns[column] = as_int.astype("int64")
        else:
            columns[column] = np.where(is_int, as_int.astype("float64"), as_float)
    order = np.argsort(columns["step"], kind="stable")
    return columns["step"][order], columns["val"][order], columns["time"][order]


def _column_records(container: Any, column: str, expect: int | None = None) -> tuple[np.ndarray, tuple[bytes, ...]]:
    """One column of a sequence: its record keys (the step hashes, as a byte matrix)
    and raw values, in key order.

    A sequence's tree is a prefix view over the run's RocksDB; its records are read
    straight off the database's iterator from the column's first key while the prefix
    holds, not through Aim's view layers (which strip the prefix record by record:
    half of the read); with ``expect`` (the length of a column read before) as that
    many records and a check of the last. Any other container is read through Aim's
    own views.
    """
    from aim.storage.encoding import encode_path

    prefix = encode_path((column,))
    db = getattr(getattr(container, "parent", None), "db", None)
    if db is None:
        items, strip = list(container.view(prefix).items()), 0
    else:
        start = container.absolute_path(prefix)
        found = db.iteritems()
        found.seek(start)
        if expect is None:
            items = list(itertools.takewhile(lambda item: item[0].startswith(start), found))
        else:
            # Keys are sorted, so those sharing the prefix come first and the rest after: drop
            # the rest. One record past the expected count (and the column's own key) shows a
            # column longer than expected.
            items = list(itertools.islice(found, expect + 2))
            while items and not items[-1][0].startswith(start):
                items.pop()
        strip = len(start)
    # zip(*...) splits the pairs in C (a comprehension per pair cost a third of the read)
    keys, values = zip(*items) if items else ((), ())
    if keys and len(keys[0]) == strip:  # the column's own (empty) key sorts first
        keys, values = keys[1:], values[1:]
    width = len(keys[0]) if keys else strip
    joined = b"".join(keys)
    if len(joined) != width * len(keys):  # step hashes are fixed-width; anything else is not a metric
        raise ValueError("keys of different lengths")
    matrix = np.frombuffer(joined, dtype="u1").reshape(len(keys), width)[:, strip:]
    return matrix, values


def _record(run: Any, experiment_ids: dict[str, str]) -> RunRecord:
    meta = run.get(L.AIM_TRACKBOOK_KEY, None)
    meta = meta if isinstance(meta, dict) else {}
    status = meta.get(L.AIM_STATUS) or (C.RUNNING if run.active else C.FINISHED)
    end_time = None if status == C.RUNNING else run.end_time
    metrics, signatures = _last_values(run)
    experiment = run.experiment or ""
    return RunRecord(
        run_id=run.hash,
        name=run.name or "",
        experiment_id=experiment_ids.get(experiment, ""),
        experiment=experiment,
        status=status,
        start_time=None if run.creation_time is None else run.creation_time * 1000.0,
        end_time=None if end_time is None else end_time * 1000.0,
        params=_params(run),
        tags=_tags(run),
        metrics=metrics,
        metric_signatures=signatures,
        parent_run_id=meta.get(L.AIM_PARENT_RUN_ID),
        last_activity=meta.get(L.AIM_HEARTBEAT),
    )


def _params(run: Any) -> dict[str, Any]:
    """A run's params: ``run["hparams"]`` flattened with dots (anything else Aim users
    store there, a string or a list, kept whole as the one param ``hparams``), then the
    scalars set as top-level keys, ``run["learning_rate"] = 3e-4``, which is where
    ``aim.sb3.AimCallback`` puts a model's hyper-parameters; ``hparams`` wins a clash."""
    hparams = run.get(L.AIM_PARAMS_KEY, None)
    params = {k: v for k, v in _top_level(run).items() if _is_param(k, v)}
    if isinstance(hparams, dict):
        params.update(_flatten(hparams))
    elif hparams is not None:
        params[L.AIM_PARAMS_KEY] = hparams
    return params


def _top_level(run: Any) -> dict[str, Any]:
    try:
        attrs = run.meta_run_attrs_tree.collect()
    except (KeyError, IndexError, TypeError):  # a run that never set anything
        return {}
    return attrs if isinstance(attrs, dict) else {}


_RESERVED = {L.AIM_PARAMS_KEY, L.AIM_TAGS_KEY, L.AIM_TRACKBOOK_KEY, *L.AIM_NOT_PARAMS}


def _is_param(key: str, value: Any) -> bool:
    if key in _RESERVED or key.startswith("_") or isinstance(value, dict | list | tuple) or value is None:
        return False
    # An object's repr with its memory address ("<...Logger object at 0x7fa6...>") or a
    # module printout differs in every run: as a param it would split every group.
    return not (isinstance(value, str) and (" at 0x" in value or "\n" in value))


def _tags(run: Any) -> dict[str, str]:
    """Key-value tags from ``run["tags"]`` (a dict), and value-less ones (shown with an
    empty value) from a list or string there and from Aim's own tags (``run.add_tag``)."""
    stored = run.get(L.AIM_TAGS_KEY, None)
    tags: dict[str, str] = {}
    if isinstance(stored, dict):
        tags.update({str(k): str(v) for k, v in stored.items()})
    elif isinstance(stored, list | tuple | set):
        tags.update({str(t): "" for t in stored})
    elif stored is not None:
        tags[str(stored)] = ""
    try:
        own = run.tags  # Aim's tags live in its SQL side; a read-only copy may lack them
    except Exception:  # noqa: BLE001 - without them the run still reads
        own = []
    for tag in own or []:
        tags.setdefault(str(getattr(tag, "name", tag)), "")
    return tags


def _last_values(run: Any) -> tuple[dict[str, float], dict[str, tuple]]:
    """Each metric's last value, and what the history cache checks it by: Aim's summary
    of the series (its last step and value, min and max, ...). A point logged after the
    last step, or one that moves the min or max, changes it; a point logged later at an
    earlier step with a value inside the min and max does not (Aim keeps no count of a
    series' points, and leaves ``first_step`` as it was): ``store.cache.clear()``."""
    out, signatures = {}, {}
    traces = run.meta_run_tree.subtree("traces").collect() if _has_traces(run) else {}
    for ctx_idx, by_name in traces.items():
        context = run.idx_to_ctx(ctx_idx).to_dict()
        for name, info in by_name.items():
            if info.get("dtype", "float") in ("float", "int") and "last" in info:
                label = _metric_label(name, context)
                out[label] = float(info["last"])
                signatures[label] = tuple(repr(info.get(k)) for k in _SUMMARY)
    return out, signatures


_SUMMARY = ("first_step", "first", "last_step", "last", "min", "max", "version")


def _has_traces(run: Any) -> bool:
    try:
        run.meta_run_tree.first_key("traces")
    except (KeyError, StopIteration):
        return False
    return True


def _metric_label(name: str, context: dict[str, Any]) -> str:
    """Aim tells metrics apart by name and context; trackbook by one label."""
    if not context:
        return name
    inner = ",".join(f"{k}={context[k]}" for k in sorted(context))
    return f"{name}[{inner}]"


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if "://" not in uri:
        return Path(uri)
    return None


def _local_size(uri: str) -> int | None:
    path = _local_path(uri)
    return path.stat().st_size if path is not None and path.exists() else None
