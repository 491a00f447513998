"""A zoo of enhancement links (tag ``base_model_run_id``), healthy and broken, written with MlflowClient.

Experiment ``links``:
    ``ok-0 -> ok-1 -> ok-2`` (healthy); ``cycle-a -> cycle-b -> cycle-a``; ``self`` (its
    own base); ``missing`` (base: a well-formed id of no run); ``not-an-id`` (base:
    ``"latest model"``); ``spaced`` (base: ``ok-0``'s id with whitespace around);
    ``upper`` (base: ``ok-0``'s id in upper case); ``branch-root`` with three
    enhancements ``branch-1``, ``branch-2``, ``branch-3``; ``cross-1``, whose base
    ``cross-0`` lives in experiment ``links-other``; ``after-cycle``, continuing ``cycle-b``.
Experiment ``chain-200``: ``long-0 -> ... -> long-199``, every link 100 timesteps long.
"""

from __future__ import annotations

from pathlib import Path

from data_fixtures.foreign._common import BASE_TIME_MS, experiment

EXPERIMENT = "links"
OTHER_EXPERIMENT = "links-other"
LONG_EXPERIMENT = "chain-200"
LONG_LINKS = 200
LONG_SEGMENT = 100
MISSING_ID = "0123456789abcdef0123456789abcdef"
NOT_AN_ID = "latest model"
#: key -> base key (None: a root); written in this order
LINKS: dict[str, str | None] = {
    "ok-0": None, "ok-1": "ok-0", "ok-2": "ok-1",
    "cycle-a": None, "cycle-b": "cycle-a",  # cycle-a's base is set to cycle-b afterwards
    "after-cycle": "cycle-b",
    "self": None,  # its base is set to itself afterwards
    "missing": None, "not-an-id": None, "spaced": None, "upper": None,
    "branch-root": None, "branch-1": "branch-root", "branch-2": "branch-root", "branch-3": "branch-root",
    "cross-1": "cross-0",
}


def write(tracking_uri: str, artifact_root: Path, out_dir: Path) -> dict[str, str]:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = experiment(client, EXPERIMENT, artifact_root)
    other = experiment(client, OTHER_EXPERIMENT, artifact_root)
    ids: dict[str, str] = {}

    def make(key: str, exp_id: str, base_id: str | None, i: int, previous: int) -> str:
        start = BASE_TIME_MS + i * 60_000
        tags = {} if base_id is None else {"base_model_run_id": base_id}
        rid = client.create_run(exp_id, start_time=start, tags=tags, run_name=key).info.run_id
        ids[key] = rid
        metrics = [Metric("reward", float(previous // 10 + s), start + s, previous + s * 10) for s in range(1, 11)]
        metrics.append(Metric("total_timesteps", float(previous + LONG_SEGMENT), start + 20, previous + LONG_SEGMENT))
        if base_id is not None:
            metrics.append(Metric("previous_timesteps", float(previous), start, previous))
        client.log_batch(rid, metrics=metrics)
        client.set_terminated(rid, "FINISHED", end_time=start + 30_000)
        return rid

    make("cross-0", other, None, 0, 0)
    depth = {"cross-0": 0}
    for i, (key, base) in enumerate(LINKS.items(), start=1):
        depth[key] = 0 if base is None else depth[base] + 1
        make(key, exp, None if base is None else ids[base], i, depth[key] * LONG_SEGMENT)
    client.set_tag(ids["cycle-a"], "base_model_run_id", ids["cycle-b"])
    client.set_tag(ids["self"], "base_model_run_id", ids["self"])
    client.set_tag(ids["missing"], "base_model_run_id", MISSING_ID)
    client.set_tag(ids["not-an-id"], "base_model_run_id", NOT_AN_ID)
    client.set_tag(ids["spaced"], "base_model_run_id", f"  {ids['ok-0']}\n")
    client.set_tag(ids["upper"], "base_model_run_id", ids["ok-0"].upper())

    long_exp = experiment(client, LONG_EXPERIMENT, artifact_root)
    base = None
    for j in range(LONG_LINKS):
        base = make(f"long-{j}", long_exp, base, 100 + j, j * LONG_SEGMENT)
    return ids
