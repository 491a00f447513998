"""A seed sweep written with MLflow's own client, shared by the seed statistics' tests."""

from __future__ import annotations

EXPERIMENT = "sweep"
REWARD = "eval/mean_reward"


def write_sweep(uri: str) -> dict[str, tuple[float, int]]:
    """2 learning rates x 3 seeds, 5 evaluations each at steps that differ per seed;
    ``{run_id: (learning_rate, seed)}``. Rate 0.001 scores above rate 0.0003 in every run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT)
    logged = {}
    for lr, skill in ((0.001, 100.0), (0.0003, 50.0)):
        for seed in range(3):
            rid = client.create_run(exp, run_name=f"lr{lr}-s{seed}").info.run_id
            client.log_param(rid, "learning_rate", lr)
            client.log_param(rid, "seed", seed)
            client.log_param(rid, "n_steps", 128)
            for k in range(1, 6):
                client.log_metric(rid, REWARD, skill * k + 10 * seed, step=k * 100 + seed)
            client.set_terminated(rid)
            logged[rid] = (lr, seed)
    return logged
