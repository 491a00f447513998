"""TensorBoard folders as a read-only store: real SB3 trainings with ``tensorboard_log=``
(and trackbook's callback into sqlite at once), and folders written by torch's
``SummaryWriter``, the writer SB3 uses."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.monitor import Monitor

import trackbook as tb
from trackbook import columns as C
from trackbook import layout as L
from trackbook.errors import ReadOnlyStore, StoreUnavailable
from trackbook.tracking import TrackingCallback, make_tracker

SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter

SB3_IN_BOTH = "rollout/ep_rew_mean"
TB_ONLY_FILES = "*tfevents*"


def _age(folder: Path, seconds: float = 86_400) -> None:
    """Make every file under ``folder`` look written ``seconds`` ago (a finished run)."""
    then = time.time() - seconds
    for path in folder.rglob("*"):
        os.utime(path, (then, then))


def _chain(store, run_id):
    # trackbook.analysis.chain(store, run_id) once the "One clear shape" refactor lands
    from trackbook import analysis

    if hasattr(analysis, "chain"):
        return analysis.chain(store, run_id)
    from trackbook.analysis.chains import Chain

    return Chain.from_store(store, run_id)


class _Describe(BaseCallback):
    """What an SB3 user writes to describe a run in TensorBoard: HParam and text."""

    def __init__(self, hparams: dict, texts: dict) -> None:
        super().__init__()
        self.hparams, self.texts = hparams, texts

    def _on_training_start(self) -> None:
        only_tb = ("stdout", "log", "json", "csv")
        self.logger.record("hparams", HParam(self.hparams, {SB3_IN_BOTH: 0}), exclude=only_tb)
        for key, text in self.texts.items():
            self.logger.record(key, text, exclude=only_tb)

    def _on_step(self) -> bool:
        return True


@pytest.fixture(scope="module")
def sb3(tmp_path_factory):
    """cartpole/PPO_1: PPO for 1024 steps into TensorBoard and sqlite at once, then
    512 more with reset_num_timesteps=False (a second event file in PPO_1);
    cartpole/finetune_0: 512 more, saying by a text summary that it continues PPO_1."""
    root = tmp_path_factory.mktemp("tb") / "logs"
    sqlite_uri = f"sqlite:///{root.parent / 'mlflow.db'}"
    model = PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=256, batch_size=64, n_epochs=2, seed=0,
                tensorboard_log=str(root / "cartpole"))
    tracking = TrackingCallback(sqlite_uri, experiment="cartpole", log_episodes=False)
    describe = _Describe({"learning_rate": 3e-4, "n_steps": 256, "algorithm": "PPO"}, {"purpose": "parity test"})
    model.learn(1024, callback=[describe, tracking], tb_log_name="PPO")
    model.learn(512, reset_num_timesteps=False, tb_log_name="PPO")
    describe = _Describe({"learning_rate": 1e-4}, {L.TAG_BASE_RUN: "cartpole/PPO_1"})
    model.learn(512, callback=describe, reset_num_timesteps=False, tb_log_name="finetune")
    _age(root)
    store = tb.connect(f"tensorboard://{root}")
    ids = {r[C.NAME]: r[C.RUN_ID] for _, r in store.runs().iterrows()}
    return store, tb.connect(sqlite_uri), tracking.run_id, ids, root


def test_same_points_as_trackbooks_callback(sb3):
    store, sqlite, mlflow_run, ids, _ = sb3
    ours = store.history(ids["PPO_1"])
    ours = ours[ours[C.STEP] <= 1024]  # the continuation after it had no callback
    theirs = sqlite.history(mlflow_run)
    tb_metrics = set(ours[C.METRIC].astype(str))
    assert {SB3_IN_BOTH, "rollout/ep_len_mean", "time/fps", "train/loss", "train/value_loss"} <= tb_metrics
    assert tb_metrics <= set(theirs[C.METRIC].astype(str))

    def points(frame: pd.DataFrame) -> list[tuple[str, int, float]]:
        # TensorBoard keeps float32; the callback logged the same numbers as float64
        return sorted(zip(frame[C.METRIC].astype(str), frame[C.STEP].tolist(),
                          frame[C.VALUE].to_numpy(dtype=np.float32).tolist(), strict=True))

    assert points(ours) == points(theirs[theirs[C.METRIC].isin(tb_metrics)])
    assert len(ours) > 30


def test_same_points_as_tbparse(sb3):
    tbparse = pytest.importorskip("tbparse")
    store, _, _, ids, root = sb3
    theirs = tbparse.SummaryReader(str(root), extra_columns={"dir_name", "wall_time"}).scalars
    ours = store.history(store.runs())
    folder = {rid: f"cartpole/{name}" for name, rid in ids.items()}
    mine = sorted(zip(ours[C.RUN_ID].astype(str).map(folder), ours[C.METRIC].astype(str), ours[C.STEP].tolist(),
                      ours[C.VALUE].tolist(), (ours[C.TIMESTAMP].astype("int64") // 10**6).tolist(), strict=True))
    other = sorted(zip(theirs["dir_name"], theirs["tag"], theirs["step"].tolist(), theirs["value"].tolist(),
                       np.round(theirs["wall_time"].to_numpy() * 1000).astype("int64").tolist(), strict=True))
    assert mine == other and len(mine) > 60


def test_layout_of_sb3_folders(sb3):
    store, _, _, ids, root = sb3
    assert set(ids) == {"PPO_1", "finetune_0"}  # the continuation into PPO_1 is no run of its own
    assert ids["PPO_1"] == hashlib.sha1(b"cartpole/PPO_1").hexdigest()[:16]
    assert store.experiments()[C.NAME].tolist() == ["cartpole"]
    runs = store.runs("cartpole").set_index(C.NAME)
    assert set(runs[C.STATUS]) == {C.FINISHED}
    first = runs.loc["PPO_1"]
    assert first[C.START_TIME] < first[C.END_TIME] <= runs.loc["finetune_0", C.START_TIME]
    hist = store.history(ids["PPO_1"], SB3_IN_BOTH)
    assert hist[C.STEP].tolist() == list(range(256, 1537, 256))
    assert first[C.END_TIME] == store.history(ids["PPO_1"])[C.TIMESTAMP].max()  # the last event
    assert first["metrics." + SB3_IN_BOTH] == hist[C.VALUE].iloc[-1]
    files = sorted(p.name for p in (root / "cartpole" / "PPO_1").glob(TB_ONLY_FILES))
    assert len(files) == 2 and sorted(store.artifacts(ids["PPO_1"])[C.PATH]) == files


def test_hparams_and_text_summaries(sb3):
    store, _, _, ids, _ = sb3
    runs = store.runs()
    run = runs.set_index(C.NAME).loc["PPO_1"]
    assert run["params.learning_rate"] == pytest.approx(3e-4) and run["params.algorithm"] == "PPO"
    assert run["params.n_steps"] == 256 and runs["params.n_steps"].dtype == "float64"  # NaN for finetune_0
    assert run["tags.purpose"] == "parity test"
    assert store.run(ids["finetune_0"])["params.learning_rate"] == pytest.approx(1e-4)


def test_chain_across_folders(sb3):
    store, _, _, ids, _ = sb3
    assert store.run(ids["finetune_0"])[C.BASE_RUN_ID] == ids["PPO_1"]  # "cartpole/PPO_1" resolved
    chain = _chain(store, ids["finetune_0"])
    assert chain.runs[C.NAME].tolist() == ["PPO_1", "finetune_0"] and chain.missing_base is None
    hist = chain.history(SB3_IN_BOTH)
    assert hist[C.GLOBAL_STEP].tolist() == list(range(256, 2049, 256))


def test_figures_and_compare_unchanged(sb3):
    store, _, _, ids, _ = sb3
    runs = store.runs()
    hist = store.history(runs, [SB3_IN_BOTH, "train/loss"])
    fig = tb.plots.learning_curves(hist, [SB3_IN_BOTH], runs=runs)
    lines = {t.name: list(t.y) for t in fig.data if t.name in ("PPO_1", "finetune_0") and t.y is not None and len(t.y)}
    reward = hist[hist[C.METRIC] == SB3_IN_BOTH]
    for name, rid in ids.items():
        expected = reward[reward[C.RUN_ID] == rid][C.VALUE].tolist()
        assert lines[name] == pytest.approx(expected)
    table = tb.compare(store, [ids["PPO_1"], ids["finetune_0"]], [SB3_IN_BOTH]).set_index(C.NAME)
    assert table.loc["PPO_1", C.FINAL_PREFIX + SB3_IN_BOTH] == reward[reward[C.RUN_ID] == ids["PPO_1"]][C.VALUE].iloc[-1]
    assert set(table[C.RANK_PREFIX + SB3_IN_BOTH]) == {1, 2}


def test_writers_refuse_it(sb3, tmp_path):
    store, _, _, _, root = sb3
    before = sorted((p, p.stat().st_size) for p in root.rglob("*"))
    for target in (store, store.uri, f"tensorboard://{tmp_path}"):
        with pytest.raises(ReadOnlyStore, match=r"sqlite:///.*aim:///"):
            make_tracker(target)
    with pytest.raises(ReadOnlyStore):
        make_tracker(store.uri, backend="aim")
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1)
    with pytest.raises(ReadOnlyStore):
        model.learn(64, callback=TrackingCallback(store, experiment="x"))
    assert sorted((p, p.stat().st_size) for p in root.rglob("*")) == before
    with pytest.raises(StoreUnavailable):
        tb.connect(f"tensorboard://{tmp_path / 'missing'}")


# ------------------------------------------------------- folders written directly


def _write(folder: Path, points: dict[str, list[float]], *, start_step: int = 0, walltime: float | None = None,
           new_style: bool = False, text: dict[str, str] | None = None) -> None:
    writer = SummaryWriter(str(folder))
    for tag, values in points.items():
        for i, value in enumerate(values):
            wall = None if walltime is None else walltime + i
            writer.add_scalar(tag, value, start_step + i, walltime=wall, new_style=new_style)
    for tag, value in (text or {}).items():
        writer.add_text(tag, value, start_step)
    writer.close()


def test_nested_folders_experiments_and_statuses(tmp_path):
    root = tmp_path / "logs"
    t0 = time.time()
    _write(root / "PPO_1", {"a": [1.0, 2.0]})
    _write(root / "sweep" / "lr" / "PPO_1", {"a": [3.0], "b": [0.5, 0.25, 0.125]}, walltime=t0 + 1)
    _write(root / "sweep" / "lr" / "PPO_1" / "eval", {"c": [7.0]})  # a run folder inside a run folder
    _age(root / "PPO_1")
    store = tb.connect(f"tensorboard://{root}")
    assert sorted(store.experiments()[C.NAME]) == ["logs", "sweep/lr", "sweep/lr/PPO_1"]
    runs = store.runs().set_index(C.RUN_ID)
    rid = hashlib.sha1(b"sweep/lr/PPO_1").hexdigest()[:16]
    assert set(runs.index) == {hashlib.sha1(p.encode()).hexdigest()[:16]
                               for p in ("PPO_1", "sweep/lr/PPO_1", "sweep/lr/PPO_1/eval")}
    assert runs.loc[rid, C.EXPERIMENT] == "sweep/lr" and runs.loc[rid, C.NAME] == "PPO_1"
    assert runs.loc[rid, C.STATUS] == C.RUNNING  # just written
    assert pd.isna(runs.loc[rid, C.END_TIME]) and not runs.loc[rid, C.STALE]
    old = hashlib.sha1(b"PPO_1").hexdigest()[:16]
    assert runs.loc[old, C.STATUS] == C.FINISHED and runs.loc[old, C.EXPERIMENT] == "logs"
    assert t0 - 60 < runs.loc[rid, C.START_TIME].timestamp() <= t0 + 1
    assert set(store.runs("sweep/lr")[C.RUN_ID]) == {rid}
    assert sorted(store.artifacts(rid)[C.PATH]) == sorted(p.name for p in (root / "sweep/lr/PPO_1").glob(TB_ONLY_FILES))
    hist = store.history(rid)
    assert list(hist.columns) == C.HISTORY_COLUMNS
    assert {str(c): str(t) for c, t in hist.dtypes.items()} == {
        C.RUN_ID: "category", C.METRIC: "category", C.STEP: "int64", C.VALUE: "float64",
        C.TIMESTAMP: "datetime64[ns, UTC]"}
    b = hist[hist[C.METRIC] == "b"]
    assert b[C.STEP].tolist() == [0, 1, 2] and b[C.VALUE].tolist() == [0.5, 0.25, 0.125]
    assert b[C.TIMESTAMP].tolist() == [pd.Timestamp(round((t0 + 1 + i) * 1000), unit="ms", tz="UTC") for i in range(3)]


def test_tensor_scalars_and_text_read_through_protobuf(tmp_path):
    values = [0.1, -2.5, float("nan"), 1e30]
    _write(tmp_path / "run", {"loss": values}, start_step=10, new_style=True,
           text={"note": "hello", L.TAG_BASE_RUN: "nowhere"})
    store = tb.connect(f"tensorboard://{tmp_path}")
    rid = store.runs()[C.RUN_ID].iloc[0]
    hist = store.history(rid)
    assert hist[C.STEP].tolist() == [10, 11, 12, 13]
    np.testing.assert_array_equal(hist[C.VALUE].to_numpy(), np.asarray(values, dtype=np.float32).astype(float))
    run = store.run(rid)
    assert run["tags.note"] == "hello" and run[C.BASE_RUN_ID] == "nowhere"  # names no run: left as written
    assert _chain(store, rid).missing_base == "nowhere"


def test_new_points_invalidate_the_history_cache(tmp_path):
    run = tmp_path / "logs" / "PPO_1"
    _write(run, {"r": [1.0, 2.0]})
    _age(run)
    store = tb.connect(f"tensorboard://{tmp_path / 'logs'}")
    rid = store.runs()[C.RUN_ID].iloc[0]
    assert store.history(rid)[C.VALUE].tolist() == [1.0, 2.0]
    assert rid in store.cache.cached_runs()  # finished: cached
    _write(run, {"r": [3.0]}, start_step=2)  # learn(reset_num_timesteps=False): one more file
    _age(run)
    for reader in (store, tb.connect(f"tensorboard://{tmp_path / 'logs'}")):
        assert reader.history(rid)[C.VALUE].tolist() == [1.0, 2.0, 3.0]
        assert reader.run(rid)["metrics.r"] == 3.0
    # a point appended to an existing file, as a live writer does
    before = set(run.glob(TB_ONLY_FILES))
    newest = max(before, key=lambda p: p.name)
    writer = SummaryWriter(str(run))
    writer.add_scalar("r", 4.0, 3)
    writer.close()
    (extra,) = set(run.glob(TB_ONLY_FILES)) - before
    newest.write_bytes(newest.read_bytes() + extra.read_bytes()[_header_length(extra):])
    extra.unlink()
    _age(run)
    assert store.history(rid)[C.VALUE].tolist() == [1.0, 2.0, 3.0, 4.0]


def _header_length(path: Path) -> int:
    """Bytes of the first record (file_version) of an event file."""
    length = int.from_bytes(path.read_bytes()[:8], "little")
    return 16 + length


def test_uri_names_an_absolute_folder(tmp_path, monkeypatch):
    from trackbook.store import resolve_uri

    monkeypatch.chdir(tmp_path)
    assert resolve_uri("tensorboard://logs") == f"tensorboard://{tmp_path / 'logs'}"
    assert resolve_uri(f"tensorboard://{tmp_path}/x/../logs") == f"tensorboard://{tmp_path / 'logs'}"
