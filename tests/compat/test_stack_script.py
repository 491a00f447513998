"""A training script written against the trading stack's tracking modules, run with only
its imports changed: it trains, continues the model as a chain link, runs a study from
the stack's YAML, serves the rl_training_* family, and writes the enhancement report and
a PNG. Everything is then checked against MLflow's, Optuna's and Prometheus' own answers."""

from __future__ import annotations

import runpy
import struct
import sys
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from trackbook.servers import free_port

# The stack's example HPO config (its documented sections and keys), trimmed to two trials.
HPO_YAML = """
experiment:
  name: "stock_trading_rl_1H"
  tags:
    project: "TradingBot"
    model_type: "PPO"
model:
  input_dim: 4
  hidden_layers: [64, 32]
  output_dim: 2
  activation: "relu"
training:
  algorithm: PPO
  epochs: 50
  batch_size: 32
  learning_rate: 0.001
  optimizer: "Adam"
hpo:
  param_space:
    learning_rate: [0.0001, 0.001, 0.01]
    batch_size: [32, 64]
  num_trials: 2
monitoring:
  prometheus_port: 8011
"""

# ---- the script. Above the marker: the imports, the only lines changed from the stack's. ----
SCRIPT = '''
from trackbook.compat import MLflowLoggingCallback, MLflowMetricConnector
from trackbook.compat import ConfigurationManager, health_check
from trackbook.compat import (
    start_metrics_server, record_training_start, record_training_complete, record_data_load_time,
)
from trackbook.hpo import optimize as run_study
# ---- unchanged below ----
import time

import gymnasium as gym
import mlflow
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor


class TradingMetrics(BaseCallback):
    """What the trading environment reports, logged through SB3's logger."""

    def __init__(self, eval_env):
        super().__init__()
        self.eval_env = eval_env
        self.rollouts = 0

    def _on_rollout_end(self):
        self.rollouts += 1
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=2)
        self.logger.record("evaluation/mean_reward", float(mean))
        self.logger.record("portfolio/sharpe_ratio", 0.1 * self.rollouts)
        self.logger.record("portfolio/max_drawdown", 5.0 + self.rollouts)
        self.logger.record("portfolio/win_rate", 40.0 + self.rollouts)
        self.logger.record("portfolio/total_return", 1.0 * self.rollouts)

    def _on_step(self):
        return True


config = ConfigurationManager("hpo_example.yaml").get_config()
experiment_name = config.experiment.name
health = health_check()
if not health.is_healthy:
    raise SystemExit(f"Issues: {health.issues}")

metrics_port = config.get("monitoring", {}).get("prometheus_port", 8011)
start_metrics_server(port=metrics_port)
started = time.time()
env = Monitor(gym.make("CartPole-v1"))
record_data_load_time(time.time() - started)
algorithm_name = config["training"]["algorithm"]
record_training_start(algorithm=algorithm_name, run_id=experiment_name)

# base model
model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, seed=0)
callback = MLflowLoggingCallback(experiment_name=experiment_name, previous_timesteps=0,
                                 prometheus_port=metrics_port)
model.learn(total_timesteps=256, callback=[callback, TradingMetrics(Monitor(gym.make("CartPole-v1")))])
base_model_run_id = callback.run_id
model.save("base_model.zip")

# enhancement: continue the base model
previous_timesteps = 0
if base_model_run_id:
    previous_run = mlflow.tracking.MlflowClient().get_run(base_model_run_id)
    if "total_timesteps" in previous_run.data.metrics:
        previous_timesteps = int(previous_run.data.metrics["total_timesteps"])
model = PPO.load("base_model.zip", env=env)
unified_callback = MLflowLoggingCallback(experiment_name=experiment_name, previous_timesteps=previous_timesteps,
                                         base_run_id=base_model_run_id, prometheus_port=metrics_port)
model.learn(total_timesteps=256, callback=[unified_callback, TradingMetrics(Monitor(gym.make("CartPole-v1")))])
final_run_id = unified_callback.run_id
record_training_complete(algorithm=algorithm_name, duration=time.time() - started, run_id=experiment_name)

# the study, from the YAML's hpo section
def objective(trial):
    trial_model = PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=64, seed=trial.number,
                      learning_rate=trial.params["learning_rate"], batch_size=trial.params["batch_size"])
    trial_model.learn(128)
    mean, _ = evaluate_policy(trial_model, Monitor(gym.make("CartPole-v1")), n_eval_episodes=2)
    return float(mean)

study = run_study(objective, config.hpo, experiment=experiment_name + "-hpo")

# the enhancement chain: plot and report
connector = MLflowMetricConnector(experiment_name=experiment_name)
runs = connector.get_run_chain(final_run_id)
run_ids = [run.info.run_id for run in runs]
connector.generate_continuous_plot(run_ids, "evaluation/mean_reward",
                                   title="Reward Progress Across Training Runs", save_path="reward_progress.png")
report_data, html_path = connector.generate_enhancement_report(final_run_id, output_path="enhancement_report.html")
'''


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_a_stack_script_with_changed_imports(tmp_path: Path, monkeypatch, fresh_metrics):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = free_port()
    (tmp_path / "hpo_example.yaml").write_text(HPO_YAML)
    (tmp_path / "train_agent.py").write_text(SCRIPT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as the stack's scripts are configured
    # the stack's CLI overrides, read from the command line by ConfigurationManager
    monkeypatch.setattr(sys, "argv", ["train_agent.py", "--monitoring.prometheus_port", str(port),
                                      "--training.epochs", "2"])
    script = runpy.run_path(str(tmp_path / "train_agent.py"), run_name="__main__")

    client = MlflowClient(uri)
    config = script["config"]
    assert config.monitoring.prometheus_port == port and config.training.epochs == 2  # overrides applied
    assert config.model.hidden_layers[0] == 64  # the stack's own keys kept

    # it trained, and continued the model as a chain link
    base, final = client.get_run(script["base_model_run_id"]), client.get_run(script["final_run_id"])
    assert base.info.status == final.info.status == "FINISHED"
    assert final.data.tags["base_model_run_id"] == base.info.run_id
    assert base.data.metrics["total_timesteps"] == 256
    assert final.data.metrics["previous_timesteps"] == 256 and final.data.metrics["total_timesteps"] == 512
    assert script["run_ids"] == [base.info.run_id, final.info.run_id]
    steps = [m.step for m in client.get_metric_history(final.info.run_id, "evaluation/mean_reward")]
    assert steps and min(steps) > 256  # the continued run's points go on from the base's

    # it ran a study from the YAML: num_trials trials, each with one value of each list
    study = script["study"].study
    assert len(study.trials) == 2 and all(t.state.name == "COMPLETE" for t in study.trials)
    for trial in study.trials:
        assert trial.params["learning_rate"] in (0.0001, 0.001, 0.01) and trial.params["batch_size"] in (32, 64)
    children = client.search_runs([client.get_experiment_by_name("stock_trading_rl_1H-hpo").experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{script['study'].parent_run_id}'")
    assert sorted(float(r.data.params["learning_rate"]) for r in children) == sorted(
        t.params["learning_rate"] for t in study.trials)

    # it serves the family over HTTP, trading gauges filled with what the runs logged last
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    agent = (("agent_id", "agent_0"), ("algorithm", "PPO"))
    for gauge in ("sharpe_ratio", "max_drawdown", "win_rate", "total_return"):
        last = client.get_metric_history(final.info.run_id, f"portfolio/{gauge}")[-1].value
        assert samples[(f"rl_training_{gauge}", agent)] == pytest.approx(last), gauge
    assert samples[("rl_training_runs_total", (("algorithm", "PPO"), ("status", "completed")))] == 3
    assert samples[("rl_training_data_load_time_seconds_count", ())] == 1
    assert samples.get(("rl_training_errors_total", (("error_type", "metric_name"),)), 0) == 0

    # it wrote the PNG and the enhancement report
    png = (tmp_path / "reward_progress.png").read_bytes()
    width, height = _png_size(png)
    assert width >= 600 and height >= 350 and len(png) > 10_000
    report_data, html_path = script["report_data"], Path(script["html_path"])
    assert html_path == tmp_path / "enhancement_report.html"
    html = html_path.read_text()
    assert "evaluation/mean_reward" in html and base.info.run_name in html and final.info.run_name in html
    assert report_data
