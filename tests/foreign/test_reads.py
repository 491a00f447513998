"""Every public read (experiments, runs, run, history, artifacts) on every foreign store,
checked against what MLflow's and Aim's own clients say about the same store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data_fixtures.foreign import aim_runs, mlflow_plain
from tests.foreign._truth import (
    aim_series,
    frame_points,
    mlflow_artifacts,
    mlflow_points,
    mlflow_runs,
    mlflow_value,
    same_points,
    same_values,
)
from tests.foreign.conftest import MLFLOW_STORES
from trackbook.errors import ExperimentNotFound, RunNotFound



def _param_matches(frame_value, logged: str) -> bool:
    """A params.* cell against MLflow's string: numeric columns hold the number it parses as."""
    if isinstance(frame_value, str):
        return frame_value == logged
    return not pd.isna(frame_value) and float(frame_value) == float(logged)


# ------------------------------------------------------------------------ experiments


@pytest.mark.parametrize("name", MLFLOW_STORES)
def test_experiments_are_mlflows(foreign, name):
    from mlflow.entities import ViewType

    truth = {(e.experiment_id, e.name, e.lifecycle_stage)
             for e in foreign.client(name).search_experiments(view_type=ViewType.ALL)}
    frame = foreign.store(name).experiments()
    assert set(zip(frame["experiment_id"], frame["name"], frame["lifecycle_stage"], strict=True)) == truth


def test_deleted_experiment_is_listed_as_deleted(foreign):
    frame = foreign.store("plain").experiments().set_index("name")
    assert frame.loc[mlflow_plain.DELETED_EXPERIMENT, "lifecycle_stage"] == "deleted"


def test_runs_of_a_deleted_experiment_are_refused_with_the_restore_command(foreign):
    from mlflow.entities import ViewType

    client = foreign.client("plain")
    exp = client.get_experiment_by_name(mlflow_plain.DELETED_EXPERIMENT)
    # MLflow's own search lists nothing there: its runs went to the trash with it.
    assert client.search_runs([exp.experiment_id]) == []
    assert len(client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)) == 1
    for name_or_id in (mlflow_plain.DELETED_EXPERIMENT, exp.experiment_id):
        with pytest.raises(ExperimentNotFound, match=f"is deleted.*restore --experiment-id {exp.experiment_id}$"):
            foreign.store("plain").runs(name_or_id)


def test_aim_experiments_are_aims(foreign):
    repo = foreign.aim_repo()
    truth = {e.name for e in repo.structured_db.experiments()}
    assert set(foreign.store("aim").experiments()["name"]) == truth
    assert {aim_runs.EXPERIMENT, aim_runs.SB3_EXPERIMENT} <= truth


# ------------------------------------------------------------------------------- runs


@pytest.mark.parametrize("name", MLFLOW_STORES)
def test_runs_are_mlflows(foreign, name):
    """Same runs, names, statuses, times, params, tags and last values as MLflow's search_runs."""
    truth = mlflow_runs(foreign.client(name))
    frame = foreign.store(name).runs()
    assert sorted(frame["run_id"]) == sorted(truth)
    assert frame["start_time"].is_monotonic_decreasing
    for _, row in frame.iterrows():
        run = truth[row["run_id"]]
        assert row["name"] == run.info.run_name
        assert row["status"] == run.info.status
        assert row["start_time"].value // 1_000_000 == run.info.start_time
        if run.info.end_time is None:
            assert pd.isna(row["end_time"])
        else:
            assert row["end_time"].value // 1_000_000 == run.info.end_time
        assert row["parent_run_id"] == run.data.tags.get("mlflow.parentRunId")
        params = {c[len("params."):]: v for c, v in row.items() if c.startswith("params.") and not _missing(v)}
        # trackbook reads a param logged as the string "None" as missing (issue 14 item 6)
        logged_params = {k: v for k, v in run.data.params.items() if v != "None"}
        assert set(params) == set(logged_params), row["name"]
        for key, logged in logged_params.items():
            assert _param_matches(params[key], logged), (row["name"], key, params[key], logged)
        tags = {c[len("tags."):]: v for c, v in row.items() if c.startswith("tags.") and not _missing(v)}
        assert tags == {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}, row["name"]
        metrics = {c[len("metrics."):]: v for c, v in row.items() if c.startswith("metrics.") and not pd.isna(v)}
        logged = {k: mlflow_value(v) for k, v in run.data.metrics.items()}
        assert set(metrics) == {k for k, v in logged.items() if not math.isnan(v)}, row["name"]
        for key, value in metrics.items():
            assert same_values([value], [logged[key]]), (row["name"], key)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_plain_runs_keep_what_hand_written_scripts_logged(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    frame = store.runs(mlflow_plain.EXPERIMENT).set_index("name")
    assert "deleted" not in frame.index  # MLflow's search_runs leaves deleted runs out too
    assert frame.loc["running", "status"] == "RUNNING" and pd.isna(frame.loc["running", "end_time"])
    assert frame.loc["failed", "status"] == "FAILED" and frame.loc["killed", "status"] == "KILLED"
    wide = store.run(ids["wide-params"])
    assert len(wide.filter(like="params.")) == mlflow_plain.N_WIDE_PARAMS
    assert wide["params.long_note"] == mlflow_plain.LONG_VALUE and wide["tags.long_tag"] == mlflow_plain.LONG_VALUE
    tags = store.run(ids["odd-tags"])
    assert tags["tags.note"] == mlflow_plain.NEWLINE_TAG and tags["tags.html"] == mlflow_plain.HTML_TAG
    assert tags["tags.empty"] == ""
    odd = store.run(ids["odd-names"])
    assert {f"metrics.{m}" for m in mlflow_plain.ODD_METRICS} - {"metrics.train/loss"} <= set(odd.index)
    assert odd["metrics.train/loss"] == -math.inf  # the last step logged -inf
    empty = store.run(ids["empty"])
    assert not [c for c in empty.index if c.startswith(("params.", "metrics.", "tags."))]


def test_filters_reach_odd_metric_names(foreign):
    store = foreign.store("plain")
    kept = store.runs(mlflow_plain.EXPERIMENT, filter="`metrics.val loss` > -100")
    assert kept["name"].tolist() == ["odd-names"]
    kept = store.runs(mlflow_plain.EXPERIMENT, filter="`metrics.ρ_reward/平均` == `metrics.ρ_reward/平均`")
    assert kept["name"].tolist() == ["odd-names"]


def test_none_string_and_leading_zero_params(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    kept = store.runs(mlflow_plain.EXPERIMENT, filter="params.lr > 0.005")
    assert set(kept["name"]) == {"typed-1", "no-metrics", "failed", "killed"}
    assert store.run(ids["typed-1"])["params.code"] == "007"


def test_deleted_runs_read_as_gone(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    for key in ("deleted", "in-deleted-exp"):
        with pytest.raises(RunNotFound):
            store.run(ids[key])
    everything = set(store.runs()["run_id"])
    assert ids["deleted"] not in everything and ids["in-deleted-exp"] not in everything


@pytest.mark.parametrize("name", MLFLOW_STORES)
def test_run_is_its_runs_row(foreign, name):
    store = foreign.store(name)
    frame = store.runs()
    for _, row in frame.head(12).iterrows():
        one, full = store.run(row["run_id"]), row.dropna()
        assert list(one.index) == list(full.index)
        for key in one.index:  # a params column's type follows the rows read with it
            assert one[key] == full[key] or _param_matches(one[key], str(full[key])), (key, one[key], full[key])


# ---------------------------------------------------------------------------- history


@pytest.mark.parametrize("name", MLFLOW_STORES)
def test_history_is_mlflows(foreign, name):
    """Every point of every series, as MLflow's get_metric_history returns it (first 40 runs)."""
    store, client = foreign.store(name), foreign.client(name)
    truth = mlflow_runs(client)
    run_ids = sorted(truth)[:40]
    hist = store.history(run_ids, cache=False)
    cached_cold, cached_warm = store.history(run_ids), store.history(run_ids)
    assert list(hist["run_id"].cat.categories) == run_ids
    for rid in run_ids:
        metrics = sorted(truth[rid].data.metrics)
        assert sorted(hist.loc[hist["run_id"] == rid, "metric"].astype(str).unique()) == metrics
        for metric in metrics:
            expected = mlflow_points(client, rid, metric)
            for frame in (hist, cached_cold, cached_warm):
                assert same_points(frame_points(frame, rid, metric), expected), (name, truth[rid].info.run_name, metric)


def test_history_keeps_repeated_negative_and_omitted_steps(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    hist = store.history(ids["odd-steps"])
    by_metric = {m: part for m, part in hist.groupby("metric", observed=True)}
    assert by_metric["repeated"]["step"].tolist() == [0, 1, 1, 1, 2]
    assert by_metric["repeated"]["value"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # in the order logged
    assert by_metric["negative"]["step"].tolist() == list(range(-5, 5))
    assert by_metric["omitted"]["step"].tolist() == [0, 0, 0]
    assert by_metric["omitted"]["value"].tolist() == [10.0, 20.0, 30.0]


def test_history_by_odd_names_and_nonfinite_values(foreign):
    store, ids, client = foreign.store("plain"), foreign.ids("plain"), foreign.client("plain")
    hist = store.history(ids["odd-names"], metrics=["ρ_reward/平均", "train/loss", "val loss"])
    assert sorted(hist["metric"].astype(str).unique()) == ["train/loss", "val loss", "ρ_reward/平均"]
    loss = hist[hist["metric"] == "train/loss"]["value"].to_numpy()
    assert np.isnan(loss[7]) and loss[8] == math.inf and loss[9] == -math.inf
    assert same_points(frame_points(hist, ids["odd-names"], "val loss"), mlflow_points(client, ids["odd-names"], "val loss"))


def test_history_of_runs_without_metrics_is_empty(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    hist = store.history([ids["no-metrics"], ids["empty"]])
    assert hist.empty and list(hist.columns) == ["run_id", "metric", "step", "value", "timestamp"]


# -------------------------------------------------------------------------- artifacts


@pytest.mark.parametrize("name", MLFLOW_STORES)
def test_artifacts_are_mlflows(foreign, name, tmp_path):
    store, client = foreign.store(name), foreign.client(name)
    for rid in sorted(mlflow_runs(client))[:15]:
        frame = store.artifacts(rid)
        assert list(zip(frame["path"], frame["size"].astype(object), strict=True)) == mlflow_artifacts(client, rid)


def test_hand_logged_artifacts_download(foreign, tmp_path):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    frame = store.artifacts(ids["basic"])
    assert sorted(frame["path"]) == ["config.json", "notes/readme.txt"]
    copy = store.download_artifact(ids["basic"], "notes/readme.txt", tmp_path)
    assert copy.read_text() == "written by hand\n"


# -------------------------------------------------------------------------------- Aim


def test_aim_runs_are_aims(foreign):
    """Every run Aim iterates, with its name, experiment, status and tags (Aim's own included)."""
    repo = foreign.aim_repo()
    truth = {r.hash: r for r in repo.iter_runs()}
    frame = foreign.store("aim").runs().set_index("run_id")
    assert set(frame.index) == set(truth)
    ids = foreign.ids("aim")
    for rid, run in truth.items():
        assert frame.loc[rid, "name"] == run.name
        assert frame.loc[rid, "experiment"] == run.experiment
        assert frame.loc[rid, "status"] == ("RUNNING" if run.active else "FINISHED")
    assert frame.loc[ids["never-closed"], "status"] == "RUNNING"
    # Aim's tags (run.add_tag) and a list in run["tags"] are both shown as tags
    contexts = frame.loc[ids["contexts"]]
    assert all(contexts.get(f"tags.{t}") is not None for t in aim_runs.AIM_TAGS)
    listed = frame.loc[ids["list-tags"]]
    assert all(listed.get(f"tags.{t}") is not None for t in aim_runs.LIST_TAGS)
    assert frame.loc[ids["plain"], "tags.team"] == "rl"


def test_aim_string_hparams_are_kept(foreign):
    run = foreign.store("aim").run(foreign.ids("aim")["string-hparams"])
    assert aim_runs.STRING_HPARAMS in set(run.filter(like="params.").astype(str))


def test_aim_dict_hparams_flatten(foreign):
    """Runs trackbook can read today (dict hparams, dict tags): params and last values as Aim has them."""
    store, ids, repo = foreign.store("aim"), foreign.ids("aim"), foreign.aim_repo()
    frame = store.runs(run_ids=[ids["contexts"], ids["plain"], ids["ppo"]]).set_index("name")
    assert frame.loc["contexts", "params.optimizer.name"] == "adam"
    assert frame.loc["contexts", "params.batch_size"] == 64
    assert frame.loc["plain", "tags.team"] == "rl"
    for key in ("contexts", "plain", "ppo"):
        series = aim_series(repo, ids[key])
        row = frame[frame.index == key].iloc[0]
        for label, (_, values) in series.items():
            assert same_values([row[f"metrics.{label}"]], [values[-1]]), (key, label)


def test_aim_sb3_callback_hyper_parameters_are_params(foreign):
    """aim.sb3.AimCallback sets a model's attributes as top-level run keys: its
    hyper-parameters read as params (equal to Aim's own values), filterable; the
    training state and object reprs it stores beside them do not."""
    store, ids, repo = foreign.store("aim"), foreign.ids("aim"), foreign.aim_repo()
    aim_run = repo.get_run(ids["ppo"])
    row = store.run(ids["ppo"])
    for key in ("learning_rate", "gamma", "n_steps", "batch_size", "n_epochs", "seed", "algo"):
        assert row[f"params.{key}"] == aim_run[key], key
    assert (row["params.n_steps"], row["params.algo"]) == (256, "PPO")  # as the fixture trained it
    for key in ("start_time", "num_timesteps", "env", "rollout_buffer", "policy", "_last_obs"):
        assert f"params.{key}" not in row.index, key
    found = store.runs(aim_runs.SB3_EXPERIMENT, filter="params.n_steps = 256 and params.algo = 'PPO'")
    assert found["run_id"].tolist() == [ids["ppo"]]


def test_aim_history_is_aims(foreign):
    """Each (name, context) series of the readable runs, step for step, as Aim's SDK reads it."""
    store, ids, repo = foreign.store("aim"), foreign.ids("aim"), foreign.aim_repo()
    keys = ["ppo", "contexts", "plain", "never-closed"]
    hist = store.history([ids[k] for k in keys], cache=False)
    for key in keys:
        series = aim_series(repo, ids[key])
        assert series, key
        for label, (steps, values) in series.items():
            part = hist[(hist["run_id"] == ids[key]) & (hist["metric"] == label)]
            assert part["step"].tolist() == steps, (key, label)
            assert same_values(part["value"], values), (key, label)
    assert {"loss[subset=train]", "loss[subset=val]"} <= set(hist["metric"].astype(str))
    assert "ep_rew_mean[tag=rollout]" in set(hist["metric"].astype(str))


def test_aim_history_of_every_run(foreign):
    store = foreign.store("aim")
    hist = store.history(store.runs())
    assert set(hist["run_id"].astype(str)) == set(foreign.ids("aim").values())
