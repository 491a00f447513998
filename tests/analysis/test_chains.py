"""Enhancement chains read from the fixture stores, and broken chains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trackbook as tb
from trackbook import columns as C


def test_chain_walks_back_to_the_root(store_and_ids):
    store, ids = store_and_ids
    chain = store.chain(ids["chain-2"])
    assert list(chain.runs[C.RUN_ID]) == [ids["chain-0"], ids["chain-1"], ids["chain-2"]]
    assert list(chain.runs["offset"]) == [0, 10_000, 20_000]
    assert chain.missing_base is None
    branch = store.chain(ids["chain-1b"])
    assert list(branch.runs[C.NAME]) == ["chain-0", "chain-1", "chain-1b"]
    assert len(store.chain(ids["chain-0"])) == 1


def test_chain_history_is_one_continuous_axis(store_and_ids):
    store, ids = store_and_ids
    hist = store.chain(ids["chain-2"]).history("rollout/ep_rew_mean")
    steps = hist["global_step"].to_numpy()
    assert np.all(np.diff(steps) == 100)  # no gap, no overlap
    assert steps[0] == 100 and steps[-1] == 30_000
    assert list(hist.groupby("segment")["global_step"].min()) == [100, 10_100, 20_100]


@pytest.fixture()
def scratch_store(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'chains.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("chains")

    def make(name: str, **tags: str) -> str:
        run = client.create_run(exp, run_name=name, tags=tags)
        client.log_metric(run.info.run_id, "reward", 1.0, step=1)
        return run.info.run_id

    return tb.connect(uri), client, make


def test_cycles_raise_chain_cycle_naming_the_runs(scratch_store):
    store, client, make = scratch_store
    a, b, c = make("a"), make("b"), make("c")
    client.set_tag(a, "base_model_run_id", a)
    with pytest.raises(tb.ChainCycle) as info:
        store.chain(a)
    assert info.value.run_ids == [a, a]
    client.set_tag(a, "base_model_run_id", b)
    client.set_tag(b, "base_model_run_id", c)
    client.set_tag(c, "base_model_run_id", a)
    with pytest.raises(tb.ChainCycle) as info:
        store.chain(a)
    assert info.value.run_ids == [a, b, c, a]
    assert all(r in str(info.value) for r in (a, b, c))


def test_missing_and_malformed_bases_are_marked_not_raised(scratch_store):
    store, client, make = scratch_store
    root, child = make("root"), make("child")
    client.set_tag(child, "base_model_run_id", root)
    client.delete_run(root)
    chain = store.chain(child)
    assert list(chain.runs[C.NAME]) == ["child"] and chain.missing_base == root
    client.set_tag(child, "base_model_run_id", "x' OR '1'='1")
    chain = store.chain(child)
    assert chain.missing_base == "x' OR '1'='1"
