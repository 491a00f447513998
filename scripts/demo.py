"""The main job, on the embedded store ``sqlite:///mlflow.db`` in the working folder.

Run through ``bash scripts/dev demo``. Today it builds the fixture runs into the store
(once; a second call reuses them), then asks trackbook for a runs table and an
enhancement chain, as a user would in a notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trackbook as tb  # noqa: E402
from data_fixtures.build import PLAIN_EXPERIMENT, write_mlflow  # noqa: E402


def main() -> None:
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 12)
    pd.set_option("display.max_colwidth", 28)
    store = tb.connect("sqlite:///mlflow.db")
    print(f"Connected: {store}")
    if PLAIN_EXPERIMENT not in set(store.experiments()["name"]):
        print("Writing the fixture runs into it (first call only) ...")
        write_mlflow(store.uri, Path("mlartifacts"))

    runs = store.runs(PLAIN_EXPERIMENT)
    print(f"\n{len(runs)} runs in {PLAIN_EXPERIMENT!r}:")
    shown = ["name", "status", "duration", "params.algorithm", "params.learning_rate", "metrics.eval/mean_reward"]
    print(runs[shown].to_string(index=False))

    final = runs.loc[runs["name"] == "chain-2", "run_id"].iloc[0]
    chain = store.chain(final)
    print(f"\n{chain}")
    print(chain.runs[["position", "name", "offset", "metrics.total_timesteps"]].to_string(index=False))
    hist = chain.history("eval/mean_reward")
    summary = hist.groupby("segment").agg(
        first_step=("global_step", "min"), last_step=("global_step", "max"), last_reward=("value", "last")
    )
    print("\neval/mean_reward along the chain, one continuous axis:")
    print(summary.to_string())


if __name__ == "__main__":
    main()
