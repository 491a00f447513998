"""Enhancement chains read from the fixture stores, and broken chains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trackbook as tb
from tests._mlflow_template import empty_mlflow_db
from trackbook import columns as C


def test_chain_walks_back_to_the_root(store_and_ids):
    store, ids = store_and_ids
    chain = tb.chain(store, ids["chain-2"])
    assert list(chain.runs[C.RUN_ID]) == [ids["chain-0"], ids["chain-1"], ids["chain-2"]]
    assert list(chain.runs["offset"]) == [0, 10_000, 20_000]
    assert chain.missing_base is None
    branch = tb.chain(store, ids["chain-1b"])
    assert list(branch.runs[C.NAME]) == ["chain-0", "chain-1", "chain-1b"]
    assert len(tb.chain(store, ids["chain-0"])) == 1


def test_chain_history_is_one_continuous_axis(store_and_ids):
    store, ids = store_and_ids
    hist = tb.chain(store, ids["chain-2"]).history("rollout/ep_rew_mean")
    steps = hist["global_step"].to_numpy()
    assert np.all(np.diff(steps) == 100)  # no gap, no overlap
    assert steps[0] == 100 and steps[-1] == 30_000
    assert list(hist.groupby("segment")["global_step"].min()) == [100, 10_100, 20_100]


@pytest.fixture()
def scratch_store(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = empty_mlflow_db(tmp_path / "chains.db")  # a migrated empty store, copied: fast enough for scripts/mutation
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
        tb.chain(store, a)
    assert info.value.run_ids == [a, a]
    client.set_tag(a, "base_model_run_id", b)
    client.set_tag(b, "base_model_run_id", c)
    client.set_tag(c, "base_model_run_id", a)
    with pytest.raises(tb.ChainCycle) as info:
        tb.chain(store, a)
    assert info.value.run_ids == [a, b, c, a]
    assert all(r in str(info.value) for r in (a, b, c))


def test_missing_and_malformed_bases_are_marked_not_raised(scratch_store):
    store, client, make = scratch_store
    root, child = make("root"), make("child")
    client.set_tag(child, "base_model_run_id", root)
    client.delete_run(root)
    chain = tb.chain(store, child)
    assert list(chain.runs[C.NAME]) == ["child"] and chain.missing_base == root
    client.set_tag(child, "base_model_run_id", "x' OR '1'='1")
    chain = tb.chain(store, child)
    assert chain.missing_base == "x' OR '1'='1"


def test_tree_of_an_experiment(store_and_ids):
    store, ids = store_and_ids
    tree = tb.chain_tree(store, "ppo-cartpole")
    assert list(tree[C.NAME]) == ["chain-0", "chain-1", "chain-2", "chain-1b"]  # depth-first, by start
    assert list(tree["depth"]) == [0, 1, 2, 2]
    assert list(tree["children"]) == [1, 2, 0, 0]
    assert set(tree["root_run_id"]) == {ids["chain-0"]}
    assert tree["missing_base"].isna().all()
    everything = tb.chain_tree(store, "ppo-cartpole", include_single=True)
    assert len(everything) == len(store.runs("ppo-cartpole"))


def test_links_give_before_after_and_delta(store_and_ids):
    store, ids = store_and_ids
    chain = tb.chain(store, ids["chain-2"])
    links = chain.links(["rollout/ep_rew_mean"])
    hist = store.history(chain.runs[C.RUN_ID].tolist(), "rollout/ep_rew_mean")
    last = hist.sort_values(C.STEP).groupby(C.RUN_ID, observed=True)[C.VALUE].last()
    assert list(links["position"]) == [1, 2]
    assert list(links["timesteps_added"]) == [10_000, 10_000]
    assert links["before"].tolist() == pytest.approx([last[ids["chain-0"]], last[ids["chain-1"]]])
    assert links["after"].tolist() == pytest.approx([last[ids["chain-1"]], last[ids["chain-2"]]])
    assert links["delta"].tolist() == pytest.approx((links["after"] - links["before"]).tolist())
    assert (links["delta"] > 0).all()  # the fixture's chain improves at every link
    assert tb.chain(store, ids["chain-0"]).links("rollout/ep_rew_mean").empty


def test_tree_reports_cycles_and_missing_bases(scratch_store):
    store, client, make = scratch_store
    root, child, orphan = make("root"), make("child"), make("orphan")
    client.set_tag(child, "base_model_run_id", root)
    client.set_tag(orphan, "base_model_run_id", "0" * 32)
    tree = tb.chain_tree(store, "chains")
    assert tree.set_index(C.NAME)["missing_base"].to_dict() == {"root": None, "child": None, "orphan": "0" * 32}
    a, b = make("a"), make("b")
    client.set_tag(a, "base_model_run_id", b)
    client.set_tag(b, "base_model_run_id", a)
    # issue 14 item 3: a cycle is rows with a reason, not an exception for the whole tree
    tree = tb.chain_tree(store, "chains").set_index(C.NAME)
    assert tree.loc[["a", "b"], C.LINK_PROBLEM].tolist() == [C.LINK_CYCLE, C.LINK_CYCLE]
    assert tree.loc["child", "root_run_id"] == root and pd.isna(tree.loc["child", C.LINK_PROBLEM])
    with pytest.raises(tb.ChainCycle) as info:  # the chain *of* a run in the cycle still raises
        tb.chain(store, a)
    assert set(info.value.run_ids) == {a, b}


def test_chains_cross_experiments(scratch_store):
    store, client, make = scratch_store
    root = make("root-elsewhere")
    other = client.create_experiment("finetune")
    child = client.create_run(other, run_name="child", tags={"base_model_run_id": root}).info.run_id
    assert list(tb.chain(store, child).runs[C.NAME]) == ["root-elsewhere", "child"]
    tree = tb.chain_tree(store, "finetune")
    assert list(tree[C.NAME]) == ["root-elsewhere", "child"] and list(tree[C.EXPERIMENT]) == ["chains", "finetune"]


def test_a_10000_deep_chain_resolves_without_recursion(tmp_path: Path):
    """Rows cloned in bulk into a real MLflow schema (10,000 create_run calls would take minutes)."""
    import sqlite3
    import uuid

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'deep.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("deep")
    first = client.create_run(exp, run_name="link-0").info.run_id
    depth = 10_000
    ids = [first] + [uuid.uuid4().hex for _ in range(depth - 1)]
    with sqlite3.connect(tmp_path / "deep.db") as db:
        template = db.execute("SELECT * FROM runs WHERE run_uuid = ?", (first,)).fetchone()
        columns = [d[0] for d in db.execute("SELECT * FROM runs LIMIT 0").description]
        at = {c: i for i, c in enumerate(columns)}
        rows = []
        for i, rid in enumerate(ids[1:], start=1):
            row = list(template)
            row[at["run_uuid"]], row[at["name"]], row[at["start_time"]] = rid, f"link-{i}", template[at["start_time"]] + i
            rows.append(row)
        db.executemany(f"INSERT INTO runs VALUES ({','.join('?' * len(columns))})", rows)
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                       [("base_model_run_id", base, rid) for base, rid in zip(ids, ids[1:])]
                       + [("mlflow.runName", f"link-{i}", rid) for i, rid in enumerate(ids) if i])
    store = tb.connect(uri)
    chain = tb.chain(store, ids[-1])
    assert len(chain) == depth and chain.runs[C.RUN_ID].iloc[0] == first
    tree = tb.chain_tree(store, "deep")
    assert tree["depth"].max() == depth - 1 and (tree["children"].iloc[:-1] == 1).all()


def test_links_whose_steps_restart_at_zero_are_shifted_onto_one_axis(scratch_store):
    store, client, make = scratch_store
    root = make("root")
    middle = make("middle", base_model_run_id=root)
    last = make("last", base_model_run_id=middle)
    for run_id, previous in ((root, None), (middle, 1000), (last, 2500)):
        if previous is not None:
            client.log_metric(run_id, "previous_timesteps", previous, step=0)
        length = {root: 1000, middle: 1500, last: 500}[run_id]
        for step in range(100, length + 1, 100):  # each run's own counter starts again at 0
            client.log_metric(run_id, "reward", float(step), step=step)
        client.log_metric(run_id, "total_timesteps", (previous or 0) + length, step=length)
    chain = tb.chain(store, last)
    assert list(chain.runs["offset"]) == [0, 1000, 2500]
    hist = chain.history("reward")
    hist = hist[hist[C.VALUE] >= 100]  # leave out the reward of 1.0 the scratch fixture logs at step 1
    per_segment = hist.groupby("segment")["global_step"].agg(["min", "max"])
    assert per_segment.to_dict("index") == {0: {"min": 100, "max": 1000}, 1: {"min": 1100, "max": 2500},
                                            2: {"min": 2600, "max": 3000}}
    assert hist["global_step"].is_monotonic_increasing


def test_links_before_after_delta_and_timesteps_added_by_hand(scratch_store):
    store, client, make = scratch_store
    root = make("root")
    child = make("child", base_model_run_id=root)
    for step, value in ((2, 4.0), (3, 6.0)):
        client.log_metric(root, "reward", value, step=step)
    client.log_metric(root, "total_timesteps", 1000, step=3)
    client.log_metric(child, "previous_timesteps", 1000, step=0)
    client.log_metric(child, "reward", 10.0, step=1500)
    client.log_metric(child, "total_timesteps", 1600, step=1500)
    chain = tb.chain(store, child)
    assert len(chain) == 2 and repr(chain) == "<Chain of 2 runs: root -> child>"
    links = chain.links(["reward", "loss"])
    assert links[["position", "before", "after", "delta", "timesteps_added"]].iloc[0].tolist() == [1, 6.0, 10.0, 4.0, 600]
    assert links["run_id"].tolist() == [child, child] and links["base_run_id"].tolist() == [root, root]
    assert links["name"].tolist() == ["child", "child"] and links["metric"].tolist() == ["reward", "loss"]
    assert links[["before", "after", "delta"]].iloc[1].isna().all()
    hist = chain.history("reward")
    assert hist["global_step"].tolist() == [1, 2, 3, 1001, 2500] and hist["segment"].tolist() == [0, 0, 0, 1, 1]


def test_offsets_fall_back_to_the_base_end_and_its_last_step(scratch_store):
    store, client, make = scratch_store
    root = make("root")  # logs reward at step 1 only
    client.log_metric(root, "reward", 2.0, step=400)
    middle = make("middle", base_model_run_id=root)  # no previous_timesteps: the base's last step
    client.log_metric(middle, "reward", 3.0, step=100)
    client.log_metric(middle, "total_timesteps", 900, step=100)
    last = make("last", base_model_run_id=middle)  # the base's total_timesteps
    chain = tb.chain(store, last)
    assert chain.runs["offset"].tolist() == [0, 400, 900]
    assert chain.runs["position"].tolist() == [0, 1, 2]
    links = chain.links("reward")
    assert links["timesteps_added"].tolist()[0] == 500 and np.isnan(links["timesteps_added"].tolist()[1])
    hist = chain.history("reward")
    assert hist.groupby("segment")["global_step"].apply(list).to_dict() == {0: [1, 400], 1: [401, 500], 2: [901]}


def test_a_tree_by_hand_depths_children_order_problems_and_bases_elsewhere(tmp_path: Path):
    """Every kind of link in one experiment, checked row by row against the tags MLflow holds."""
    from mlflow.tracking import MlflowClient

    uri = empty_mlflow_db(tmp_path / "tree.db")
    client = MlflowClient(uri)
    exp, other = client.create_experiment("tree"), client.create_experiment("other")

    def make(name: str, start: int, base: str | None = None, experiment: str = exp) -> str:
        tags = {} if base is None else {"base_model_run_id": base}
        return client.create_run(experiment, run_name=name, start_time=start, tags=tags).info.run_id

    far_root = make("far-root", 1, experiment=other)  # two levels of bases in another experiment
    far_mid = make("far-mid", 2, far_root, experiment=other)
    make("unrelated", 3, experiment=other)
    make("unrelated-child", 4, make("unrelated-root", 3, experiment=other), experiment=other)

    def against_start_order(*made) -> list[str]:
        """Runs made (name, start, base) until their ids fall as their starts climb, so that
        children ordered by id, not by start time, come out in another order."""
        while True:
            ids = [make(*m) for m in made]
            if ids == sorted(ids, reverse=True):
                return ids
            for run_id in ids:
                client.delete_run(run_id)

    root = make("root", 10)
    a, _, _ = against_start_order(("a", 11, root), ("c", 13, root),
                                  ("upper", 14, f"  {root.upper()} "))  # matched trimmed and lower-cased
    make("b", 12, a)
    make("single", 15)
    itself = make("self", 16)
    client.set_tag(itself, "base_model_run_id", itself)
    make("missing", 17, "0" * 32)
    make("malformed", 18, "not a run id")
    make("continues-far", 19, far_mid)
    # a cycle p <-> q with a tail on each side of it in start order; it is cut at p, the earliest-started,
    # and p is made to have the larger run id so that the cut cannot be the smallest id by accident
    p = make("p", 20)
    while True:
        q = make("q", 21, p)
        if q < p:
            break
        client.delete_run(q)
    client.set_tag(p, "base_model_run_id", q)
    against_start_order(("tail-early", 5, q), ("tail-late", 30, q))

    store = tb.connect(uri)
    tree = tb.chain_tree(store, "tree")
    got = [(r[C.NAME], r["depth"], r["children"]) for _, r in tree.iterrows()]
    assert got == [  # roots by start time, each tree depth-first, children by start time
        ("far-root", 0, 1), ("far-mid", 1, 1), ("continues-far", 2, 0),
        ("root", 0, 3), ("a", 1, 1), ("b", 2, 0), ("c", 1, 0), ("upper", 1, 0),
        ("self", 0, 0), ("missing", 0, 0), ("malformed", 0, 0),
        ("p", 0, 1), ("q", 1, 2), ("tail-early", 2, 0), ("tail-late", 2, 0),
    ]
    by_name = tree.set_index(C.NAME)
    assert by_name.loc["upper", C.BASE_RUN_ID] == root and by_name.loc["b", C.BASE_RUN_ID] == a
    assert by_name.loc["continues-far", C.ROOT_RUN_ID] == far_root
    assert by_name.loc["far-root", C.EXPERIMENT] == "other" and by_name.loc["b", C.ROOT_RUN_ID] == root
    problems = by_name[C.LINK_PROBLEM].dropna().to_dict()
    assert problems == {"self": C.LINK_SELF, "missing": C.LINK_MISSING, "malformed": C.LINK_MISSING,
                        "p": C.LINK_CYCLE, "q": C.LINK_CYCLE}
    assert by_name[C.MISSING_BASE].dropna().to_dict() == {"missing": "0" * 32, "malformed": "not a run id"}
    assert by_name.loc["p", C.BASE_RUN_ID] == q  # the tag's value is kept where the link was cut
    assert "single" not in by_name.index and not any(n.startswith("unrelated") for n in by_name.index)
    everything = tb.chain_tree(store, "tree", include_single=True).set_index(C.NAME)
    assert everything.loc["single", "depth"] == 0 and everything.loc["single", "children"] == 0
    assert len(everything) == len(tree) + 1


def test_a_broken_chain_says_so_and_a_one_run_chain_has_no_links(scratch_store):
    store, client, make = scratch_store
    child = make("child", base_model_run_id="0" * 32)
    chain = tb.chain(store, child)
    assert repr(chain) == f"<Chain of 1 runs: child, missing base {'0' * 32!r}>"
    links = chain.links("reward")
    assert links.empty and links.columns.tolist() == C.LINK_COLUMNS


def test_steps_logged_past_the_offset_are_kept_and_steps_from_zero_shifted_per_metric(scratch_store):
    store, client, make = scratch_store
    root = make("root")
    client.log_metric(root, "total_timesteps", 1000, step=1000)
    child = make("child", base_model_run_id=root)
    client.log_metric(child, "previous_timesteps", 1000, step=0)
    for step in (1000, 1200):  # logged already offset (trackbook's callback does so), from the offset itself
        client.log_metric(child, "score", float(step), step=step)
    for step in (0, 300):  # this metric's own counter restarts at 0
        client.log_metric(child, "loss", float(step), step=step)
    client.log_metric(child, "total_timesteps", 1300, step=1300)
    tiny = make("tiny", base_model_run_id=child)
    client.log_metric(tiny, "previous_timesteps", 1, step=0)  # the smallest offset still shifts
    client.log_metric(tiny, "loss", 5.0, step=0)
    hist = tb.chain(store, tiny).history(["score", "loss"])
    assert hist.index.equals(pd.RangeIndex(len(hist)))
    got = [(str(m), s, g, seg) for m, s, g, seg in zip(hist[C.METRIC], hist[C.STEP], hist["global_step"],
                                                        hist["segment"], strict=True)]
    assert got == [("loss", 0, 1, 2), ("loss", 0, 1000, 1), ("loss", 300, 1300, 1),
                   ("score", 1000, 1000, 1), ("score", 1200, 1200, 1)]


def test_offsets_of_bases_without_total_timesteps_come_from_their_last_step(scratch_store):
    store, client, _ = scratch_store
    exp = client.get_experiment_by_name("chains").experiment_id

    def run(name: str, base: str | None = None, points=(), previous: int | None = None, total: int | None = None) -> str:
        rid = client.create_run(exp, run_name=name, tags={} if base is None else {"base_model_run_id": base}).info.run_id
        if previous is not None:
            client.log_metric(rid, "previous_timesteps", previous, step=0)
        for step in points:
            client.log_metric(rid, "reward", float(step), step=step)
        if total is not None:
            client.log_metric(rid, "total_timesteps", total, step=total)
        return rid

    # the root continued a run that is gone: it is still the chain's start, at 0
    root = run("root", "0" * 32, points=(500, 1000), previous=77, total=1000)
    restarted = run("restarted", root, points=(100, 500), previous=1000)  # own counter from 0: ends at 1000 + 500
    past = run("past", restarted, points=(1600, 1700))  # starts at its base's end, 1500; logged offset: ends at 1700
    at_offset = run("at-offset", past, points=(1700,))  # one point at its offset, 1700: ends there
    last = run("last", at_offset)
    chain = tb.chain(store, last)
    assert chain.missing_base == "0" * 32
    assert chain.runs[C.OFFSET].tolist() == [0, 1000, 1500, 1700, 1700]
    hist = chain.history("reward")
    assert hist[C.GLOBAL_STEP].tolist() == [500, 1000, 1100, 1500, 1600, 1700, 1700]
    assert hist[C.SEGMENT].tolist() == [0, 0, 1, 1, 2, 2, 3] and hist[C.SEGMENT].dtype == "int64"

    bare = run("bare")  # logged nothing at all: it ends at 0
    after = run("after", bare, points=(10,))
    short = tb.chain(store, after)
    assert short.runs[C.OFFSET].tolist() == [0, 0] and short.missing_base is None


def test_chain_and_tree_columns_are_the_stores_and_a_cycle_met_on_the_way_names_its_runs(scratch_store):
    store, client, make = scratch_store
    root = make("root")
    client.log_param(root, "lr", "0.1")
    child = make("child", base_model_run_id=root)
    client.log_param(make("unrelated"), "only_unrelated", "1")  # a column of the experiment's runs
    far = client.create_run(client.create_experiment("elsewhere"), run_name="far").info.run_id
    client.log_param(far, "only_far", "1")  # not a column of the experiment's runs
    listed = store.runs("chains").columns.tolist()
    assert "params.only_unrelated" in listed and "params.only_far" not in listed
    assert tb.chain(store, child).runs.columns.tolist() == [C.POSITION, C.OFFSET, *listed]
    added = [C.ROOT_RUN_ID, C.DEPTH, C.CHILDREN, C.MISSING_BASE, C.LINK_PROBLEM]
    for include_single in (False, True):
        assert tb.chain_tree(store, "chains", include_single=include_single).columns.tolist() == [*listed, *added]

    start, a, b = make("start"), make("a"), make("b")
    client.set_tag(start, "base_model_run_id", a)
    client.set_tag(a, "base_model_run_id", b)
    client.set_tag(b, "base_model_run_id", a)
    with pytest.raises(tb.ChainCycle) as info:  # the loop is a -> b -> a; start only leads into it
        tb.chain(store, start)
    assert info.value.run_ids == [a, b, a]
    tree = tb.chain_tree(store, "chains").set_index(C.NAME)
    assert tree.loc["a", C.LINK_PROBLEM] == C.LINK_CYCLE and tree.loc["root", C.LINK_PROBLEM] is None
    assert tree.loc["child", C.BASE_RUN_ID] == root and tree.loc["root", C.BASE_RUN_ID] is None
