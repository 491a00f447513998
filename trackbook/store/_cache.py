"""A local Parquet cache of the metric histories of finished runs.

A FINISHED, FAILED or KILLED run rarely changes again, so its points are read from the
store once and from disk after that. Under ``<root>/history/<store key>/``:

- one Parquet file per ``history()`` call that read finished runs (a *batch*: columns
  run_id, metric, step, value, timestamp), so 2,000 small runs are one file, not
  2,000;
- ``manifest.json``: for each cached run, each metric's batch file and *signature*,
  and whether the entry names every metric of the run (``complete``).

A signature is what the store's index reports for a series (for MLflow's SQL stores,
its point count and newest row, see ``_mlflow_sql.history_index``): it changes
whenever a point is added, at whatever step, so an entry is used only while the store
still reports the same signature for every metric asked for, and a metric the entry
lacks is read. What a backend cannot validate it does not offer for caching. Where the
points tell their own signature (MLflow on PostgreSQL: count and largest step), the
entry keeps the one of the points written into it.

Batch files and the manifest are written to temporary names and renamed into place,
so readers see an old complete file or a new complete file, never a partial one;
writers update the manifest under a lock file (POSIX ``flock``), and a reader that
finds a batch file gone (the cache cleared meanwhile) reads those runs from the store.
Batch files no run refers to any more are deleted after a grace period.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trackbook import columns as C

_log = logging.getLogger(__name__)
_MANIFEST = "manifest.json"
_LOCK = ".lock"
_GRACE_S = 600.0  # an unreferenced batch may be a concurrent writer's, not yet in the manifest
_LABEL = pa.dictionary(pa.int32(), pa.string())
_SCHEMA = pa.schema(
    [
        (C.RUN_ID, _LABEL),
        (C.METRIC, _LABEL),
        (C.STEP, pa.int64()),
        (C.VALUE, pa.float64()),
        (C.TIMESTAMP, pa.int64()),
    ]
)

Signature = Any  # JSON-able, compared for equality only


def default_root() -> Path:
    """``$TRACKBOOK_CACHE_DIR``, else ``$XDG_CACHE_HOME/trackbook``, else ``~/.cache/trackbook``."""
    if os.environ.get("TRACKBOOK_CACHE_DIR"):
        return Path(os.environ["TRACKBOOK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trackbook"


class HistoryCache:
    """Per-store cache of finished runs' points (see the module docstring)."""

    def __init__(self, store_uri: str, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        key = hashlib.sha256(store_uri.encode()).hexdigest()[:20]
        self.folder = self.root / "history" / key
        self._loaded: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # ---------------------------------------------------------------------- reads

    def _manifest(self) -> dict[str, Any]:
        """run id -> {"complete": bool, "metrics": {metric: [batch file, signature]}}."""
        path = self.folder / _MANIFEST
        try:
            st = path.stat()
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._loaded is not None and self._loaded[0] == key:
                return self._loaded[1]
            runs = json.loads(path.read_bytes())["runs"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # absent or unreadable: every run misses, and is written again
        self._loaded = (key, runs)
        return runs

    def cached_runs(self) -> set[str]:
        """Ids of the runs with an entry (valid or not: validity is checked on read)."""
        return set(self._manifest())

    def get_many(self, wanted: dict[str, dict[str, Signature]]) -> tuple[pd.DataFrame | None, list[str]]:
        """Cached points for several runs at once.

        Args:
            wanted: run id -> {metric: the signature the store reports now, None where
                the run has no such metric}.

        Returns:
            The points of every run whose entry holds all its wanted metrics with the
            same signatures (columns run_id, metric, step, value, timestamp in ms;
            None if no run hit), and the run ids that missed, in the order given.
        """
        manifest = self._manifest()
        pairs: dict[str, list[tuple[str, str]]] = {}
        hit: set[str] = set()
        for run_id, metrics in wanted.items():
            entry = manifest.get(run_id)
            if entry is None or not _holds(entry, metrics):
                continue
            hit.add(run_id)
            for name in metrics:
                place = entry["metrics"].get(name)
                if place is not None and place[1] is not None:
                    pairs.setdefault(place[0], []).append((run_id, name))
        tables = []
        for batch, batch_pairs in pairs.items():
            try:
                tables.append((pq.read_table(self.folder / batch), batch_pairs))
            except (OSError, pa.ArrowException):  # gone (cleared) or damaged: read from the store
                hit -= {run_id for run_id, _ in batch_pairs}
        parts = [_select(table, [p for p in batch_pairs if p[0] in hit]) for table, batch_pairs in tables]
        parts = [p for p in parts if p is not None]
        missed = [run_id for run_id in wanted if run_id not in hit]
        if not hit:
            return None, missed
        if not parts:
            return _SCHEMA.empty_table().to_pandas(), missed
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts).unify_dictionaries()
        return table.to_pandas(), missed

    # --------------------------------------------------------------------- writes

    def put_many(self, points: pd.DataFrame, signatures: dict[str, dict[str, Signature]], *, complete: bool) -> None:
        """Cache the points of the runs in ``signatures`` (one batch file for all).

        Args:
            points: columns run_id, metric, step, value, timestamp (ms); rows of other
                runs are left out.
            signatures: run id -> {metric: signature} for every metric read for it
                (None: the run has no such metric).
            complete: ``signatures`` names every metric of each run, so a metric
                missing from the entry is known not to exist.
        """
        if not signatures:
            return
        table = _to_table(points, list(signatures))
        name = f"{time.time_ns():x}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        for attempt in range(2):
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                _atomic_write(self.folder, name, lambda tmp: _write_parquet(table, tmp))
                with self._locked():
                    self._update_manifest(name, signatures, complete)
                return
            except FileNotFoundError:  # another process cleared the cache meanwhile: once more
                if attempt:
                    break
            except OSError:  # a full or read-only disk: the points were read; no cache this time
                break
        _log.warning("trackbook: could not cache the history of %d runs under %s", len(signatures), self.folder)

    def _update_manifest(self, batch: str, signatures: dict[str, dict[str, Signature]], complete: bool) -> None:
        runs = dict(self._manifest())
        for run_id, sigs in signatures.items():
            old = runs.get(run_id) or {"complete": False, "metrics": {}}
            metrics = dict(old["metrics"])
            metrics.update({m: [batch, sig] for m, sig in sigs.items()})  # JSON normalises them
            runs[run_id] = {"complete": complete or bool(old["complete"]), "metrics": metrics}
        body = json.dumps({"runs": runs}, separators=(",", ":"), default=str).encode()
        _atomic_write(self.folder, _MANIFEST, lambda tmp: Path(tmp).write_bytes(body))
        self._loaded = None
        used = {place[0] for entry in runs.values() for place in entry["metrics"].values()}
        now = time.time()
        for path in self.folder.glob("*.parquet"):
            with contextlib.suppress(OSError):
                if path.name not in used and now - path.stat().st_mtime > _GRACE_S:
                    path.unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the last writer's manifest wins; lost entries are misses
            yield
            return
        with open(self.folder / _LOCK, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def clear(self) -> None:
        """Delete every cached run of this store."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self._loaded = None


def _holds(entry: dict[str, Any], wanted: dict[str, Signature]) -> bool:
    """Whether an entry answers for every wanted metric with the signature the store reports."""
    cached, complete = entry["metrics"], entry["complete"]
    for name, sig in wanted.items():
        place = cached.get(name)
        if place is not None:
            if place[1] != sig and place[1] != _jsonable(sig):
                return False
        elif not (complete and sig is None):  # absent from a complete entry: the run lacks it
            return False
    return True


def _select(table: pa.Table, pairs: list[tuple[str, str]]) -> pa.Table | None:
    """The rows of ``table`` whose (run, metric) is in ``pairs``."""
    if not pairs:
        return None
    table = table.replace_schema_metadata(None)
    if not len(table):
        return table
    wanted = set(pairs)
    masks, dropped = [], False
    for runs, metrics in zip(table.column(C.RUN_ID).chunks, table.column(C.METRIC).chunks, strict=True):
        run_names, metric_names = runs.dictionary.to_pylist(), metrics.dictionary.to_pylist()
        allowed = np.array([[(r, m) in wanted for m in metric_names] for r in run_names], dtype=bool)
        allowed = allowed.reshape(len(run_names), len(metric_names))
        keep = allowed[runs.indices.to_numpy(), metrics.indices.to_numpy()] if not allowed.all() else None
        dropped |= keep is not None and not keep.all()
        masks.append(np.ones(len(runs), dtype=bool) if keep is None else keep)
    if not dropped:
        return table
    return table.filter(pa.array(np.concatenate(masks)))


def _to_table(points: pd.DataFrame, run_ids: list[str]) -> pa.Table:
    """The rows of these runs as an Arrow table of the cache's schema (no copy of numbers where all are kept)."""
    runs = points[C.RUN_ID].astype("category").array
    keep = np.isin(runs.codes, np.flatnonzero(runs.categories.isin(run_ids)))
    if not keep.all():
        points = points[keep]
        runs = points[C.RUN_ID].astype("category").array  # a text column has no codes

    def label(values: pd.Categorical) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.asarray(values.codes, dtype=np.int32)), pa.array(values.categories.astype(str), pa.string())
        )

    return pa.table(
        [
            label(runs),
            label(points[C.METRIC].astype("category").array),
            pa.array(points[C.STEP].to_numpy(dtype="int64")),
            pa.array(points[C.VALUE].to_numpy(dtype="float64")),
            pa.array(points[C.TIMESTAMP].to_numpy(dtype="int64")),
        ],
        schema=_SCHEMA,
    )


def _write_parquet(table: pa.Table, path: str) -> None:
    # Dictionaries only for the labels (building them for steps and values is most
    # of the cost of a default write); deltas for the steps and times, which climb.
    pq.write_table(
        table, path, compression="lz4", use_dictionary=[C.RUN_ID, C.METRIC], write_statistics=False,
        row_group_size=1 << 22, column_encoding={C.STEP: "DELTA_BINARY_PACKED", C.TIMESTAMP: "DELTA_BINARY_PACKED"},
    )


def _atomic_write(folder: Path, name: str, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, folder / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _jsonable(signature: Signature) -> Signature:
    """``signature`` as it reads back from JSON (a list of ints stays one: the common case)."""
    if signature is None or isinstance(signature, str | int | float):
        return signature
    if isinstance(signature, list | tuple) and all(type(x) in (int, str) for x in signature):
        return list(signature)
    return json.loads(json.dumps(signature, default=str))
