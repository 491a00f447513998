"""An Aim repository written with Aim's own SDK, the ways Aim users write it.

Experiment ``sb3-aim``: ``ppo`` is a real PPO training on CartPole-v1 (1,024 timesteps)
logged by ``aim.sb3.AimCallback``: the model's attributes as top-level run params
(``algo``, ``learning_rate``, ...), SB3's ``group/name`` keys as metric ``name`` with
context ``{"tag": group}`` (``{"subset": "train"}`` for ``train/*``).
Experiment ``plain-aim``:
    ``contexts``: one metric name in two contexts (``{"subset": "train"}`` and
    ``{"subset": "val"}``), hparams as a dict with nesting, Aim tags via
    ``run.add_tag``; ``list-tags``: ``run["tags"] = ["baseline", "v2"]``;
    ``string-hparams``: ``run["hparams"] = "lr=0.001,gamma=0.99"``; ``plain``: a dict
    of hparams and a key-value ``run["tags"]`` dict, as trackbook's own writer would;
    ``never-closed``: written by a process that died before closing it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SB3_EXPERIMENT = "sb3-aim"
EXPERIMENT = "plain-aim"
PPO_TIMESTEPS = 1024
LIST_TAGS = ["baseline", "v2"]
STRING_HPARAMS = "lr=0.001,gamma=0.99"
AIM_TAGS = ["aim-tag", "reviewed"]
CONTEXT_LOSS = {"train": [1.0, 0.8, 0.6, 0.5, 0.45], "val": [1.1, 0.9, 0.75, 0.7, 0.72]}
NESTED_HPARAMS = {"lr": 0.001, "optimizer": {"name": "adam", "beta1": 0.9}, "batch_size": 64}
RUN_KW = {"system_tracking_interval": None, "log_system_params": False, "capture_terminal_logs": False}

_NEVER_CLOSED = """
import json, os, sys
import aim
run = aim.Run(repo=sys.argv[1], experiment=sys.argv[2], system_tracking_interval=None,
              log_system_params=False, capture_terminal_logs=False)
run.name = "never-closed"
run["hparams"] = {"lr": 0.01}
for step in range(5):
    run.track(float(step), name="reward", step=step)
print(json.dumps(run.hash), flush=True)
os._exit(0)  # as a killed kernel: no close, no finalizer
"""


def write(repo_path: Path) -> dict[str, str]:
    import aim

    repo_path = Path(repo_path)
    repo_path.mkdir(parents=True, exist_ok=True)
    aim.Repo(str(repo_path), init=True).close()
    ids = {"ppo": _ppo(repo_path)}

    def new(name: str) -> aim.Run:
        run = aim.Run(repo=str(repo_path), experiment=EXPERIMENT, **RUN_KW)
        run.name = name
        ids[name] = run.hash
        return run

    run = new("contexts")
    run["hparams"] = NESTED_HPARAMS
    for tag in AIM_TAGS:
        run.add_tag(tag)
    for subset, values in CONTEXT_LOSS.items():
        for step, value in enumerate(values):
            run.track(value, name="loss", step=step, context={"subset": subset})
    run.track(0.5, name="accuracy", step=0)
    run.close()

    run = new("list-tags")
    run["tags"] = LIST_TAGS
    run["hparams"] = {"lr": 0.002}
    for step in range(5):
        run.track(0.1 * step, name="reward", step=step)
    run.close()

    run = new("string-hparams")
    run["hparams"] = STRING_HPARAMS
    for step in range(5):
        run.track(1.0 - 0.1 * step, name="loss", step=step)
    run.close()

    run = new("plain")
    run["hparams"] = {"lr": 0.0005, "gamma": 0.95}
    run["tags"] = {"team": "rl", "note": "dict tags"}
    for step in range(5):
        run.track(2.0 * step, name="reward", step=step)
    run.close()

    out = subprocess.run([sys.executable, "-c", _NEVER_CLOSED, str(repo_path), EXPERIMENT],
                         capture_output=True, text=True, check=True)
    ids["never-closed"] = json.loads(out.stdout.strip().splitlines()[-1])
    return ids


def _ppo(repo_path: Path) -> str:
    import gymnasium as gym
    from aim.sb3 import AimCallback
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor

    callback = AimCallback(repo=str(repo_path), experiment_name=SB3_EXPERIMENT, **RUN_KW)
    model = PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=256, batch_size=64, n_epochs=2,
                seed=0, device="cpu", verbose=0)
    model.learn(PPO_TIMESTEPS, callback=callback)
    run_hash = callback.experiment.hash
    callback.experiment.name = "ppo"
    callback.experiment.close()
    callback._run = None  # closed here; AimCallback.__del__ would touch the closed run
    return run_hash
