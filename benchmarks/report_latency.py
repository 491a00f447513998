"""Seconds per report, and how much of it is starting a kernel.

Builds the fixture store in a temporary folder (or uses --store), renders each of the
four reports with ``tb.report`` and, side by side, starts a kernel of this environment
and runs one empty cell (what every report pays before its first line), so the print
reads: total, kernel start-up, the rest (imports, queries, figures, HTML export).

    python benchmarks/report_latency.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def kernel_startup() -> float:
    """Seconds to start a python3 kernel and run an empty cell through nbclient."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    started = time.perf_counter()
    NotebookClient(nb, kernel_name="python3").execute()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import trackbook as tb
    from data_fixtures.build import build

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        build(work / "stores", only="mlflow")
        ids = json.loads((work / "stores" / "ids.json").read_text())["mlflow"]
        uri = f"sqlite:///{work / 'stores' / 'mlflow.db'}"
        reports = {
            "training": {"run_id": ids["plain-0"]},
            "hpo": {"parent_run_id": ids["study"]},
            "comparison": {"run_ids": [ids["plain-0"], ids["plain-1"], ids["chain-0"]],
                           "metrics": ["rollout/ep_rew_mean", "train/loss"]},
            "chain": {"run_id": ids["chain-2"], "metrics": ["rollout/ep_rew_mean"]},
        }
        kernel = [kernel_startup() for _ in range(args.rounds)]
        k = statistics.median(kernel)
        print(f"kernel start + empty cell: median {k:.2f} s over {args.rounds} rounds ({', '.join(f'{x:.2f}' for x in kernel)})")
        print(f"{'report':<12}{'total s':>9}{'kernel s':>10}{'share':>8}{'rest s':>8}{'HTML MB':>9}")
        for kind, params in reports.items():
            times = []
            for r in range(args.rounds):
                started = time.perf_counter()
                _, path = tb.report(kind, work / f"{kind}-{r}.html", store_uri=uri, progress=False, **params)
                times.append(time.perf_counter() - started)
            total = statistics.median(times)
            size = path.stat().st_size / 2**20
            print(f"{kind:<12}{total:>9.2f}{k:>10.2f}{k / total:>8.0%}{total - k:>8.2f}{size:>9.1f}")


if __name__ == "__main__":
    main()
