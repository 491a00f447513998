"""Real PPO and A2C on CartPole-v1 logged by TrackingCallback, read back with the store layer."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import A2C, PPO

import trackbook as tb
from trackbook import columns as C
from trackbook.tracking import TrackingCallback, continue_training, load_config


def test_ppo_into_sqlite_reads_back_whole(tmp_path: Path, cartpole):
    store = tb.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", create=True)
    cfg = load_config({"experiment": {"name": "ppo-cartpole"}, "model": {"params": {"n_steps": 256}}},
                      ["training.total_timesteps=2048"])
    model = PPO("MlpPolicy", cartpole(), n_steps=256, batch_size=64, seed=0)
    cb = TrackingCallback(store, experiment="ppo-cartpole", config=cfg, eval_env=cartpole(), eval_freq=512,
                          n_eval_episodes=3, save_freq=1024, tags={"purpose": "test"})
    model.learn(2048, callback=cb)

    run = store.run(cb.run_id)
    assert run[C.STATUS] == C.FINISHED and run[C.EXPERIMENT] == "ppo-cartpole"
    assert run["params.algorithm"] == "PPO" and run["params.n_steps"] == 256 and run["params.gamma"] == 0.99
    assert run["params.training.total_timesteps"] == 2048  # the config, flattened
    assert run["tags.purpose"] == "test" and run["tags.env.python"] == sys.version.split()[0]
    assert "tags.env.torch" in run.index and "tags.git.commit" in run.index
    assert run["metrics.total_timesteps"] == 2048

    hist = store.history(cb.run_id)
    steps = {m: g[C.STEP].tolist() for m, g in hist.groupby(C.METRIC, observed=True)}
    assert steps["eval/mean_reward"] == [512, 1024, 1536, 2048]
    assert len(steps["rollout/episode_reward"]) == cb.episodes_logged > 10
    assert steps["rollout/ep_rew_mean"] == list(range(256, 2049, 256))  # SB3's own dumps
    assert {"train/loss", "train/entropy_loss", "train/value_loss", "time/fps"} <= set(steps)
    last_eval = hist[hist[C.METRIC] == "eval/mean_reward"][C.VALUE].iloc[-1]
    assert last_eval == pytest.approx(cb.last_eval["eval/mean_reward"])

    arts = set(store.artifacts(cb.run_id)[C.PATH])
    assert {"model/model.zip", "best_model/model.zip", "checkpoints/model_1024_steps.zip",
            "checkpoints/model_2048_steps.zip", "environment.json", "config.yaml"} <= arts
    best = PPO.load(store.download_artifact(cb.run_id, "best_model/model.zip", tmp_path / "dl"))
    assert best.num_timesteps <= 2048 and Path(cb.best_model_path).exists()
    env_json = json.loads(store.download_artifact(cb.run_id, "environment.json", tmp_path / "env").read_text())
    assert env_json["packages"]["stable-baselines3"] and "commit" in env_json["git"]


_AIM_READER = """
import json, sys, trackbook as tb
store = tb.connect(sys.argv[1])
run = store.run(sys.argv[2])
hist = store.history(sys.argv[2])
print(json.dumps({"status": run["status"], "algorithm": run["params.algorithm"],
                  "total": run["metrics.total_timesteps"], "episodes": int((hist.metric == "rollout/episode_reward").sum()),
                  "evals": hist[hist.metric == "eval/mean_reward"].step.tolist(),
                  "artifacts": sorted(store.artifacts(sys.argv[2]).path)}))
"""


def test_a2c_into_aim_reads_back_in_another_process(tmp_path: Path, cartpole):
    uri = f"aim://{tmp_path / 'aim'}"
    model = A2C("MlpPolicy", cartpole(), seed=1)
    cb = TrackingCallback(uri, experiment="a2c-cartpole", eval_env=cartpole(), eval_freq=250, n_eval_episodes=2)
    model.learn(1000, callback=cb)
    done = subprocess.run([sys.executable, "-c", _AIM_READER, uri, cb.run_id], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["status"] == "FINISHED" and got["algorithm"] == "A2C" and got["total"] == 1000
    assert got["episodes"] == cb.episodes_logged
    assert got["evals"] == [250, 500, 750, 1000]
    assert {"model/model.zip", "best_model/model.zip", "environment.json"} <= set(got["artifacts"])


def test_three_link_chain_is_one_continuous_axis(tmp_path: Path, cartpole):
    store = tb.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", create=True)
    model = PPO("MlpPolicy", cartpole(), n_steps=256, batch_size=64, seed=0)
    first = TrackingCallback(store, experiment="chain")
    model.learn(1024, callback=first)
    _, second = continue_training(store, first.run_id, cartpole(), 1024)  # counter restarts: offset added
    _, third = continue_training(store, second.run_id, cartpole(), 1024, reset_num_timesteps=False)

    chain = tb.chain(store, third.run_id)
    assert list(chain.runs[C.RUN_ID]) == [first.run_id, second.run_id, third.run_id]
    assert list(chain.runs["offset"]) == [0, 1024, 2048]
    assert list(chain.runs["metrics.previous_timesteps"].fillna(0)) == [0, 1024, 2048]
    assert chain.runs["metrics.total_timesteps"].tolist() == [1024, 2048, 3072]
    dumps = chain.history("time/total_timesteps")
    assert dumps["global_step"].tolist() == list(range(256, 3073, 256))  # no gap, no overlap
    episodes = chain.history("rollout/episode_reward")
    assert np.all(np.diff(episodes["global_step"].to_numpy()) > 0)
    bounds = episodes.groupby("segment")["global_step"].agg(["min", "max"])
    assert (bounds["min"].iloc[1:].to_numpy() > bounds["max"].iloc[:-1].to_numpy()).all()
    assert store.run(third.run_id)["tags.base_model_run_id"] == second.run_id


def test_seed_style_callback_with_previous_timesteps(tmp_path: Path, cartpole):
    from trackbook.tracking import MLflowLoggingCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model = PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64, seed=0)
    cb = MLflowLoggingCallback(experiment_name="legacy", previous_timesteps=5000, tracking_uri=uri)
    model.learn(256, callback=cb)
    hist = tb.connect(uri).history(cb.run_id, ["time/total_timesteps", "previous_timesteps", "total_timesteps"])
    by_metric = {m: g[C.STEP].tolist() for m, g in hist.groupby(C.METRIC, observed=True)}
    assert by_metric == {"previous_timesteps": [5000], "time/total_timesteps": [5128, 5256], "total_timesteps": [5256]}


_DYING_SCRIPT = """
import os, signal, sys, gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from trackbook.tracking import TrackingCallback

class Die(BaseCallback):
    def _on_step(self):
        if self.num_timesteps == 300:
            how = sys.argv[2]
            if how == "error":
                raise RuntimeError("the environment broke")
            if how == "interrupt":
                raise KeyboardInterrupt
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            if how == "sigkill":
                tracking.tracker.flush(30)
                os.kill(os.getpid(), signal.SIGKILL)
        return True

tracking = TrackingCallback(sys.argv[1], experiment="dying")
PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=128, batch_size=64).learn(2000, callback=[tracking, Die()])
"""


def _the_one_run(uri: str) -> str:
    # The run is created by the background writer, so its id may still be None at step 300:
    # read it from the store the script wrote.
    (run_id,) = tb.connect(uri).runs("dying")[C.RUN_ID]
    return run_id


@pytest.mark.parametrize(("how", "status"), [("error", C.FAILED), ("interrupt", C.KILLED), ("sigterm", C.KILLED)])
def test_training_that_dies_ends_its_run(tmp_path: Path, how: str, status: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_DYING_SCRIPT), uri, how],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    run_id = _the_one_run(uri)
    run = tb.connect(uri).run(run_id)
    assert run[C.STATUS] == status and not run[C.STALE]
    assert tb.connect(uri).history(run_id, "rollout/episode_reward")[C.STEP].max() <= 300


def test_run_killed_hard_reads_as_stale(tmp_path: Path):
    import time

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_DYING_SCRIPT), uri, "sigkill"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == -9
    run_id = _the_one_run(uri)
    store = tb.connect(uri)
    assert store.run(run_id)[C.STATUS] == C.RUNNING  # nothing could end it
    assert not store.runs(run_ids=[run_id])[C.STALE].iloc[0]  # default: 15 minutes of silence
    time.sleep(2.5)
    assert store.runs(run_ids=[run_id], stale_after=2)[C.STALE].iloc[0]


def test_exception_inside_a_with_block_ends_the_run_failed(tmp_path: Path, cartpole):
    from stable_baselines3.common.callbacks import BaseCallback

    class Boom(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 200:
                raise ValueError("boom")
            return True

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = TrackingCallback(uri, experiment="with")
    with pytest.raises(ValueError, match="boom"), cb:
        PPO("MlpPolicy", cartpole(), n_steps=128, batch_size=64).learn(1000, callback=[cb, Boom()])
    assert tb.connect(uri).run(cb.run_id)[C.STATUS] == C.FAILED
