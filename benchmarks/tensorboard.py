"""``history()`` over TensorBoard folders, cold and warm, against tbparse's ``SummaryReader``.

Usage:
    python benchmarks/tensorboard.py                       # 24 runs x 8 metrics x 3,000 steps
    python benchmarks/tensorboard.py --runs 4 --steps 500  # a quick look

The folders are written once under .benchmarks_data/ by torch's ``SummaryWriter``, the
writer stable-baselines3's ``tensorboard_log=`` uses: two experiments of run folders,
every third run continued into a second event file (``reset_num_timesteps=False``),
hparams and a text summary per run, file times set a day back (FINISHED runs).

Figures, medians of --repeat, measured side by side in one process:

- tbparse: ``SummaryReader(root, extra_columns={"dir_name", "wall_time"}).scalars``;
- TensorBoard's own reader (``EventFileLoader``), only decoding the scalars: the
  other candidate trackbook could have read through;
- cold: a new store, history cache cleared, ``store.history(store.runs())``;
- warm: a new store over the caches the cold read left (a fresh notebook kernel);
- warm, same store: the call repeated on the store that read it.

Before timing, the points are checked to be the same as tbparse's (run folder, tag,
step, value; NaN equal to NaN).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file would
# shadow the tensorboard package itself.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._stores import median_time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / ".benchmarks_data"


def build(n_runs: int, n_metrics: int, n_steps: int) -> Path:
    """The benchmark's TensorBoard root (built once)."""
    folder = ROOT / f"tensorboard-{n_runs}x{n_metrics}x{n_steps}"
    if folder.exists():
        return folder
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    rng = np.random.default_rng(0)
    names = ["rollout/ep_rew_mean", "rollout/ep_len_mean", "train/loss", "train/entropy_loss"]
    names += [f"custom/metric_{i}" for i in range(len(names), n_metrics)]
    names = names[:n_metrics]
    started = time.perf_counter()
    for r in range(n_runs):
        run_dir = building / f"exp-{r % 2}" / f"PPO_{r // 2 + 1}"
        values = np.cumsum(rng.normal(0.1, 1.0, (n_metrics, n_steps)), axis=1)
        values[:, rng.integers(0, n_steps, 3)] = np.nan
        split = n_steps // 2 if r % 3 == 0 else n_steps  # continued into a second file
        for lo, hi in ((0, split), (split, n_steps)):
            if lo == hi:
                continue
            writer = SummaryWriter(str(run_dir))
            if lo == 0:
                for summary in hparams({"learning_rate": float(10 ** rng.uniform(-5, -2)), "seed": r}, {}):
                    writer.file_writer.add_summary(summary)
                writer.add_text("note", f"run {r}", 0)
            for s in range(lo, hi):
                for m, name in enumerate(names):
                    writer.add_scalar(name, values[m, s], s * 64)
            writer.close()
            time.sleep(0.01)  # event file names carry the second they were opened
        if r % 4 == 3:
            print(f"  built {r + 1}/{n_runs} runs ({time.perf_counter() - started:.0f}s)", flush=True)
    day_ago = time.time() - 86_400
    for path in building.rglob("*"):
        os.utime(path, (day_ago, day_ago))
    building.rename(folder)
    return folder



def tbparse_points(root: Path) -> pd.DataFrame:
    from tbparse import SummaryReader

    return SummaryReader(str(root), extra_columns={"dir_name", "wall_time"}).scalars


def tensorboard_loader_points(root: Path) -> int:
    """Scalars through TensorBoard's own record reader (``EventFileLoader``), counted."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    count = 0
    for path in sorted(root.rglob("*tfevents*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    tensor_util.make_ndarray(value.tensor).item()
                    count += 1
    return count


def same_points(ours: pd.DataFrame, runs: pd.DataFrame, theirs: pd.DataFrame, root: Path) -> None:
    """Raise unless both readers found the same (run folder, tag, step, value) points."""
    from trackbook.store.tensorboard import run_id_of

    folder_of = {run_id_of(d): d for d in theirs["dir_name"].unique()}
    mine = pd.DataFrame(
        {
            "dir_name": ours["run_id"].astype(str).map(folder_of),
            "tag": ours["metric"].astype(str),
            "step": ours["step"].to_numpy(),
            "value": ours["value"].to_numpy(),
        }
    )
    keys = ["dir_name", "tag", "step"]
    a = mine.sort_values(keys, kind="stable", ignore_index=True)
    b = theirs[keys + ["value"]].sort_values(keys, kind="stable", ignore_index=True)
    if len(a) != len(b) or not a[keys].equals(b[keys].astype(a[keys].dtypes.to_dict())):
        raise SystemExit(f"different points: trackbook {len(a)}, tbparse {len(b)}")
    va, vb = a["value"].to_numpy(), b["value"].to_numpy(dtype="float64")
    if not np.array_equal(va, vb, equal_nan=True):
        raise SystemExit(f"different values at {int((~np.isclose(va, vb, equal_nan=True)).sum())} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    root = build(args.runs, args.metrics, args.steps)
    os.environ["TRACKBOOK_CACHE_DIR"] = tempfile.mkdtemp(prefix="trackbook-bench-cache-")
    from trackbook.store.tensorboard import TensorBoardStore

    uri = f"tensorboard://{root}"
    n_files = sum(1 for _ in root.rglob("*tfevents*"))
    print(f"TensorBoard root: {args.runs} runs x {args.metrics} metrics x {args.steps} steps, {n_files} event files")

    t_tbparse, theirs = median_time(lambda: tbparse_points(root), args.repeat)
    t_loader, n_loader = median_time(lambda: tensorboard_loader_points(root), args.repeat)

    def read(store: TensorBoardStore) -> tuple[pd.DataFrame, pd.DataFrame]:
        runs = store.runs()
        return store.history(runs), runs

    def clear() -> None:
        TensorBoardStore(uri).cache.clear()

    t_cold, (ours, runs) = median_time(lambda: read(TensorBoardStore(uri)), args.repeat, before=clear)
    same_points(ours, runs, theirs, root)
    t_warm, warm = median_time(lambda: read(TensorBoardStore(uri)), args.repeat)
    store = TensorBoardStore(uri)
    read(store)
    t_same, _ = median_time(lambda: read(store), args.repeat)
    pd.testing.assert_frame_equal(warm[0], ours)

    print(f"points: {len(ours):,} (the same as tbparse's: run folder, tag, step, value)")
    print(f"tbparse SummaryReader(...).scalars       {t_tbparse:8.3f} s")
    print(f"TensorBoard EventFileLoader (scalars)    {t_loader:8.3f} s   ({n_loader:,} points, no frame built)")
    print(f"trackbook history() cold                 {t_cold:8.3f} s   {t_tbparse / t_cold:6.1f}x faster")
    print(f"trackbook history() warm, new store      {t_warm:8.3f} s   {t_tbparse / t_warm:6.1f}x faster")
    print(f"trackbook history() warm, same store     {t_same:8.3f} s   {t_tbparse / t_same:6.1f}x faster")
    shutil.rmtree(os.environ["TRACKBOOK_CACHE_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
