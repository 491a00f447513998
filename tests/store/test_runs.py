"""runs(), run(), experiments() on each local fixture store (MLflow sqlite and Aim)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import trackbook as tb

from data_fixtures.build import HTML_RUN_NAME
from trackbook import columns as C
from trackbook.errors import ExperimentNotFound, InvalidFilter, InvalidRunId, RunNotFound


def names(frame: pd.DataFrame) -> set[str]:
    return set(frame[C.NAME])


def test_experiments_lists_both_fixture_experiments(store_and_ids):
    store, _ = store_and_ids
    exps = store.experiments()
    assert list(exps.columns) == C.EXPERIMENT_COLUMNS
    assert {"ppo-cartpole", "hpo-cartpole"} <= set(exps[C.NAME])
    assert str(exps[C.CREATION_TIME].dtype) == "datetime64[ns, UTC]"


def test_runs_of_one_experiment_have_documented_columns(store_and_ids):
    store, _ = store_and_ids
    runs = store.runs("ppo-cartpole")
    assert list(runs.columns[: len(C.RUN_COLUMNS)]) == C.RUN_COLUMNS
    assert len(runs) == 8
    assert HTML_RUN_NAME in names(runs)
    assert {"params.learning_rate", "tags.team", "metrics.eval/mean_reward"} <= set(runs.columns)
    # numeric params become numbers; text params stay text
    assert runs["params.learning_rate"].dtype == "float64"
    assert runs["params.n_steps"].dtype == "int64"
    assert set(runs["params.algorithm"]) == {"PPO", "A2C"}
    # newest first
    assert runs[C.START_TIME].is_monotonic_decreasing


def test_runs_of_all_experiments(store_and_ids):
    store, _ = store_and_ids
    assert len(store.runs()) == 17
    assert len(store.runs(["ppo-cartpole", "hpo-cartpole"])) == 17


def test_statuses_parents_and_bases(store_and_ids):
    store, ids = store_and_ids
    runs = store.runs("hpo-cartpole").set_index(C.NAME)
    assert runs.loc["trial-5", C.STATUS] == C.FAILED
    assert runs.loc["trial-7", C.STATUS] == C.RUNNING
    assert runs.loc["trial-7", C.STALE]  # RUNNING since 2026-01-01 with no sign of life
    assert not runs[C.STALE].drop(index="trial-7").any()
    assert pd.isna(runs.loc["trial-7", C.END_TIME]) and math.isnan(runs.loc["trial-7", C.DURATION])
    assert (runs.loc["trial-0", C.DURATION]) > 0
    trials = runs.drop(index="study-ppo-lr-gamma")
    assert set(trials[C.PARENT_RUN_ID]) == {ids["study"]}
    assert runs.loc["study-ppo-lr-gamma", C.PARENT_RUN_ID] is None

    plain = store.runs("ppo-cartpole").set_index(C.NAME)
    assert plain.loc["chain-1", C.BASE_RUN_ID] == ids["chain-0"]
    assert plain.loc["chain-1b", C.BASE_RUN_ID] == ids["chain-1"]
    assert plain.loc["chain-0", C.BASE_RUN_ID] is None


def test_last_metric_values_keep_nan(store_and_ids):
    store, _ = store_and_ids
    runs = store.runs("ppo-cartpole").set_index(C.NAME)
    assert math.isnan(runs.loc[HTML_RUN_NAME, "metrics.train/loss"])
    assert runs.loc["ppo-lr-3e-4", "metrics.total_timesteps"] == 2000.0
    assert runs.loc["chain-2", "metrics.total_timesteps"] == 30000.0


def test_html_is_kept_verbatim_in_names_and_tags(store_and_ids):
    store, _ = store_and_ids
    row = store.runs("ppo-cartpole").set_index(C.NAME).loc[HTML_RUN_NAME]
    assert row["tags.note"] == "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("params.learning_rate > 3e-4", {"ppo-lr-1e-3", "a2c-baseline", "chain-1b"}),
        ("params.algorithm = 'A2C'", {"a2c-baseline"}),
        ("params.algorithm == 'PPO' AND params.learning_rate >= 1e-3", {"ppo-lr-1e-3", "chain-1b"}),
        ("`metrics.eval/mean_reward` > 250", {"ppo-lr-1e-3", HTML_RUN_NAME}),
        ('metrics."eval/mean_reward" > 250 and params.gamma < 0.99', {HTML_RUN_NAME}),
        ("name.str.startswith('chain')", {"chain-0", "chain-1", "chain-2", "chain-1b"}),
        ("base_run_id.notna()", {"chain-1", "chain-2", "chain-1b"}),
    ],
)
def test_filter_expressions(store_and_ids, expression, expected):
    store, _ = store_and_ids
    assert names(store.runs("ppo-cartpole", filter=expression)) == expected


def test_status_argument(store_and_ids):
    store, _ = store_and_ids
    assert names(store.runs(status="running")) == {"trial-7"}
    assert names(store.runs("hpo-cartpole", status=["FAILED", "RUNNING"])) == {"trial-5", "trial-7"}
    with pytest.raises(ValueError, match="not a run status"):
        store.runs(status="DONE")


def test_run_ids_argument_and_run(store_and_ids):
    store, ids = store_and_ids
    picked = store.runs(run_ids=[ids["chain-0"], ids["trial-3"]])
    assert names(picked) == {"chain-0", "trial-3"}
    one = store.run(ids["trial-3"])
    assert one[C.NAME] == "trial-3"
    assert one[C.PARENT_RUN_ID] == ids["study"]
    assert "params.learning_rate" in one.index
    assert "params.algorithm" not in one.index  # empty fields are dropped


def test_lookup_keeps_the_order_given_and_names_every_unknown_id(store_and_ids):
    store, ids = store_and_ids
    order = [ids["trial-3"], ids["chain-0"], ids["study"]]
    assert store.lookup(order)[C.RUN_ID].tolist() == order
    assert store.lookup(store.runs(run_ids=order))[C.RUN_ID].tolist() != []
    unknown = ["0" * len(order[0]), "1" * len(order[0])]
    with pytest.raises(RunNotFound, match=f"{unknown[0]}, {unknown[1]}") as caught:
        store.lookup([order[0], *unknown])
    assert caught.value.run_ids == unknown
    with pytest.raises(RunNotFound, match=unknown[0]):
        tb.compare(store, [order[0], unknown[0]], "objective")  # was a raw KeyError
    with pytest.raises(ValueError, match="pass a run id, a list of run ids, or a frame"):
        store.history(None)  # was a raw TypeError


def test_bad_inputs_say_what_to_do(store_and_ids):
    store, _ = store_and_ids
    with pytest.raises(ExperimentNotFound, match="ppo-cartpole"):
        store.runs("no-such-experiment")
    with pytest.raises(InvalidRunId, match="not a .* run id"):
        store.run("'; DROP TABLE runs; --")
    missing = "0" * len(store.runs()[C.RUN_ID].iloc[0])
    with pytest.raises(RunNotFound, match=missing):
        store.run(missing)
    with pytest.raises(InvalidFilter, match="params.learning_rate"):
        store.runs("ppo-cartpole", filter="params.no_such_param > 1")
    with pytest.raises(InvalidFilter, match="Could not apply filter"):
        store.runs(filter="params.learning_rate >")


def test_artifacts_list_and_download(store_and_ids, tmp_path):
    store, ids = store_and_ids
    listing = store.artifacts(ids["chain-1"])
    assert list(listing[C.PATH]) == ["checkpoints/final.txt", "model/model.txt"]
    assert list(listing[C.SIZE]) == [len("20000\n"), len("weights of chain-1\n")]
    assert list(store.artifacts(ids["chain-1"], "model")[C.PATH]) == ["model/model.txt"]
    copy = store.download_artifact(ids["chain-1"], "model/model.txt", tmp_path)
    assert copy.read_text() == "weights of chain-1\n"
    folder = store.download_artifact(ids["chain-1"], "checkpoints", tmp_path / "ck")
    assert (folder / "final.txt").read_text() == "20000\n"
