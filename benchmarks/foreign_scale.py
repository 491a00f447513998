"""Real stores at the sizes users bring: a 2,000-run experiment and a 200-link chain.

Builds (or reuses, with ``--fixtures DIR`` or $TRACKBOOK_FOREIGN_FIXTURES) the foreign
stores ``wide.db`` (one experiment of 2,000 runs, 2 metrics x 20 points each, written
by MLflow's own code) and ``links.db`` (its ``chain-200`` experiment: 200 links), then
prints, measured in this one process:

- 2,000 runs: ``runs()``, MLflow's own ``search_runs`` beside it, ``history()`` cold
  (an empty cache) and warm (the cache filled), and the time RunBrowser takes to open;
- 200 links: ``tb.chain``, ``Chain.history``, ``plots.chain_progress`` and the chain report.

    python benchmarks/foreign_scale.py [--fixtures DIR] [--no-report]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=os.environ.get("TRACKBOOK_FOREIGN_FIXTURES"))
    parser.add_argument("--no-report", action="store_true", help="skip the chain report (a kernel start)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    from data_fixtures.foreign import build_store, store_uri

    work = Path(tempfile.mkdtemp(prefix="trackbook-foreign-scale-"))
    os.environ["TRACKBOOK_CACHE_DIR"] = str(work / "cache")
    folder = args.fixtures or work / "fixtures"
    for store in ("wide", "links"):
        if not Path(store_uri(folder, store)[len("sqlite:///"):]).exists():
            print(f"building {store} into {folder} ...", flush=True)
            build_store(folder, store)

    import mlflow

    import trackbook as tb

    wide = tb.connect(store_uri(folder, "wide"))
    seconds, runs = timed(lambda: wide.runs("sweep-2000"))
    mlflow.set_tracking_uri(wide.uri)
    theirs, _ = timed(lambda: mlflow.search_runs(experiment_names=["sweep-2000"], max_results=50_000))
    cold, hist = timed(lambda: wide.history(runs))
    warm, again = timed(lambda: wide.history(runs))
    assert again.equals(hist)
    from trackbook.widgets import RunBrowser

    opened, browser = timed(lambda: RunBrowser(wide, "sweep-2000"))
    print(f"\n2,000 runs ({len(hist):,} points):")
    print(f"  runs()                 {seconds:6.2f} s   (mlflow.search_runs {theirs:.2f} s)")
    print(f"  history() cold / warm  {cold:6.2f} s / {warm:.2f} s")
    print(f"  RunBrowser opens       {opened:6.2f} s   ({len(browser.figure.data)} traces: page 1 of "
          f"{browser.page.max})")

    links = tb.connect(store_uri(folder, "links"))
    last = links.runs("chain-200")
    last = last[last[tb.columns.NAME] == "long-199"][tb.columns.RUN_ID].iloc[0]
    walked, chain = timed(lambda: tb.chain(links, last))
    metric = next(c[len("metrics."):] for c in chain.runs.columns
                  if c.startswith("metrics.") and "timesteps" not in c)
    read, chain_hist = timed(lambda: chain.history(metric))
    drawn, fig = timed(lambda: tb.plots.chain_progress(chain_hist, chain_runs=chain.runs))
    print(f"\n200-link chain ({len(chain_hist):,} points of {metric}):")
    print(f"  tb.chain               {walked:6.2f} s")
    print(f"  Chain.history          {read:6.2f} s")
    print(f"  plots.chain_progress   {drawn:6.2f} s   ({len(fig.layout.shapes)} link boundaries)")
    if not args.no_report:
        rendered, _ = timed(lambda: tb.report("chain", work / "chain.html", store_uri=links.uri, run_id=last,
                                              metrics=[metric], progress=False))
        print(f"  chain report           {rendered:6.2f} s   (of which ~2-3 s start a kernel)")


if __name__ == "__main__":
    main()
