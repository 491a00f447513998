"""The parts TrackingCallback is made of, alone on a tracker, and the trading stack's call.

Real PPO on CartPole-v1 into real sqlite MLflow stores, read back with MLflow's own
client and with tb.connect; episodes checked against the Monitor's own records.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import trackbook as tb
from trackbook import columns as C
from trackbook.tracking import (
    EpisodeCallback,
    EvaluationCallback,
    ModelCheckpointCallback,
    SB3LoggerCallback,
    TrackingCallback,
    make_tracker,
)


class _Counter(BaseCallback):
    """The user's own callback: it must see every step beside ours."""

    def _on_step(self) -> bool:
        return True


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_the_trading_stacks_call_logs_its_dict_config(tmp_path: Path, cartpole, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # their scripts name the store in the environment
    config = {"agent_type": "PPO", "learning_rate": 0.0003, "symbol": "EUR/USD",
              "env": {"id": "CartPole-v1", "window": [8, 16]}}
    env = cartpole()
    cb = TrackingCallback(experiment_name="PPO_Training", config=config, log_interval=64,
                          eval_env=cartpole(), eval_freq=512, n_eval_episodes=2)
    mine = _Counter()
    PPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=0).learn(2048, callback=[cb, mine])
    assert mine.n_calls == 2048  # ours did not swallow the user's callback

    client = MlflowClient(uri)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "PPO_Training"
    params = run.data.params
    assert {k: params[k] for k in ("agent_type", "learning_rate", "symbol", "env.id", "env.window")} == {
        "agent_type": "PPO", "learning_rate": "0.0003", "symbol": "EUR/USD", "env.id": "CartPole-v1",
        "env.window": "[8, 16]"}
    assert params["algorithm"] == "PPO" and params["n_steps"] == "256"  # the model's own, beside the config
    logged = yaml.safe_load(Path(client.download_artifacts(cb.run_id, "config.yaml", str(tmp_path))).read_text())
    assert logged == config

    # log_interval=64: each point is the mean of the episodes that ended in its 64 steps
    ends, rewards = [], env.get_episode_rewards()
    for length in env.get_episode_lengths():
        ends.append((ends[-1] if ends else 0) + length)
    windows: dict[int, list[float]] = {}
    for end, reward in zip(ends, rewards):
        windows.setdefault(math.ceil(end / 64) * 64, []).append(reward)
    expected = [(step, sum(r) / len(r)) for step, r in sorted(windows.items())]
    got = _history(client, cb.run_id, "rollout/episode_reward")
    assert [s for s, _ in got] == [s for s, _ in expected] and len(got) < len(rewards)
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])
    assert cb.episodes_logged == len(rewards)
    assert [s for s, _ in _history(client, cb.run_id, "eval/mean_reward")] == [512, 1024, 1536, 2048]
    assert tb.connect(uri).run(cb.run_id)["params.symbol"] == "EUR/USD"


@dataclasses.dataclass
class _Training:
    symbol: str = "EUR/USD"
    timesteps: int = 256
    layers: tuple = (64, 64)


def test_a_dataclass_config_is_logged_as_params_and_yaml(tmp_path: Path, cartpole):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = TrackingCallback(uri, experiment="dc", config=_Training())
    PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0).learn(256, callback=cb)
    run = tb.connect(uri).run(cb.run_id)
    assert run[C.STATUS] == C.FINISHED
    assert (run["params.symbol"], run["params.timesteps"], run["params.layers"]) == ("EUR/USD", 256, "(64, 64)")
    client = MlflowClient(uri)
    text = Path(client.download_artifacts(cb.run_id, "config.yaml", str(tmp_path))).read_text()
    assert yaml.safe_load(text) == {"symbol": "EUR/USD", "timesteps": 256, "layers": [64, 64]}


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for me")


@pytest.mark.parametrize("config", [["not", "a", "mapping"], {"symbol": "EUR/USD", "broken": _Unprintable()}],
                         ids=["a-list", "an-unprintable-value"])
def test_a_config_that_cannot_be_logged_warns_once_and_training_goes_on(tmp_path: Path, cartpole, config):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = TrackingCallback(uri, experiment="bad-config", config=config, params={"also": _Unprintable()})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0).learn(256, callback=cb)
    ours = [str(w.message) for w in caught if "not logged" in str(w.message)]
    assert len(ours) == 2, ours  # one for the config, one for the param
    assert "the config" in ours[0] and "'also'" in ours[1]
    run = MlflowClient(uri).get_run(cb.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["algorithm"] == "PPO" and "symbol" not in run.data.params and "also" not in run.data.params
    assert run.data.metrics["total_timesteps"] == 256
    arts = {a.path for a in MlflowClient(uri).list_artifacts(cb.run_id)}
    assert "config.yaml" not in arts and {"environment.json", "model"} <= arts


def test_bad_arguments_are_refused_before_training():
    with pytest.raises(ValueError, match="experiment_name is the trading stack's spelling"):
        TrackingCallback(experiment="a", experiment_name="b")
    with pytest.raises(ValueError, match="log_interval=0"):
        TrackingCallback(experiment="a", log_interval=0)
    with pytest.raises(TypeError, match="pass a Tracker with a run open"):
        EpisodeCallback("sqlite:///mlflow.db")
    assert TrackingCallback(experiment="same", experiment_name="same").experiment == "same"


def test_the_parts_alone_write_into_a_run_the_user_owns(tmp_path: Path, cartpole):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = make_tracker(uri)
    run_id = tracker.start_run("parts", name="mine", params={"owner": "me"})
    env = cartpole()
    evaluation = EvaluationCallback(tracker, cartpole(), 256, n_eval_episodes=2)
    parts = [SB3LoggerCallback(tracker), EpisodeCallback(tracker), evaluation, ModelCheckpointCallback(tracker, 512)]
    mine = _Counter()
    PPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=0).learn(1024, callback=[*parts, mine])
    assert tracker.active and mine.n_calls == 1024  # the parts leave the run open: it is the user's
    tracker.end_run()

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"owner": "me"}
    episodes = _history(client, run_id, "rollout/episode_reward")
    assert [v for _, v in episodes] == env.get_episode_rewards()
    assert [s for s, _ in _history(client, run_id, "eval/mean_reward")] == [256, 512, 768, 1024]
    best = _history(client, run_id, "eval/best_mean_reward")
    assert best[-1][1] == evaluation.best_mean_reward == max(v for _, v in _history(client, run_id, "eval/mean_reward"))
    assert [s for s, _ in _history(client, run_id, "time/total_timesteps")] == [256, 512, 768, 1024]
    arts = set(tb.connect(uri).artifacts(run_id)[C.PATH])
    assert {"checkpoints/model_512_steps.zip", "checkpoints/model_1024_steps.zip", "best_model/model.zip"} <= arts
    assert "model/model.zip" not in arts and "environment.json" not in arts  # those are RunCallback's job
    assert PPO.load(evaluation.best_model_path).num_timesteps <= 1024


class _TradingMetrics(BaseCallback):
    """Records into SB3's logger as a trading env's callback would, one name no store takes."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("trading/pnl", 2.0)
        self.logger.record("trading/pnl (usd)", 1.0)


def test_names_no_store_takes_are_left_out_instead_of_blocking_the_run(tmp_path: Path, cartpole):
    # MLflow refuses such a name for good; sent, it would hold every later write of the run back.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = TrackingCallback(uri, experiment="names", config={"symbol": "EUR/USD", "timeframe (h)": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0).learn(512, callback=[cb, _TradingMetrics()])
    ours = [str(w.message) for w in caught if "not logged" in str(w.message)]
    assert len(ours) == 2 and "'timeframe (h)'" in ours[0] and "'trading/pnl (usd)'" in ours[1], ours
    run = MlflowClient(uri).get_run(cb.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["total_timesteps"] == 512
    assert run.data.params["symbol"] == "EUR/USD" and "timeframe (h)" not in run.data.params
    assert [s for s, _ in _history(MlflowClient(uri), cb.run_id, "trading/pnl")] == [128, 256, 384, 512]
