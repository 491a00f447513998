"""A local Parquet cache of the metric histories of finished runs.

A FINISHED, FAILED or KILLED run does not change again, so its points are read from
the store once and from disk after that. One file per run,
``<root>/<store key>/<run id>.parquet``, holding the metrics read so far and, in its
metadata, each metric's *signature* (its last step, timestamp and value as the store
reports them). A file is used only while the store still reports the same signature
for every metric asked for: a metric logged to a finished run after the fact makes the
entry stale, and it is read again.

Files are written to a temporary name and renamed into place, so concurrent readers
see either the old complete file or the new complete file, never a partial one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trackbook import columns as C

_log = logging.getLogger(__name__)
_META_KEY = b"trackbook"
_SCHEMA = pa.schema(
    [
        (C.METRIC, pa.dictionary(pa.int32(), pa.string())),
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

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.parquet"

    def _read(self, run_id: str) -> tuple[pa.Table, dict[str, Signature], bool] | None:
        path = self._path(run_id)
        try:
            table = pq.read_table(path)
        except (FileNotFoundError, OSError, pa.ArrowException):
            return None  # absent, or unreadable: treat as a miss, it will be rewritten
        meta = table.schema.metadata or {}
        try:
            info = json.loads(meta[_META_KEY])
            return table, info["metrics"], bool(info.get("complete"))
        except (KeyError, ValueError, TypeError):
            return None

    def get_many(self, wanted: dict[str, dict[str, Signature]]) -> tuple[pd.DataFrame | None, list[str]]:
        """Cached points for several runs at once.

        Args:
            wanted: run id -> {metric: the signature the store reports now}.

        Returns:
            The points of every run whose entry holds all its wanted metrics with the
            same signatures (columns run_id, metric, step, value, timestamp; None if no
            run hit), and the run ids that missed, in the order given.
        """
        tables, missed = [], []
        for run_id, metrics in wanted.items():
            found = self._read(run_id)
            if found is None or not _holds(found[1], found[2], metrics):
                missed.append(run_id)
                continue
            table = found[0]
            if set(found[1]) != set(metrics):
                names = pa.array(sorted(metrics), pa.string())
                table = table.filter(pc.is_in(table[C.METRIC].cast(pa.string()), value_set=names))
            run_col = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(len(table), dtype=np.int32)), pa.array([run_id], pa.string())
            )
            tables.append(table.replace_schema_metadata(None).add_column(0, C.RUN_ID, run_col))
        if not tables:
            return None, missed
        return pa.concat_tables(tables).unify_dictionaries().to_pandas(), missed

    def put(self, run_id: str, points: pd.DataFrame, signatures: dict[str, Signature], *, complete: bool) -> None:
        """Cache ``points`` (columns metric, step, value, timestamp) of the metrics in ``signatures``.

        ``complete`` says that ``signatures`` names every metric of the run, so a metric
        missing from the entry is known not to exist. Metrics already cached for the run
        and not in ``signatures`` are kept.
        """
        metric = points[C.METRIC]
        if isinstance(metric.dtype, pd.CategoricalDtype):
            metric_array = pa.DictionaryArray.from_arrays(
                pa.array(metric.array.codes, pa.int32()), pa.array(metric.array.categories.astype(str), pa.string())
            )
        else:
            metric_array = pa.array(metric.astype(str), pa.string()).dictionary_encode()
        table = pa.table(
            [
                metric_array,
                pa.array(points[C.STEP], pa.int64()),
                pa.array(points[C.VALUE], pa.float64()),
                pa.array(points[C.TIMESTAMP], pa.int64()),
            ],
            schema=_SCHEMA,
        )
        merged = {name: _jsonable(sig) for name, sig in signatures.items()}
        previous = self._read(run_id)
        if previous is not None:
            old, old_sigs, old_complete = previous
            complete = complete or old_complete
            keep = [name for name in old_sigs if name not in merged]
            if keep:
                kept = old.filter(pc.is_in(old[C.METRIC].cast(pa.string()), value_set=pa.array(keep)))
                table = pa.concat_tables([kept.cast(_SCHEMA), table]).combine_chunks()
                merged.update({name: old_sigs[name] for name in keep})
        info = {"metrics": merged, "complete": complete}
        table = table.replace_schema_metadata({_META_KEY: json.dumps(info).encode()})
        for attempt in range(2):
            try:
                self._write(run_id, table)
                return
            except FileNotFoundError:  # another process cleared the cache meanwhile: once more
                if attempt:
                    break
            except OSError:  # a full or read-only disk: the points were read; no cache this time
                break
        _log.warning("trackbook: could not cache the history of run %s under %s", run_id, self.folder)

    def _write(self, run_id: str, table: pa.Table) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{run_id}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, self._path(run_id))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def clear(self) -> None:
        """Delete every cached run of this store."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _holds(cached: dict[str, Signature], complete: bool, wanted: dict[str, Signature]) -> bool:
    """Whether an entry answers for every wanted metric with the signature the store reports."""
    for name, sig in wanted.items():
        if name in cached:
            if cached[name] != _jsonable(sig):
                return False
        elif not (complete and sig is None):  # absent from a complete entry: the run lacks it
            return False
    return True


def _jsonable(signature: Signature) -> Signature:
    return json.loads(json.dumps(signature, default=str))

