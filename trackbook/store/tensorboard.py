"""TensorBoard backend of :class:`~trackbook.store.Store`: folders of event files
(``tensorboard:///path/to/logs``), as stable-baselines3's ``tensorboard_log=`` writes them.

The layout, read-only:

- **run**: every folder under the root that directly holds event files
  (``events.out.tfevents.*``), e.g. SB3's ``PPO_1``, ``PPO_2``; nested folders too.
  All the event files of a folder are one run, read in the order they were created:
  SB3's ``learn(..., reset_num_timesteps=False)`` adds a file to the same folder.
- **run id**: the first 16 hex digits of the SHA-1 of the folder's path relative to
  the root, ``/``-separated (``"."`` for the root itself): stable across machines
  and across moves of the root (:data:`RUN_ID_PATTERN`).
- **experiment**: the run folder's parent, relative to the root (``cartpole/lr-sweep``);
  runs right under the root are in an experiment named after the root folder.
- **start / end**: the first and last wall time in the events. A run whose files were
  written in the last ``running_window`` seconds is RUNNING, else FINISHED.
- **params**: TensorBoard's hparams plugin (SB3's ``HParam``, ``SummaryWriter.add_hparams``).
- **tags**: text summaries (``add_text``; torch's ``/text_summary`` suffix dropped), and
  a ``base_model_run_id`` hparam. A ``base_model_run_id`` naming a run folder (its id,
  its relative path, or its folder name when only one run has it) links the chain.
- **metrics**: every scalar (``simple_value``, or a tensor of the ``scalars`` plugin).
  Points are kept as logged, float32 as TensorBoard stores them.
- **artifacts**: the files of the run folder (event files included), not those of
  nested run folders.

Reading: the records are framed and their common shape (one scalar ``simple_value``,
which torch's and so SB3's writer emits) decoded at once with numpy; every other record
goes through TensorBoard's own protobuf classes. Record checksums are not verified
(TensorBoard's pure-Python CRC is what makes its reader slow); a torn record at the end
of a file being written is left for the next read. Chosen by measurement
(``benchmarks/tensorboard.py``, 576,000 points): TensorBoard's ``EventFileLoader`` 136 s,
tbparse 57 s, this 2.4 s. Decoded files are kept per
(size, mtime) in the store, and a summary of each run (names, last values, params,
times) beside the Parquet history cache, so a fresh process lists unchanged runs
without decoding them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook import layout as L
from trackbook.errors import RunNotFound, StoreUnavailable
from trackbook.store.base import RunRecord, Store

#: What a TensorBoard run id looks like: 16 hex digits of SHA-1(relative folder path).
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{16}")
SCHEME = "tensorboard://"
_TEXT_SUFFIX = "/text_summary"  # torch's add_text appends it to the tag
_SCALARS, _TEXT, _HPARAMS = "scalars", "text", "hparams"
_SUMMARY_FILE = "tensorboard-runs.json"
_SUMMARY_VERSION = 1


def tensorboard_path(uri: str) -> Path:
    """The folder a ``tensorboard://`` URI names (``tensorboard:///abs`` or a bare path)."""
    text = uri[len(SCHEME) :] if uri.startswith(SCHEME) else uri
    return Path(text).expanduser().resolve()


def run_id_of(relative: str) -> str:
    """The run id of the run folder at ``relative`` (``/``-separated, ``"."`` for the root)."""
    return hashlib.sha1(relative.encode()).hexdigest()[:16]


def is_event_file(name: str) -> bool:
    """Whether TensorBoard would read ``name`` as an event file (its own rule: 'tfevents' in it)."""
    return "tfevents" in name and not name.startswith(".")


# ------------------------------------------------------------------ decoding


@dataclass
class _Chunk:
    """Scalars decoded from one stretch of an event file, in file order."""

    names: list[str]
    codes: np.ndarray  # int32 index into names
    steps: np.ndarray  # int64
    values: np.ndarray  # float64
    walls: np.ndarray  # float64, seconds


@dataclass
class _FileState:
    size: int
    mtime_ns: int
    offset: int = 0  # end of the last complete record read
    chunks: list[_Chunk] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, tuple[int, float, str]] = field(default_factory=dict)  # tag -> (step, wall, text)
    first_wall: float | None = None
    last_wall: float | None = None
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin (metadata comes once per tag)


def _frame_records(data: bytes, start: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Starts and lengths of the complete TFRecords of ``data`` from ``start``, and where they end.

    A record is a little-endian uint64 length, its 4-byte CRC, the payload and the
    payload's 4-byte CRC.
    """
    starts: list[int] = []
    append = starts.append
    pos, n, unpack = start, len(data), struct.unpack_from
    while pos + 12 <= n:
        (length,) = unpack("<Q", data, pos)
        end = pos + 16 + length
        if end > n or length > 1 << 31:  # still being written (or garbage): stop here
            break
        append(pos)
        pos = end
    at = np.asarray(starts, dtype=np.int64)
    lengths = np.diff(np.append(at, pos)) - 16
    return at + 12, lengths, pos


def _varints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values (as int64) and byte lengths of the protobuf varints starting at ``at``."""
    last = len(buf) - 1
    value = np.zeros(len(at), dtype=np.uint64)
    length = np.zeros(len(at), dtype=np.int64)
    going = np.ones(len(at), dtype=bool)
    for k in range(10):
        byte = buf[np.minimum(at + k, last)].astype(np.uint64)
        value |= np.where(going, (byte & np.uint64(0x7F)) << np.uint64(7 * k), np.uint64(0))
        length += going
        going &= (byte & np.uint64(0x80)) != 0
        if not going.any():
            break
    return value.view(np.int64), np.where(going, -1, length)


def _gather(buf: np.ndarray, at: np.ndarray, width: int, dtype: str) -> np.ndarray:
    idx = np.minimum(at[:, None] + np.arange(width), len(buf) - 1)
    return np.ascontiguousarray(buf[idx]).view(dtype).ravel()


def _fast_scalars(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """Decode the records shaped like one ``simple_value`` scalar, all at once.

    That shape is ``Event{wall_time, [step], summary{value{tag, simple_value}}}`` with
    one-byte lengths, fields in number order (as protobuf serialises them). Returns a
    mask of the records decoded and their tag offsets/lengths, steps, values, wall times.
    """
    ends = starts + lengths
    last = len(buf) - 1

    def at(pos: np.ndarray) -> np.ndarray:
        return buf[np.minimum(pos, last)]

    ok = (lengths >= 17) & (at(starts) == 0x09)
    walls = _gather(buf, starts + 1, 8, "<f8")
    p = starts + 9
    has_step = at(p) == 0x10
    steps, step_len = _varints(buf, p + 1)
    ok &= ~has_step | (step_len > 0)
    steps = np.where(has_step, steps, 0)
    q = p + np.where(has_step, 1 + step_len, 0)
    len1, len2, len3 = at(q + 1).astype(np.int64), at(q + 3).astype(np.int64), at(q + 5).astype(np.int64)
    ok &= (at(q) == 0x2A) & (at(q + 2) == 0x0A) & (at(q + 4) == 0x0A)
    ok &= (len1 < 0x80) & (len2 == len1 - 2) & (len3 == len2 - 7) & (q + 2 + len1 == ends)
    ok &= at(q + 6 + len3) == 0x15
    values = _gather(buf, q + 7 + len3, 4, "<f4").astype(np.float64)
    return ok, q + 6, len3, steps, values, walls


def _tag_codes(buf: np.ndarray, tag_at: np.ndarray, tag_len: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Distinct tags of the records (by their bytes) and each record's index into them."""
    if len(tag_at) == 0:
        return [], np.zeros(0, dtype=np.int32)
    last = len(buf) - 1
    # A 64-bit FNV-1a hash of each tag's bytes (and length): the distinct tags are then
    # found by sorting integers, not strings. A file holds tens of tags, so a collision
    # (about n^2 / 2^64) does not happen in practice.
    key = tag_len.astype(np.uint64) ^ np.uint64(0xCBF29CE484222325)
    with np.errstate(over="ignore"):
        for k in range(int(tag_len.max())):
            byte = np.where(k < tag_len, buf[np.minimum(tag_at + k, last)], 0).astype(np.uint64)
            key = (key ^ byte) * np.uint64(0x100000001B3)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    names = [bytes(buf[tag_at[i] : tag_at[i] + tag_len[i]]).decode("utf-8", "replace") for i in first]
    return names, inverse.astype(np.int32)


def _decode_slow(record: bytes, state: _FileState, rows: list[tuple[str, int, float, float, int]], index: int) -> None:
    """One record through TensorBoard's protobuf classes: other scalars, hparams, text."""
    from tensorboard.compat.proto import event_pb2

    event = event_pb2.Event.FromString(record)
    wall = event.wall_time
    if wall:
        state.first_wall = wall if state.first_wall is None else min(state.first_wall, wall)
        state.last_wall = wall if state.last_wall is None else max(state.last_wall, wall)
    if not event.HasField("summary"):
        return
    for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else ""
        if plugin:
            state.plugins[value.tag] = plugin
        plugin = plugin or state.plugins.get(value.tag, "")
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            rows.append((value.tag, event.step, float(value.simple_value), wall, index))
        elif plugin == _HPARAMS:
            state.params.update(_hparams(value.metadata.plugin_data.content))
        elif kind == "tensor" and plugin == _SCALARS:
            from tensorboard.util import tensor_util

            array = tensor_util.make_ndarray(value.tensor)
            if array.size == 1:
                rows.append((value.tag, event.step, float(array.reshape(-1)[0]), wall, index))
        elif kind == "tensor" and plugin == _TEXT and value.tensor.string_val:
            tag = value.tag[: -len(_TEXT_SUFFIX)] if value.tag.endswith(_TEXT_SUFFIX) else value.tag
            text = value.tensor.string_val[0].decode("utf-8", "replace")
            old = state.texts.get(tag)
            if old is None or (event.step, wall) >= old[:2]:
                state.texts[tag] = (event.step, wall, text)


def _hparams(content: bytes) -> dict[str, Any]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if data.WhichOneof("data") != "session_start_info":
        return {}
    out: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            number = value.number_value
            out[name] = int(number) if number.is_integer() and abs(number) < 2**53 else number
        elif kind == "bool_value":
            out[name] = value.bool_value
        elif kind == "string_value":
            out[name] = value.string_value
    return out


def _decode_file(path: Path, state: _FileState) -> None:
    """Read ``path`` from ``state.offset`` to its last complete record into ``state``."""
    with open(path, "rb") as fh:
        fh.seek(state.offset)
        data = fh.read()
    starts, lengths, end = _frame_records(data, 0)
    state.offset += end
    if not len(starts):
        return
    buf = np.frombuffer(data, dtype=np.uint8)
    ok, tag_at, tag_len, steps, values, walls = _fast_scalars(buf, starts, lengths)
    rows: list[tuple[str, int, float, float, int]] = []
    for i in np.flatnonzero(~ok):
        s = int(starts[i])
        _decode_slow(data[s : s + int(lengths[i])], state, rows, int(i))
    names, codes = _tag_codes(buf, tag_at[ok], tag_len[ok])
    steps, values, walls = steps[ok], values[ok], walls[ok]
    if len(walls):
        state.first_wall = min(float(walls.min()), state.first_wall or np.inf)
        state.last_wall = max(float(walls.max()), state.last_wall or -np.inf)
    if rows:  # merge the slow rows in at their place in the file
        position = {n: i for i, n in enumerate(names)}
        for tag, *_ in rows:
            position.setdefault(tag, len(position))
        names = list(position)
        order_key = np.concatenate([np.flatnonzero(ok), np.array([r[4] for r in rows])])
        codes = np.concatenate([codes, np.array([position[r[0]] for r in rows], dtype=np.int32)])
        steps = np.concatenate([steps, np.array([r[1] for r in rows], dtype=np.int64)])
        values = np.concatenate([values, np.array([r[2] for r in rows], dtype=np.float64)])
        walls = np.concatenate([walls, np.array([r[3] for r in rows], dtype=np.float64)])
        order = np.argsort(order_key, kind="stable")
        codes, steps, values, walls = codes[order], steps[order], values[order], walls[order]
    if len(codes):
        state.chunks.append(_Chunk(names, codes, steps.astype(np.int64), values, walls))


# ---------------------------------------------------------------------- runs


@dataclass
class _RunFolder:
    relative: str  # '/'-separated, '.' for the root
    path: Path
    files: list[tuple[str, int, int]]  # (name, size, mtime_ns), in creation order

    @property
    def signature(self) -> str:
        text = ";".join(f"{n}:{s}:{m}" for n, s, m in self.files)
        return hashlib.sha1(text.encode()).hexdigest()[:20]


def _file_order(name: str) -> tuple[float, str]:
    # events.out.tfevents.<unix time>.<host>.<pid>.<n>: the writer's creation time
    parts = name.split(".")
    try:
        return float(parts[parts.index("tfevents") + 1]), name
    except (ValueError, IndexError):
        return float("inf"), name


class TensorBoardStore(Store):
    """Runs in a folder of TensorBoard event files (read-only; see the module docstring).

    Example:
        >>> store = TensorBoardStore("tensorboard:///data/tb-logs")  # doctest: +SKIP
        >>> store.runs()[["name", "experiment", "status"]]          # doctest: +SKIP

    Args:
        uri: ``tensorboard:///path/to/logs``.
        cache_dir: root of the history cache (default ``$TRACKBOOK_CACHE_DIR``, ...).
        running_window: seconds since the last write within which a run reads as
            RUNNING (a training still writing); older runs are FINISHED.

    Raises:
        StoreUnavailable: the folder does not exist.
    """

    kind = "tensorboard"
    run_id_pattern = RUN_ID_PATTERN

    def __init__(self, uri: str, *, cache_dir: str | Path | None = None, running_window: float = 900.0) -> None:
        super().__init__(uri, cache_dir=cache_dir)
        self.path = tensorboard_path(uri)
        if not self.path.is_dir():
            raise StoreUnavailable(
                f"{uri!r} names {self.path}, which is not a folder. Pass the folder given to "
                f"tensorboard_log= (or SummaryWriter's log_dir), e.g. tensorboard:///home/me/tb-logs."
            )
        self.running_window = float(running_window)
        self._states: dict[str, _FileState] = {}
        # run folder -> (signature, its points merged and sorted): one sort per version
        self._sorted: dict[str, tuple[str, Any]] = {}
        self._summaries: dict[str, dict[str, Any]] | None = None
        self._dirty = False

    # ------------------------------------------------------------ discovery

    def _folders(self) -> dict[str, _RunFolder]:
        """Run folders by run id (one scan and a stat per event file)."""
        out: dict[str, _RunFolder] = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files = []
            for name in filenames:
                if is_event_file(name):
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except OSError:
                        continue  # removed meanwhile
                    files.append((name, st.st_size, st.st_mtime_ns))
            if files:
                relative = Path(dirpath).relative_to(self.path).as_posix()
                files.sort(key=lambda f: _file_order(f[0]))
                out[run_id_of(relative)] = _RunFolder(relative, Path(dirpath), files)
        return out

    def _experiment_of(self, folder: _RunFolder) -> str:
        parent = Path(folder.relative).parent.as_posix() if folder.relative != "." else "."
        return self.path.name if parent == "." else parent

    # ------------------------------------------------------------- decoding

    def _state(self, folder: _RunFolder, name: str, size: int, mtime_ns: int) -> _FileState:
        key = str(folder.path / name)
        state = self._states.get(key)
        if state is not None and state.size == size and state.mtime_ns == mtime_ns:
            return state
        if state is None or size < state.offset:  # new, or rewritten: from the start
            state = _FileState(size, mtime_ns)
        else:  # appended to: read on from the last complete record
            state.size, state.mtime_ns = size, mtime_ns
        _decode_file(folder.path / name, state)
        self._states[key] = state
        return state

    def _series(self, folder: _RunFolder) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All scalar points of a run: (names, codes, steps, values, walls), sorted by
        metric name, step and wall time."""
        signature = folder.signature
        found = self._sorted.get(folder.relative)
        if found is not None and found[0] == signature:
            return found[1]
        series = self._merge(folder)
        self._sorted[folder.relative] = (signature, series)
        return series

    def _merge(self, folder: _RunFolder) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        chunks = [c for n, s, m in folder.files for c in self._state(folder, n, s, m).chunks]
        names = sorted({n for c in chunks for n in c.names})
        if not chunks:
            empty = np.zeros(0)
            return names, empty.astype(np.int32), empty.astype(np.int64), empty, empty
        position = {n: i for i, n in enumerate(names)}
        codes = np.concatenate([np.asarray([position[n] for n in c.names], dtype=np.int32)[c.codes] for c in chunks])
        steps = np.concatenate([c.steps for c in chunks])
        values = np.concatenate([c.values for c in chunks])
        walls = np.concatenate([c.walls for c in chunks])
        order = np.lexsort((walls, steps, codes))
        return names, codes[order], steps[order], values[order], walls[order]

    def _summary(self, folder: _RunFolder) -> dict[str, Any]:
        """What runs() shows of a run, decoded once per version of its files."""
        summaries = self._load_summaries()
        signature = folder.signature
        found = summaries.get(folder.relative)
        if found is not None and found.get("signature") == signature:
            return found
        names, codes, steps, values, walls = self._series(folder)
        states = [self._state(folder, n, s, m) for n, s, m in folder.files]
        params: dict[str, Any] = {}
        texts: dict[str, tuple[int, float, str]] = {}
        for state in states:
            params.update(state.params)
            for tag, entry in state.texts.items():
                if tag not in texts or entry[:2] >= texts[tag][:2]:
                    texts[tag] = entry
        metrics = {}
        if len(codes):
            # last value by step (then wall time) of each metric: rows are sorted so
            last_rows = np.flatnonzero(np.r_[codes[1:] != codes[:-1], True])
            metrics = {names[codes[i]]: float(values[i]) for i in last_rows}
        firsts = [s.first_wall for s in states if s.first_wall is not None]
        lasts = [s.last_wall for s in states if s.last_wall is not None]
        summary = {
            "signature": signature,
            "start": min(firsts) * 1000.0 if firsts else None,
            "end": max(lasts) * 1000.0 if lasts else None,
            "params": params,
            "tags": {tag: entry[2] for tag, entry in texts.items()},
            "metrics": metrics,
        }
        summaries[folder.relative] = summary
        self._dirty = True
        return summary

    def _summary_path(self) -> Path:
        return self.cache.folder / _SUMMARY_FILE

    def _load_summaries(self) -> dict[str, dict[str, Any]]:
        if self._summaries is None:
            try:
                saved = json.loads(self._summary_path().read_text())
                self._summaries = saved["runs"] if saved.get("version") == _SUMMARY_VERSION else {}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._summaries = {}
        return self._summaries

    def _save_summaries(self) -> None:
        folder = self.cache.folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tensorboard-runs.", suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": _SUMMARY_VERSION, "runs": self._summaries}, fh, default=str)
            os.replace(tmp, self._summary_path())
        except OSError:  # a read-only cache: summaries are rebuilt next time, nothing is lost
            pass

    # ---------------------------------------------------------- primitives

    def _records(self, folders: dict[str, _RunFolder], wanted: list[str] | None = None) -> list[RunRecord]:
        ids = list(folders) if wanted is None else [r for r in wanted if r in folders]
        records = []
        self._dirty = False
        for rid in ids:
            folder = folders[rid]
            records.append(self._record(rid, folder, self._summary(folder), folders))
        if self._dirty:
            self._save_summaries()
        return records

    def _record(self, rid: str, folder: _RunFolder, summary: dict[str, Any], folders: dict[str, _RunFolder]) -> RunRecord:
        last_write_ms = max(m for _, _, m in folder.files) / 1e6
        running = time.time() * 1000.0 - last_write_ms < self.running_window * 1000.0
        params = dict(summary["params"])
        tags = {k: str(v) for k, v in summary["tags"].items()}
        base = params.pop(L.TAG_BASE_RUN, None)
        base = tags.get(L.TAG_BASE_RUN, base)
        if base not in (None, ""):
            tags[L.TAG_BASE_RUN] = self._resolve_base(str(base), folder, folders)
        name = folder.path.name if folder.relative != "." else self.path.name
        experiment = self._experiment_of(folder)
        signature = folder.signature
        return RunRecord(
            run_id=rid,
            name=name,
            experiment_id=_experiment_id(experiment),
            experiment=experiment,
            status=C.RUNNING if running else C.FINISHED,
            start_time=summary["start"],
            end_time=None if running else summary["end"],
            params=params,
            tags=tags,
            metrics=summary["metrics"],
            metric_signatures={m: signature for m in summary["metrics"]},
            last_activity=last_write_ms,
        )

    def _resolve_base(self, base: str, folder: _RunFolder, folders: dict[str, _RunFolder]) -> str:
        """The run id a ``base_model_run_id`` value means: an id, a relative path (from the
        root or from the run's experiment folder), or a folder name only one run has."""
        if base in folders:
            return base
        text = base.strip("/")
        parent = Path(folder.relative).parent.as_posix()
        for candidate in (text, f"{parent}/{text}" if parent != "." else text):
            if run_id_of(candidate) in folders:
                return run_id_of(candidate)
        by_name = [rid for rid, f in folders.items() if f.path.name == text]
        return by_name[0] if len(by_name) == 1 else base

    def _list_experiments(self) -> list[dict[str, Any]]:
        folders = self._folders()
        first: dict[str, float | None] = {}
        for folder in folders.values():
            experiment = self._experiment_of(folder)
            start = _file_order(folder.files[0][0])[0]
            start_ms = start * 1000.0 if np.isfinite(start) else None
            old = first.get(experiment)
            first[experiment] = start_ms if old is None else min(old, start_ms or old)
        return [
            {C.EXPERIMENT_ID: _experiment_id(e), C.NAME: e, C.LIFECYCLE_STAGE: "active", C.CREATION_TIME: t}
            for e, t in sorted(first.items())
        ]

    def _list_runs(self, experiment_ids: list[str] | None) -> list[RunRecord]:
        folders = self._folders()
        if experiment_ids is not None:
            wanted = set(experiment_ids)
            folders_in = [r for r, f in folders.items() if _experiment_id(self._experiment_of(f)) in wanted]
            return self._records(folders, folders_in)
        return self._records(folders)

    def _get_runs(self, run_ids: list[str]) -> list[RunRecord]:
        return self._records(self._folders(), run_ids)

    def _read_history(self, run_ids: list[str], metrics: list[str]) -> pd.DataFrame:
        folders = self._folders()
        wanted = set(metrics)
        parts = []
        for rid in run_ids:
            if rid not in folders:
                continue
            names, codes, steps, values, walls = self._series(folders[rid])
            keep_names = [n for n in names if n in wanted]
            if not keep_names:
                continue
            if len(keep_names) < len(names):
                keep_codes = np.asarray([i for i, n in enumerate(names) if n in wanted], dtype=np.int32)
                mask = np.isin(codes, keep_codes)
                codes, steps, values, walls = codes[mask], steps[mask], values[mask], walls[mask]
            parts.append((rid, names, codes, steps, values, walls))
        if not parts:
            return pd.DataFrame({c: [] for c in C.HISTORY_COLUMNS})
        all_names = sorted({n for p in parts for n in p[1]})
        position = {n: i for i, n in enumerate(all_names)}
        metric_codes = np.concatenate([np.asarray([position[n] for n in p[1]], dtype=np.int32)[p[2]] for p in parts])
        run_codes = np.repeat(np.arange(len(parts), dtype=np.int32), [len(p[2]) for p in parts])
        return pd.DataFrame(
            {
                C.RUN_ID: pd.Categorical.from_codes(run_codes, categories=[p[0] for p in parts]),
                C.METRIC: pd.Categorical.from_codes(metric_codes, categories=all_names),
                C.STEP: np.concatenate([p[3] for p in parts]),
                C.VALUE: np.concatenate([p[4] for p in parts]),
                C.TIMESTAMP: np.round(np.concatenate([p[5] for p in parts]) * 1000.0).astype(np.int64),
            }
        )

    # ------------------------------------------------------------ artifacts

    def _run_folder(self, run_id: str) -> _RunFolder:
        folder = self._folders().get(run_id)
        if folder is None:
            raise RunNotFound(self._missing_run_message([run_id]))
        return folder

    def _artifact_files(self, folder: _RunFolder) -> list[tuple[str, Path]]:
        """Files of the run folder, leaving out nested run folders (runs of their own)."""
        out = []
        for dirpath, dirnames, filenames in os.walk(folder.path):
            here = Path(dirpath)
            if here != folder.path and any(is_event_file(n) for n in filenames):
                dirnames[:] = []
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if not name.startswith("."):
                    out.append(((here / name).relative_to(folder.path).as_posix(), here / name))
        return out

    def _list_artifacts(self, run_id: str, path: str) -> list[tuple[str, int | None]]:
        out = []
        for rel, full in self._artifact_files(self._run_folder(run_id)):
            if path and not (rel == path or rel.startswith(path + "/")):
                continue
            try:
                out.append((rel, full.stat().st_size))
            except OSError:
                continue
        return out

    def _download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        files = self._artifact_files(self._run_folder(run_id))
        chosen = [(rel, full) for rel, full in files if not path or rel == path or rel.startswith(path + "/")]
        if not chosen:
            listed = ", ".join(sorted(rel for rel, _ in files)[:10]) or "none"
            raise FileNotFoundError(f"Run {run_id} has no artifact {path!r}; it has: {listed}.")
        for rel, full in chosen:
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full, target)
        return dst / path if path else dst


def _experiment_id(name: str) -> str:
    return hashlib.sha1(("experiment:" + name).encode()).hexdigest()[:16]

