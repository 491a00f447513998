"""Figures from the fixture stores' frames: the traces and axes a reader relies on."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import trackbook as tb
from trackbook import columns as C
from trackbook import plots


@pytest.fixture(scope="module")
def mlflow_ids(fixture_ids):
    return fixture_ids["mlflow"]


def test_learning_curves_one_panel_per_metric_one_colour_per_run(mlflow_store, mlflow_ids):
    run_ids = [mlflow_ids["plain-0"], mlflow_ids["plain-1"]]
    runs = mlflow_store.runs(run_ids=run_ids)
    hist = mlflow_store.history(run_ids, ["rollout/ep_rew_mean", "train/loss"])
    fig = plots.learning_curves(hist, ["rollout/ep_rew_mean", "train/loss"], runs=runs)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 4
    assert {t.name for t in fig.data} == set(runs[C.NAME])
    assert [t.showlegend for t in fig.data].count(True) == 2  # each run once in the legend
    colour = {t.legendgroup: t.line.color for t in fig.data}
    assert all(t.line.color == colour[t.legendgroup] for t in fig.data) and len(set(colour.values())) == 2
    assert fig.layout.yaxis.title.text == "rollout/ep_rew_mean" and fig.layout.yaxis2.title.text == "train/loss"
    assert fig.layout.xaxis2.title.text == "step"
    # NaN and inf points are left out of the drawing, not drawn as gaps at odd places
    drawn = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
    assert np.isfinite(drawn).all()


def test_smoothing_keeps_the_raw_curve_faint(mlflow_store, mlflow_ids):
    hist = mlflow_store.history(mlflow_ids["plain-0"], "rollout/ep_rew_mean")
    fig = plots.learning_curves(hist, smoothing=0.9)
    raw, smooth = fig.data
    assert raw.opacity == 0.25 and not raw.showlegend
    assert np.std(np.diff(smooth.y)) < np.std(np.diff(raw.y))
    with pytest.raises(ValueError, match="smoothing"):
        plots.learning_curves(hist, smoothing=1.5)


def test_large_histories_are_downsampled_for_display():
    steps = np.arange(100_000)
    hist = pd.DataFrame({C.RUN_ID: "a" * 32, C.METRIC: "loss", C.STEP: steps, C.VALUE: np.sin(steps / 1000.0),
                         C.TIMESTAMP: pd.Timestamp("2026-01-01", tz="UTC")})
    hist.loc[54_321, C.VALUE] = 50.0  # a spike must survive
    fig = plots.learning_curves(hist, max_points=2000)
    assert len(fig.data[0].y) <= 2000 and max(fig.data[0].y) == 50.0
    assert fig.data[0].x[0] == 0 and fig.data[0].x[-1] == 99_999


def test_chain_progress_marks_each_enhancement(store_and_ids):
    store, ids = store_and_ids
    chain = tb.chain(store, ids["chain-2"])
    fig = plots.chain_progress(chain.history("rollout/ep_rew_mean"), chain_runs=chain.runs)
    assert [t.name for t in fig.data] == ["chain-0", "chain-1", "chain-2"]
    assert [s.x0 for s in fig.layout.shapes] == [10_000, 20_000]
    assert fig.layout.xaxis.title.text == "global_step"
    xs = np.concatenate([np.asarray(t.x) for t in fig.data])
    assert np.all(np.diff(xs) > 0)  # one continuous axis
    with pytest.raises(ValueError, match="Chain.history"):
        plots.chain_progress(store.history(ids["chain-2"]))


def test_study_figures(store_and_ids):
    store, ids = store_and_ids
    study = tb.study(store, ids["study"])
    history = plots.optimization_history(study.trials, study.direction)
    names = [t.name for t in history.data]
    assert names[:2] == ["objective", "best so far"] and {"fail", "running"} <= set(names)
    assert max(history.data[1].y) == pytest.approx(study.best["objective"])
    assert history.layout.xaxis.title.text == "trial"
    par = plots.parallel_coordinates(study.trials)
    labels = [d.label for d in par.data[0].dimensions]
    assert sorted(labels) == ["gamma", "log10(learning_rate)", "objective"] and labels[-1] == "objective"
    assert len(par.data[0].dimensions[0].values) == 6  # completed trials only
    slices = plots.param_slices(study.trials)
    assert len(slices.data) == 2 and slices.layout.xaxis2.type == "log"  # learning_rate spans decades
    imp = plots.param_importance(study.importance())
    assert isinstance(imp.data[0], go.Bar) and set(imp.data[0].y) == {"learning_rate", "gamma"}


def test_comparison_bars(store_and_ids):
    store, ids = store_and_ids
    table = tb.compare(store, [ids["plain-0"], ids["plain-1"]], ["rollout/ep_rew_mean", "train/loss"])
    fig = plots.comparison_bars(table)
    assert len(fig.data) == 2 and all(isinstance(t, go.Bar) for t in fig.data)
    assert list(fig.data[0].y) == pytest.approx(table["final.rollout/ep_rew_mean"].tolist())


def test_html_in_run_names_is_shown_as_text(mlflow_store, mlflow_ids):
    runs = mlflow_store.runs("ppo-cartpole")
    evil = runs[runs[C.NAME].str.contains("<script>")]
    fig = plots.learning_curves(mlflow_store.history(evil, "rollout/ep_rew_mean"), runs=evil)
    assert "<script>" not in fig.data[0].name and "&lt;script&gt;" in fig.data[0].name


@pytest.mark.parametrize("build", [
    lambda: plots.learning_curves(pd.DataFrame(columns=C.HISTORY_COLUMNS)),
    lambda: plots.optimization_history(pd.DataFrame(columns=["trial_number", "state", "objective", "name"])),
    lambda: plots.comparison_bars(pd.DataFrame(columns=[C.RUN_ID, C.NAME])),
    lambda: plots.param_importance(pd.DataFrame(columns=["param", "importance"])),
])
def test_empty_input_gives_an_empty_titled_figure_and_a_warning(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = build()
    assert fig.layout.title.text and not fig.data
    assert len(fig.layout.annotations) == 1
    assert any(issubclass(w.category, UserWarning) for w in caught)


def test_a_long_chain_draws_every_boundary_and_label_once():
    import numpy as np
    import pandas as pd

    links, n = 120, 20
    ids = [f"{i:032x}" for i in range(links)]
    hist = pd.DataFrame({C.RUN_ID: pd.Categorical(np.repeat(ids, n)), C.METRIC: pd.Categorical(["reward"] * (links * n)),
                         C.STEP: np.tile(np.arange(n), links), C.VALUE: np.arange(links * n, dtype=float),
                         C.TIMESTAMP: pd.Timestamp(0, tz="UTC"), C.GLOBAL_STEP: np.arange(links * n),
                         C.SEGMENT: np.repeat(np.arange(links), n)})
    runs = pd.DataFrame({C.RUN_ID: ids, C.NAME: [f"link-{i}" for i in range(links)], C.POSITION: np.arange(links),
                         C.OFFSET: np.arange(links) * n})
    fig = tb.plots.chain_progress(hist, chain_runs=runs)
    assert [s.x0 for s in fig.layout.shapes] == list(range(n, links * n, n))  # one dashed line per enhancement
    assert sum(a.text.startswith("→ link-") for a in fig.layout.annotations) == links - 1
    assert len(fig.data) == links and sum(len(t.x) for t in fig.data) == links * n
