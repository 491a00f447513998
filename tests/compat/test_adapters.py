"""The trading stack's example calls, run against trackbook.compat on real stores, and the
defaults that must find the reward metric the stack's runs log (``evaluation/mean_reward``)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from mlflow import MlflowClient

import trackbook as tb
from trackbook import compat
from trackbook import layout as L
from trackbook.tracking.trackers import make_tracker

ROOT = Path(__file__).resolve().parents[2]
STACK_REWARD = "evaluation/mean_reward"


@pytest.fixture()
def uri(tmp_path: Path, monkeypatch) -> str:
    value = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", value)
    monkeypatch.setattr(compat, "_settings", {"uri": None, "experiment": None})
    return value


def _stack_chain(uri: str) -> list[str]:
    """Two runs as the stack's scripts log them: evaluation/mean_reward, a base_model_run_id link."""
    ids, base = [], None
    for i in range(2):
        tracker = make_tracker(uri)
        tags = {L.TAG_BASE_RUN: base} if base else {}
        tracker.start_run("stock_trading_rl_1H", name=f"link-{i}", tags=tags)
        offset = 1000 * i
        if base:
            tracker.log_metrics({L.METRIC_PREVIOUS_TIMESTEPS: offset}, offset)
        for step in range(100, 1001, 100):
            tracker.log_metrics({STACK_REWARD: 10.0 * i + step / 100, "train/loss": 1.0 / step}, offset + step)
        tracker.end_run("FINISHED", final_metrics={L.METRIC_TOTAL_TIMESTEPS: offset + 1000}, step=offset + 1000)
        ids.append(tracker.run_id)
        base = tracker.run_id
    return ids


def test_reward_metric_rule():
    assert L.reward_metric(["train/loss", "evaluation/mean_reward", "rollout/ep_rew_mean"]) == STACK_REWARD
    assert L.reward_metric(["metrics.eval/mean_reward", "metrics.evaluation/mean_reward"]) == "eval/mean_reward"
    assert L.reward_metric(["train/loss"]) is None and L.reward_metric([], "x") == "x"


def test_the_stacks_async_tracker_and_repository(uri: str):
    async def script():
        tracker = await compat.get_ml_tracker()
        run = await tracker.create_run(experiment_name="PPO_EUR_USD_Training",
                                       config={"agent_type": "PPO", "learning_rate": 0.0003, "symbol": "EUR/USD"})
        await tracker.log_metrics(run, compat.TrainingMetrics(step=1000, loss=0.045, reward=1250.5,
                                                              episode_length=100, sharpe_ratio=1.1))
        await tracker.log_metric(run, "win_rate", 0.68, step=1000)
        await tracker.finish_run(run, status=compat.ExperimentStatus.COMPLETED,
                                 final_metrics={"sharpe_ratio": 1.42, "max_drawdown": 0.088})
        repo = await compat.get_experiment_repository()
        done = await repo.list_experiments(status=compat.ExperimentStatus.COMPLETED)
        metrics = await repo.get_experiment_metrics(run.run_id)
        health = await compat.health_check()
        return run, done, metrics, health

    run, done, metrics, health = asyncio.run(script())
    mlflow_run = MlflowClient(uri).get_run(run.run_id)
    assert mlflow_run.info.status == "FINISHED" == compat.ExperimentStatus.COMPLETED
    assert mlflow_run.data.params == {"agent_type": "PPO", "learning_rate": "0.0003", "symbol": "EUR/USD"}
    assert [s.experiment_id for s in done] == [run.run_id]
    assert done[0].final_metrics == mlflow_run.data.metrics
    assert done[0].final_metrics["sharpe_ratio"] == 1.42 and done[0].duration.total_seconds() >= 0
    history = {m.name: (m.step, m.value) for m in metrics}
    assert history["reward"] == (1000, 1250.5) and history["win_rate"] == (1000, 0.68)
    assert health.is_healthy and health.issues == []


def test_health_reports_a_store_it_cannot_create(tmp_path: Path):
    (tmp_path / "a-file").write_text("not a folder")
    health = compat.health_check(f"sqlite:///{tmp_path / 'a-file' / 'sub' / 'mlflow.db'}")
    assert not health.is_healthy and "cannot create the store's folder" in health.issues[0]
    assert not (tmp_path / "a-file" / "sub").exists()
    assert tb.tracking.health_check(f"sqlite:///{tmp_path / 'a-file' / 'x.db'}").ok is False


def test_the_connector_finds_the_stacks_reward(uri: str, tmp_path: Path):
    base, final = _stack_chain(uri)
    connector = compat.MLflowMetricConnector(experiment_name="stock_trading_rl_1H")
    runs = connector.get_run_chain(final)
    assert [r.info.run_id for r in runs] == [base, final] and runs[1].data.tags[L.TAG_BASE_RUN] == base
    fig = connector.generate_continuous_plot([base, final], "evaluation/mean_reward", save_path=tmp_path / "c.html")
    xs = sorted(x for trace in fig.data for x in trace.x)
    assert xs[0] == 100 and xs[-1] == 2000 and (tmp_path / "c.html").is_file()
    # the name trackbook's callback logs is not there: the runs' own reward is drawn instead
    with pytest.warns(UserWarning, match="drawing their reward metric 'evaluation/mean_reward'"):
        fig = connector.generate_continuous_plot([base, final], "eval/mean_reward")
    assert sum(len(t.y) for t in fig.data) == 20


def test_reports_default_to_the_reward_the_runs_logged(uri: str, tmp_path: Path):
    base, final = _stack_chain(uri)
    reporter = compat.ExperimentReporter(mlflow_tracking_uri=uri)
    path = reporter.generate_training_report(run_id=final, output_path=tmp_path / "reports" / "training.html")
    assert STACK_REWARD in Path(path).read_text()
    data, _ = tb.report("training", tmp_path / "t.html", store_uri=uri, run_id=final, progress=False)
    assert data["metrics"][0] == STACK_REWARD
    data, _ = tb.report("comparison", tmp_path / "c.html", store_uri=uri, run_ids=[base, final], progress=False)
    assert data["metrics"] == [STACK_REWARD] and data["best_run"] == final  # 10 more reward
    data, _ = tb.report("chain", tmp_path / "ch.html", store_uri=uri, run_id=final, progress=False)
    assert set(data["deltas"]) == {f"1:{STACK_REWARD}"}


def test_config_organizer_and_enhanced_logger(uri: str, tmp_path: Path, monkeypatch):
    cfg_file = tmp_path / "basic_training_example.yaml"
    cfg_file.write_text("experiment:\n  name: NN\n  tags: {project: TradingBot}\n"
                        "model: {input_dim: 10, hidden_layers: [8], output_dim: 1}\n"
                        "training: {epochs: 3, learning_rate: 0.001}\n")
    monkeypatch.setattr("sys.argv", ["train_nn_model.py", "--training.learning_rate", "0.005", "--verbose"])
    config = compat.ConfigurationManager(cfg_file).get_config()
    assert config.training.learning_rate == 0.005 and config.model.input_dim == 10
    organizer = compat.ExperimentOrganizer(config)
    logger = compat.EnhancedMLflowLogger()
    with organizer.start_run(run_name="Basic_NN_Training") as run:
        logger.log_config(config)
        logger.log_environment_details()
        logger.log_model_summary("Sequential(Linear(10, 8), ReLU(), Linear(8, 1))", "model_architecture.txt")
        logger.log_training_history({"loss": [0.9, 0.5, 0.3], "val_loss": [1.0, 0.6, 0.4]})
        logger.log_metrics({"final_loss": 0.4})
    with pytest.raises(ZeroDivisionError), organizer.start_run(run_name="broken") as broken:
        1 / 0
    client = MlflowClient(uri)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "Basic_NN_Training"
    assert logged.data.tags["project"] == "TradingBot" and logged.data.params["training.learning_rate"] == "0.005"
    assert [m.value for m in client.get_metric_history(run.run_id, "val_loss")] == [1.0, 0.6, 0.4]
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"config.json", "environment.json", "model_architecture.txt"} <= artifacts
    assert client.get_run(broken.run_id).info.status == "FAILED"
    with pytest.raises(RuntimeError, match="No run is open"):
        logger.log_metrics({"x": 1})


def test_mlflow_utils_helpers(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(compat, "_settings", {"uri": None, "experiment": None})
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlruns.db"
    config = tmp_path / "mlflow_config.yaml"
    config.write_text(f'tracking_uri: "sqlite:///{db}"\ndefault_experiment_name: "FinAI_Default"\n')
    assert compat.setup_mlflow(config_file=config) == f"sqlite:///{db}"
    parent = compat.start_mlflow_run("study")
    child = compat.start_mlflow_run("trial", nested=True)
    compat.log_params({"lr": 0.01})
    compat.log_metrics({"loss": 0.5}, step=3)
    compat.set_tags({"status": "experimental"})
    compat.end_mlflow_run()
    compat.end_mlflow_run("FAILED")
    client = MlflowClient(f"sqlite:///{db}")
    trial = client.get_run(child)
    assert trial.data.tags["mlflow.parentRunId"] == parent and trial.data.params["lr"] == "0.01"
    assert client.get_experiment(trial.info.experiment_id).name == "FinAI_Default"
    assert client.get_metric_history(child, "loss")[0].step == 3
    assert client.get_run(parent).info.status == "FAILED" and trial.info.status == "FINISHED"


def test_status_names_map_onto_mlflows():
    S = compat.ExperimentStatus
    assert (S.COMPLETED, S.FAILED, S.CANCELLED, S.RUNNING) == ("FINISHED", "FAILED", "KILLED", "RUNNING")
    assert S.of("FINISHED") is S.COMPLETED and S.of("completed") is S.COMPLETED


def test_nothing_in_the_package_imports_compat():
    for path in (ROOT / "trackbook").rglob("*.py"):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "trackbook.compat" or n.startswith("trackbook.compat.") for n in names), path
