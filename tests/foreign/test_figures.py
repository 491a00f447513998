"""Every figure of ``trackbook.plots`` on the foreign stores: what is drawn is what MLflow,
Aim and Optuna say was logged."""

from __future__ import annotations

import math
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest

import trackbook as tb
from data_fixtures.foreign import OPTUNA_STORAGE, mlflow_plain, optuna_study, trading
from tests.foreign._truth import aim_series, mlflow_points, mlflow_runs
from tests.foreign.conftest import MLFLOW_STORES


def _plotted(fig: go.Figure) -> list[float]:
    """Every finite y value drawn by the figure's line traces, sorted."""
    values = []
    for trace in fig.data:
        if trace.type == "scatter" and trace.y is not None and trace.hoverinfo != "skip":  # not a faint raw twin
            values += [float(v) for v in trace.y if v is not None and math.isfinite(float(v))]
    return sorted(values)


@pytest.mark.parametrize("name", MLFLOW_STORES)
def test_learning_curves_draw_every_finite_point_mlflow_has(foreign, name):
    store, client = foreign.store(name), foreign.client(name)
    truth = mlflow_runs(client)
    run_ids = sorted(truth)[:30]
    fig = tb.plots.learning_curves(store.history(run_ids), runs=store.runs(run_ids=run_ids))
    expected = sorted(v for rid in run_ids for metric in truth[rid].data.metrics
                      for _, v, _ in mlflow_points(client, rid, metric) if math.isfinite(v))
    assert _plotted(fig) == expected
    titles = {a.text for a in fig.layout.annotations}
    assert {tb.plots._base.label(m) for rid in run_ids for m in truth[rid].data.metrics} <= titles


def test_learning_curves_of_runs_without_metrics_is_an_empty_titled_figure(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    with pytest.warns(UserWarning, match="no metric history"):
        fig = tb.plots.learning_curves(store.history([ids["empty"], ids["no-metrics"]]))
    assert not fig.data and fig.layout.title.text


def test_learning_curves_escape_html_tag_and_odd_names(foreign):
    store, ids = foreign.store("plain"), foreign.ids("plain")
    fig = tb.plots.learning_curves(store.history(ids["odd-names"]), runs=store.runs(run_ids=[ids["odd-names"]]))
    text = fig.to_json()
    assert "<script>" not in text
    assert len(_plotted(fig)) == len(mlflow_plain.ODD_METRICS) * 10 - 3  # NaN, +inf and -inf are not drawn


def test_learning_curves_of_aim_series(foreign):
    store, ids, repo = foreign.store("aim"), foreign.ids("aim"), foreign.aim_repo()
    keys = ["ppo", "contexts", "plain", "never-closed"]
    fig = tb.plots.learning_curves(store.history([ids[k] for k in keys]))
    expected = sorted(v for k in keys for _, values in aim_series(repo, ids[k]).values() for v in values
                      if math.isfinite(v))
    assert _plotted(fig) == expected


def test_learning_curves_of_every_aim_run(foreign):
    store = foreign.store("aim")
    runs = store.runs()
    fig = tb.plots.learning_curves(store.history(runs), runs=runs)
    assert len(_plotted(fig)) > 0


def test_chain_progress_on_restarting_trading_steps(foreign):
    store, ids, client = foreign.store("trading"), foreign.ids("trading"), foreign.client("trading")
    chain = tb.chain(store, ids["restart-2"])
    fig = tb.plots.chain_progress(chain.history("evaluation/mean_reward"), chain_runs=chain.runs)
    xs = [x for trace in fig.data for x in trace.x]
    assert max(xs) == client.get_metric_history(ids["restart-2"], "total_timesteps")[-1].value
    assert min(xs) == trading.EVAL_EVERY
    boundaries = sorted(s.x0 for s in fig.layout.shapes)
    assert boundaries == [trading.SEGMENT, 2 * trading.SEGMENT]
    expected = sorted(m.value for key in ("restart-0", "restart-1", "restart-2")
                      for m in client.get_metric_history(ids[key], "evaluation/mean_reward"))
    assert _plotted(fig) == expected


def test_chain_progress_on_a_long_chain(foreign):
    store, ids = foreign.store("links"), foreign.ids("links")
    chain = tb.chain(store, ids["long-24"])
    fig = tb.plots.chain_progress(chain.history("reward"), chain_runs=chain.runs)
    assert len(fig.layout.shapes) == 24
    assert len(_plotted(fig)) == 25 * 10


@pytest.mark.parametrize("name", ["plain", "trading"])
def test_comparison_bars_are_compares_finals(foreign, name):
    store = foreign.store(name)
    runs = store.runs()
    metric = {"plain": "loss", "trading": "portfolio/sharpe_ratio"}[name]
    table = tb.compare(store, runs, [metric])
    fig = tb.plots.comparison_bars(table)
    assert len(fig.data) == 1 and fig.data[0].type == "bar"
    assert np.allclose(np.asarray(fig.data[0].y, dtype=float), table[f"final.{metric}"], equal_nan=True)


# ---------------------------------------------------------------------------- studies


def _optuna_truth(root):
    import optuna

    return optuna.load_study(study_name=optuna_study.STUDY_NAME, storage=f"sqlite:///{root / OPTUNA_STORAGE}")


def _study(foreign):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tb.study(foreign.store("optuna"), foreign.ids("optuna")["optuna-parent"])


def test_optimization_history_is_optunas(foreign):
    truth, study = _optuna_truth(foreign.root), _study(foreign)
    fig = tb.plots.optimization_history(study.trials, study.direction)
    objective, best = fig.data[0], fig.data[1]
    complete = sorted((t.number, t.value) for t in truth.trials if t.state.name == "COMPLETE")
    assert list(objective.x) == [n for n, _ in complete]
    assert np.allclose(objective.y, [v for _, v in complete])
    assert best.y[-1] == pytest.approx(truth.best_value)
    marked = {trace.name: len(trace.x) for trace in fig.data[2:]}
    assert marked.get("pruned") == sum(t.state.name == "PRUNED" for t in truth.trials)
    assert marked.get("fail") == sum(t.state.name == "FAIL" for t in truth.trials)


def test_parallel_coordinates_and_slices_draw_completed_trials(foreign):
    truth, study = _optuna_truth(foreign.root), _study(foreign)
    n_complete = sum(t.state.name == "COMPLETE" for t in truth.trials)
    fig = tb.plots.parallel_coordinates(study.trials)
    dims = fig.data[0].dimensions
    assert dims[-1].label == "objective" and len(dims[-1].values) == n_complete
    assert sorted(dims[-1].values) == pytest.approx(sorted(t.value for t in truth.trials if t.state.name == "COMPLETE"))
    slices = tb.plots.param_slices(study.trials)
    assert all(len(trace.x) == n_complete for trace in slices.data)


def test_param_importance_bars(foreign):
    study = _study(foreign)
    importance = study.importance()
    fig = tb.plots.param_importance(importance)
    assert sorted(fig.data[0].x) == pytest.approx(sorted(importance["importance"]))


def test_study_figures_on_a_hand_written_sweep(foreign):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        study = tb.study(foreign.store("plain"), foreign.ids("plain")["sweep-a"])
    fig = tb.plots.optimization_history(study.trials, study.direction)
    assert len(fig.data[0].x) == len(mlflow_plain.SWEEP_A_LR) - 1
    assert fig.data[1].y[-1] == pytest.approx(min(mlflow_plain.sweep_a_val_loss(t)[-1]
                                                  for t in range(len(mlflow_plain.SWEEP_A_LR))
                                                  if t != mlflow_plain.SWEEP_A_FAILED))
