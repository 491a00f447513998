"""Build the fixture stores: the same runs into an MLflow store and an Aim repository.

Usage:
    python -m data_fixtures.build OUT_DIR            # OUT_DIR/mlflow.db, OUT_DIR/mlartifacts, OUT_DIR/aim
    python -m data_fixtures.build OUT_DIR --only mlflow

Content (deterministic: every value comes from a seeded generator):
- experiment ``ppo-cartpole``: four plain runs with params, tags, artifacts and three
  metric histories of 2,000 steps (NaN and ±inf among the losses; one run named with
  HTML in it); a 3-run enhancement chain ``chain-0 -> chain-1 -> chain-2`` (tag
  ``base_model_run_id``, metrics ``previous_timesteps`` and ``total_timesteps``, steps
  offset to continue the base) and a branch ``chain-1b`` off ``chain-1``;
- experiment ``hpo-cartpole``: a study parent run and 8 child trials, trial 5 FAILED
  and trial 7 still RUNNING.

Both stores are written through the real SDKs (MlflowClient, aim.Run). MLflow gets
fixed start times and point timestamps; Aim stamps its own. Run ids differ between
the stores; ``ids.json`` in OUT_DIR maps each fixture key to its id in each store.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PLAIN_EXPERIMENT = "ppo-cartpole"
STUDY_EXPERIMENT = "hpo-cartpole"
HTML_RUN_NAME = '<script>alert("xss")</script> & <b>bold</b>'
BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CHAIN_SEGMENT_TIMESTEPS = 10_000


@dataclass
class FixtureRun:
    key: str
    experiment: str
    name: str
    params: dict[str, Any]
    tags: dict[str, str]
    # metric -> (steps, values)
    metrics: dict[str, tuple[np.ndarray, np.ndarray]]
    status: str = "FINISHED"
    parent: str | None = None  # key of the parent (study) run
    base: str | None = None  # key of the run this one continues
    artifacts: dict[str, str] = field(default_factory=dict)  # path -> text content
    start_ms: int = 0
    duration_ms: int = 600_000


def fixture_runs() -> list[FixtureRun]:
    """Every fixture run, parents before children."""
    rng = np.random.default_rng(20260101)
    runs: list[FixtureRun] = []

    def curve(n: int, start: float, end: float, noise: float) -> np.ndarray:
        x = np.linspace(0.0, 1.0, n)
        return start + (end - start) * (1 - np.exp(-4 * x)) + rng.normal(0.0, noise, n)

    # -- plain runs: 2,000 steps of rollout reward and loss, eval every 100 steps
    plain = [
        ("ppo-lr-3e-4", {"algorithm": "PPO", "learning_rate": 0.0003, "n_steps": 2048, "gamma": 0.99, "seed": 0}),
        ("ppo-lr-1e-3", {"algorithm": "PPO", "learning_rate": 0.001, "n_steps": 2048, "gamma": 0.99, "seed": 1}),
        ("a2c-baseline", {"algorithm": "A2C", "learning_rate": 0.0007, "n_steps": 5, "gamma": 0.99, "seed": 2}),
        (HTML_RUN_NAME, {"algorithm": "PPO", "learning_rate": 0.0001, "n_steps": 1024, "gamma": 0.98, "seed": 3}),
    ]
    steps = np.arange(2000, dtype=np.int64)
    for i, (name, params) in enumerate(plain):
        reward = curve(2000, 20.0, 150.0 + 100.0 * (i % 2), 5.0)
        loss = np.abs(curve(2000, 1.0, 0.05, 0.02))
        loss[250::250] = np.nan  # NaN losses, as a diverging minibatch logs them
        if i == 2:
            loss[1010] = math.inf
            loss[1011] = -math.inf
        if i == 3:
            loss[-1] = np.nan  # the last value is NaN: metrics.train/loss is NaN
        eval_steps = steps[99::100]
        runs.append(
            FixtureRun(
                key=f"plain-{i}",
                experiment=PLAIN_EXPERIMENT,
                name=name,
                params=params,
                tags={"team": "rl", "env_id": "CartPole-v1", "note": "<img src=x onerror=alert(1)>" if i == 3 else ""},
                metrics={
                    "rollout/ep_rew_mean": (steps, reward),
                    "train/loss": (steps, loss),
                    "eval/mean_reward": (eval_steps, reward[eval_steps] + 3.0),
                    "total_timesteps": (np.array([1999]), np.array([2000.0])),
                },
                artifacts={"config.yaml": f"algorithm: {params['algorithm']}\nlearning_rate: {params['learning_rate']}\n"},
                start_ms=BASE_TIME_MS + i * 3_600_000,
                duration_ms=1_800_000 + i * 60_000,
            )
        )

    # -- enhancement chain chain-0 -> chain-1 -> chain-2, and a branch chain-1b off chain-1
    chain = [
        ("chain-0", None, 0, CHAIN_SEGMENT_TIMESTEPS, 0.0003),
        ("chain-1", "chain-0", CHAIN_SEGMENT_TIMESTEPS, CHAIN_SEGMENT_TIMESTEPS, 0.0003),
        ("chain-2", "chain-1", 2 * CHAIN_SEGMENT_TIMESTEPS, CHAIN_SEGMENT_TIMESTEPS, 0.0001),
        ("chain-1b", "chain-1", 2 * CHAIN_SEGMENT_TIMESTEPS, CHAIN_SEGMENT_TIMESTEPS // 2, 0.001),
    ]
    level = 20.0
    for j, (key, base, previous, length, lr) in enumerate(chain):
        seg_steps = np.arange(previous + 100, previous + length + 1, 100, dtype=np.int64)
        start_level = level if key != "chain-1b" else runs[-2].metrics["rollout/ep_rew_mean"][1][-1]
        reward = curve(len(seg_steps), start_level, start_level + 60.0, 2.0)
        if key != "chain-1b":
            level = float(reward[-1])
        eval_steps = seg_steps[9::10]
        metrics = {
            "rollout/ep_rew_mean": (seg_steps, reward),
            "eval/mean_reward": (eval_steps, reward[9::10] + 1.0),
            "total_timesteps": (np.array([previous + length]), np.array([float(previous + length)])),
        }
        tags = {"env_id": "CartPole-v1"}
        if base is not None:
            metrics["previous_timesteps"] = (np.array([previous]), np.array([float(previous)]))
        runs.append(
            FixtureRun(
                key=key,
                experiment=PLAIN_EXPERIMENT,
                name=key,
                params={"algorithm": "PPO", "learning_rate": lr, "n_steps": 2048, "gamma": 0.99, "seed": 10 + j},
                tags=tags,
                metrics=metrics,
                base=base,
                artifacts={"model/model.txt": f"weights of {key}\n", "checkpoints/final.txt": f"{previous + length}\n"},
                start_ms=BASE_TIME_MS + 86_400_000 + j * 3_600_000,
                duration_ms=900_000,
            )
        )

    # -- an HPO study: parent run and 8 trials; trial 5 FAILED, trial 7 RUNNING
    runs.append(
        FixtureRun(
            key="study",
            experiment=STUDY_EXPERIMENT,
            name="study-ppo-lr-gamma",
            params={"sampler": "TPESampler", "n_trials": 8, "direction": "maximize", "objective": "eval/mean_reward"},
            tags={"study_name": "ppo-lr-gamma"},
            metrics={},
            start_ms=BASE_TIME_MS + 2 * 86_400_000,
            duration_ms=8 * 700_000,
        )
    )
    objectives = []
    for t in range(8):
        lr = float(10 ** rng.uniform(-5, -2))
        gamma = float(np.round(rng.uniform(0.9, 0.999), 4))
        n_points = {5: 4, 7: 6}.get(t, 10)
        quality = 200.0 - 40.0 * abs(math.log10(lr) + 3.5) - 300.0 * (0.999 - gamma)
        eval_steps = np.arange(1000, 1000 * n_points + 1, 1000, dtype=np.int64)
        rewards = curve(n_points, 10.0, quality * n_points / 10, 1.0)
        status = {5: "FAILED", 7: "RUNNING"}.get(t, "FINISHED")
        metrics = {"eval/mean_reward": (eval_steps, rewards)}
        if status == "FINISHED":
            objectives.append(float(rewards[-1]))
            metrics["objective"] = (np.array([eval_steps[-1]]), np.array([float(rewards[-1])]))
        runs.append(
            FixtureRun(
                key=f"trial-{t}",
                experiment=STUDY_EXPERIMENT,
                name=f"trial-{t}",
                params={"learning_rate": lr, "gamma": gamma},
                tags={"trial_number": str(t), "study_name": "ppo-lr-gamma"},
                metrics=metrics,
                status=status,
                parent="study",
                start_ms=BASE_TIME_MS + 2 * 86_400_000 + t * 700_000,
                duration_ms=600_000,
            )
        )
    study = next(r for r in runs if r.key == "study")
    study.metrics["best_value"] = (np.array([0]), np.array([max(objectives)]))
    return runs


# ---------------------------------------------------------------------------- MLflow


def write_mlflow(tracking_uri: str, artifact_root: Path) -> dict[str, str]:
    """Write the fixture runs to an MLflow store; return fixture key -> run id."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiments: dict[str, str] = {}
    ids: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for run in fixture_runs():
            if run.experiment not in experiments:
                location = (artifact_root / run.experiment).resolve().as_uri()
                experiments[run.experiment] = client.create_experiment(run.experiment, artifact_location=location)
            tags = dict(run.tags)
            if run.parent:
                tags["mlflow.parentRunId"] = ids[run.parent]
            if run.base:
                tags["base_model_run_id"] = ids[run.base]
            created = client.create_run(
                experiments[run.experiment], start_time=run.start_ms, tags=tags, run_name=run.name
            )
            run_id = created.info.run_id
            ids[run.key] = run_id
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in run.params.items()])
            points = [
                Metric(name, float(value), run.start_ms + int(step) * 100, int(step))
                for name, (steps, values) in run.metrics.items()
                for step, value in zip(steps, values)
            ]
            for i in range(0, len(points), 1000):
                client.log_batch(run_id, metrics=points[i : i + 1000])
            for path, text in run.artifacts.items():
                local = Path(scratch) / run_id / Path(path).name
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(text)
                folder = str(Path(path).parent) if "/" in path else None
                client.log_artifact(run_id, str(local), artifact_path=folder)
            if run.status != "RUNNING":
                client.set_terminated(run_id, run.status, end_time=run.start_ms + run.duration_ms)
    return ids


# ------------------------------------------------------------------------------- Aim


def write_aim(repo_path: Path) -> dict[str, str]:
    """Write the fixture runs to an Aim repository; return fixture key -> run hash."""
    import aim

    from trackbook import _aim
    from trackbook import layout as L

    repo_path.mkdir(parents=True, exist_ok=True)
    repo = _aim.open_repo(repo_path, init=True)
    artifacts_uri = (repo_path / "artifacts").resolve().as_uri()
    ids: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for spec in fixture_runs():
            run = aim.Run(repo=str(repo_path), experiment=spec.experiment, system_tracking_interval=None,
                          log_system_params=False, capture_terminal_logs=False)
            ids[spec.key] = run.hash
            run.name = spec.name
            run[L.AIM_PARAMS_KEY] = spec.params
            tags = dict(spec.tags)
            if spec.base:
                tags[L.TAG_BASE_RUN] = ids[spec.base]
            run[L.AIM_TAGS_KEY] = tags
            run[L.AIM_TRACKBOOK_KEY] = {
                "status": spec.status,
                "parent_run_id": ids[spec.parent] if spec.parent else None,
                # Aim stamps its own clock on runs; the fixture's clock goes in the heartbeat
                "heartbeat": spec.start_ms + spec.duration_ms,
            }
            for name, (steps, values) in spec.metrics.items():
                for step, value in zip(steps.tolist(), values.tolist()):
                    run.track(value, name=name, step=step)
            if spec.artifacts:
                run.set_artifacts_uri(artifacts_uri)
                for path, text in spec.artifacts.items():
                    local = Path(scratch) / run.hash / Path(path).name
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_text(text)
                    run.log_artifact(str(local), name=path, block=True)
            run.close()
    # Leave every run indexed, so that a reader in another process sees them all.
    _aim.index_pending_runs(repo)
    repo.close()
    return ids


# ------------------------------------------------------------------------------- CLI


def build(out_dir: Path, *, only: str | None = None) -> dict[str, dict[str, str]]:
    """Build the stores under ``out_dir``; return ``{"mlflow": ids, "aim": ids}``."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    ids: dict[str, dict[str, str]] = {}
    if only in (None, "mlflow"):
        db = out_dir / "mlflow.db"
        if db.exists():
            raise FileExistsError(f"{db} exists; build the fixtures into an empty folder.")
        ids["mlflow"] = write_mlflow(f"sqlite:///{db}", out_dir / "mlartifacts")
    if only in (None, "aim"):
        if (out_dir / "aim").exists():
            raise FileExistsError(f"{out_dir / 'aim'} exists; build the fixtures into an empty folder.")
        ids["aim"] = write_aim(out_dir / "aim")
    (out_dir / "ids.json").write_text(json.dumps(ids, indent=2, sort_keys=True))
    return ids


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", choices=["mlflow", "aim"])
    args = parser.parse_args(argv)
    ids = build(args.out_dir, only=args.only)
    for backend, mapping in ids.items():
        print(f"{backend}: {len(mapping)} runs")


if __name__ == "__main__":
    main()
