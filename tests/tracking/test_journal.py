"""The local journal, offline mode and ``trackbook sync``.

Real ``mlflow server`` processes are killed (SIGKILL) and started again; trainings are
real PPO runs whose SB3 ``Monitor`` file is the ground truth for episodes; a process
"dying" is a real SIGKILL of a real training process.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import trackbook as tb
from trackbook import columns as C
from trackbook.servers import MlflowServer, wait_http
from trackbook.tracking import TrackingCallback, make_tracker
from trackbook.tracking import _journal
from trackbook.tracking import sync as tbsync

EPISODE_REWARD, EPISODE_LENGTH = "rollout/episode_reward", "rollout/episode_length"
#: For the writing processes only: let failures reach trackbook's own retry at once.
FAST_FAIL = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

TRAINING = textwrap.dedent('''
    import os, signal, sys
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from trackbook.tracking import TrackingCallback, make_tracker

    uri, steps, monitor = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    kill_server_at = int(os.environ.get("KILL_SERVER_AT", 0))
    kill_self_at = int(os.environ.get("KILL_SELF_AT", 0))

    class Faults(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == kill_server_at:
                os.killpg(int(os.environ["SERVER_PGID"]), signal.SIGKILL)
            if self.num_timesteps == kill_self_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return True

    class Announce(BaseCallback):
        def __init__(self, cb):
            super().__init__()
            self.cb = cb
        def _on_training_start(self):
            print("LOCAL", self.cb.tracker.local_id, "RUN", self.cb.run_id, flush=True)
        def _on_step(self):
            return True

    cb = TrackingCallback(tracker=make_tracker(uri, flush_interval=0.5), experiment="journal")
    model = PPO("MlpPolicy", Monitor(gym.make("CartPole-v1"), monitor), n_steps=256, batch_size=64, seed=0)
    model.learn(steps, callback=[cb, Announce(cb), Faults()])
    print("ENDED", flush=True)
''')


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("TRACKBOOK_DATA_DIR", str(folder))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TRACKBOOK_OFFLINE", raising=False)
    return folder


@pytest.fixture()
def server(tmp_path: Path):
    srv = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server")
    _start(srv)
    yield srv
    srv.stop()


def _start(srv: MlflowServer) -> None:
    """Start (again), patient with a loaded machine: a server may take minutes to boot here."""
    try:
        srv.start()
    except TimeoutError:
        wait_http(srv.url + "/health", timeout=300, proc=srv.proc)


def _kill(srv: MlflowServer) -> None:
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    srv.stop()  # reaps workers that outlived the parent


def _journals(data: Path) -> list[Path]:
    root = data / "journals"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _monitor(path: Path) -> pd.DataFrame:
    return pd.read_csv(f"{path}.monitor.csv", skiprows=1)


def _assert_episodes_match(store: tb.Store, run_id: str, monitor: pd.DataFrame) -> None:
    """Every episode of the Monitor file stored once, at the step it ended, in order."""
    hist = store.history(run_id, [EPISODE_REWARD, EPISODE_LENGTH], cache=False)
    lengths = hist[hist[C.METRIC] == EPISODE_LENGTH].sort_values(C.STEP)
    rewards = hist[hist[C.METRIC] == EPISODE_REWARD].sort_values(C.STEP)
    assert len(monitor) > 5
    assert len(lengths) == len(rewards) == len(monitor)  # 0 lost, 0 duplicated
    assert list(lengths[C.VALUE]) == list(monitor["l"].astype(float))
    assert list(rewards[C.VALUE]) == list(monitor["r"].astype(float))
    assert list(lengths[C.STEP]) == list(monitor["l"].cumsum())  # each at the step its episode ended


def _train(script: Path, uri: str, steps: int, monitor: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), uri, str(steps), str(monitor)], capture_output=True,
                          text=True, timeout=1200, env={**os.environ, **FAST_FAIL, **env})


def _sync_cli(*args: str) -> subprocess.CompletedProcess:
    # MLflow's own retries and timeouts: the server is up, but a loaded machine may answer slowly.
    return subprocess.run([sys.executable, "-m", "trackbook.cli", "sync", *args], capture_output=True, text=True,
                          timeout=600)


def _ids(out: str) -> tuple[str, str]:
    """The run's local id (printed by the script) and the store id its journal recorded."""
    line = next(line for line in out.splitlines() if line.startswith("LOCAL"))
    local_id = line.split()[1]
    return local_id, _journal.store_ids()[local_id]


# ------------------------------------------------------------ the three scenarios


class _Outage(BaseCallback):
    """Kills the real server (SIGKILL) at one timestep and starts it again at a later one."""

    def __init__(self, srv: MlflowServer, down_at: int, up_at: int) -> None:
        super().__init__()
        self.srv, self.down_at, self.up_at = srv, down_at, up_at

    def _on_step(self) -> bool:
        if self.num_timesteps == self.down_at:
            _kill(self.srv)
        if self.num_timesteps == self.up_at:
            _start(self.srv)
        return True


def test_server_killed_and_back_mid_training(tmp_path: Path, data_dir: Path, server: MlflowServer, monkeypatch):
    for name, value in FAST_FAIL.items():
        monkeypatch.setenv(name, value)
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor

    tracker = make_tracker(server.url, flush_interval=0.5)
    cb = TrackingCallback(tracker=tracker, experiment="journal")
    env = Monitor(gym.make("CartPole-v1"), str(tmp_path / "train"))
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.learn(3072, callback=[cb, _Outage(server, down_at=700, up_at=2000)])
    store = tb.connect(server.url)
    assert store.run(cb.run_id)[C.STATUS] == C.FINISHED
    _assert_episodes_match(store, cb.run_id, _monitor(tmp_path / "train"))
    assert _journals(data_dir) == []  # everything acknowledged: the journal is gone


def test_server_down_when_the_script_ends_then_trackbook_sync(tmp_path: Path, data_dir: Path, server: MlflowServer):
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    started_ms = time.time() * 1000
    done = _train(script, server.url, 3072, tmp_path / "train", KILL_SERVER_AT="1000", SERVER_PGID=str(server.proc.pid))
    ended_ms = time.time() * 1000
    assert done.returncode == 0, done.stderr[-3000:]
    local_id, run_id = _ids(done.stdout)
    # The process said how many writes of which run are left, and the command that delivers them.
    assert f"of run {run_id} (local id {local_id}" in done.stderr and "trackbook sync" in done.stderr
    assert "writes of run" in done.stderr

    server.stop()
    _start(server)
    store = tb.connect(server.url)
    assert store.run(run_id)[C.STATUS] == C.RUNNING  # what the store has without the journal
    status = _sync_cli("--status")
    assert local_id in status.stdout and "ended" in status.stdout

    synced = _sync_cli()
    assert synced.returncode == 0, synced.stderr
    assert f"run {local_id} -> {run_id}" in synced.stdout and "FINISHED" in synced.stdout
    run = store.run(run_id)
    assert run[C.STATUS] == C.FINISHED
    assert started_ms < run[C.END_TIME].timestamp() * 1000 < ended_ms  # the real end, not the sync's time
    _assert_episodes_match(store, run_id, _monitor(tmp_path / "train"))
    assert _journals(data_dir) == []
    assert _sync_cli().stdout.strip() == "nothing to sync"  # a second sync has nothing to redo


def test_server_killed_then_training_sigkilled_then_sync(tmp_path: Path, data_dir: Path, server: MlflowServer):
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    done = _train(script, server.url, 4096, tmp_path / "train", KILL_SERVER_AT="1000", KILL_SELF_AT="2500",
                  SERVER_PGID=str(server.proc.pid))
    died_ms = time.time() * 1000
    assert done.returncode == -signal.SIGKILL and "ENDED" not in done.stdout
    local_id, run_id = _ids(done.stdout)
    server.stop()
    _start(server)
    assert "died" in _sync_cli("--status").stdout

    synced = _sync_cli()
    assert synced.returncode == 0, synced.stderr
    store = tb.connect(server.url)
    run = store.run(run_id)
    assert run[C.STATUS] == C.KILLED
    hist = store.history(run_id, cache=False)
    last_write_ms = hist[C.TIMESTAMP].max().timestamp() * 1000
    assert last_write_ms <= run[C.END_TIME].timestamp() * 1000 < died_ms  # KILLED at its last write
    _assert_episodes_match(store, run_id, _monitor(tmp_path / "train"))
    assert _journals(data_dir) == []


# --------------------------------------------------------------------- offline


def _offline_run(uri: str, experiment: str, n: int, **kwargs) -> tuple[str, list[tuple[str, int, float]]]:
    tracker = make_tracker(uri, offline=True, **kwargs)
    local_id = tracker.start_run(experiment, name=experiment, params={"lr": 0.1})
    sent = []
    for step in range(n):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step)
        sent.append(("loss", step, 1.0 / (step + 1)))
    tracker.end_run()
    return local_id, sent


@pytest.mark.parametrize("backend", ["mlflow", "aim"])
def test_offline_then_sync_maps_local_ids_to_store_ids(tmp_path: Path, data_dir: Path, backend: str):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if backend == "mlflow" else f"aim://{tmp_path / 'aim'}"
    tracker = make_tracker(uri, offline=True)
    parent = tracker.start_run("offline", name="study")
    assert parent.startswith("local-") and not (tmp_path / "mlflow.db").exists() and not (tmp_path / "aim").exists()
    child = make_tracker(uri, offline=True)
    child_local = child.start_run("offline", name="trial", parent_run_id=parent, params={"lr": 0.01})
    for step in range(1500):
        child.log_metrics({"loss": 1.0 / (step + 1)}, step)
    child.end_run(C.FAILED)
    tracker.end_run()

    results = {r.local_id: r for r in tb.sync()}
    assert results[parent].outcome == results[child_local].outcome == tbsync.DELIVERED
    store = tb.connect(uri)
    child_id, parent_id = results[child_local].run_id, results[parent].run_id
    run = store.run(child_id)
    assert run[C.STATUS] == C.FAILED and run[C.PARENT_RUN_ID] == parent_id and run["params.lr"] == 0.01
    assert store.run(parent_id)[C.STATUS] == C.FINISHED
    assert len(store.history(child_id, "loss", cache=False)) == 1500
    assert _journals(data_dir) == [] and tb.sync() == []


def test_a_child_journal_found_before_its_parent_is_delivered_in_the_same_sync(tmp_path: Path, data_dir: Path):
    import json

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_tracker = make_tracker(uri, offline=True)
    parent = parent_tracker.start_run("offline", name="study")
    child_tracker = make_tracker(uri, offline=True)
    child = child_tracker.start_run("offline", name="trial", parent_run_id=parent)
    child_tracker.log_metrics({"loss": 0.5}, 1)
    child_tracker.end_run()
    parent_tracker.end_run()
    # the child's journal made to look older than its parent's (both can start in the same ms)
    meta = {name: json.loads((data_dir / "journals" / name / "meta.json").read_text()) for name in (parent, child)}
    meta[child]["created_ms"] = meta[parent]["created_ms"] - 1
    (data_dir / "journals" / child / "meta.json").write_text(json.dumps(meta[child]))
    results = {r.local_id: r for r in tb.sync()}
    assert results[child].outcome == results[parent].outcome == tbsync.DELIVERED
    assert tb.connect(uri).run(results[child].run_id)[C.PARENT_RUN_ID] == results[parent].run_id


def test_offline_from_the_environment_and_background_delivery(tmp_path: Path, data_dir: Path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("TRACKBOOK_OFFLINE", "1")
    local_id, sent = _offline_run(uri, "background", 300)
    monkeypatch.delenv("TRACKBOOK_OFFLINE")
    assert [r["local_id"] for r in tbsync.pending()] == [local_id]

    tracker = make_tracker(uri)  # the next tracker on this store delivers the old journal meanwhile
    tracker.start_run("later")
    tbsync._background[uri].join(60)
    tracker.end_run()
    client = MlflowClient(uri)
    [old] = client.search_runs([client.get_experiment_by_name("background").experiment_id])
    assert old.data.tags["trackbook.local_id"] == local_id and old.info.status == C.FINISHED
    assert len(client.get_metric_history(old.info.run_id, "loss")) == len(sent)
    assert _journals(data_dir) == []


def test_two_syncs_at_once_deliver_each_journal_once(tmp_path: Path, data_dir: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # create the tables once, not in both syncs at once
    locals_ = [_offline_run(uri, f"concurrent-{i}", 6000)[0] for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "trackbook.cli", "sync"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    delivered = collections.Counter(
        local for out, _ in outs for line in out.splitlines() for local in locals_ if line.startswith(f"run {local} ->")
    )
    assert delivered == {local: 1 for local in locals_}
    client = MlflowClient(uri)
    for i in range(3):
        runs = client.search_runs([client.get_experiment_by_name(f"concurrent-{i}").experiment_id])
        assert len(runs) == 1  # one run, not one per sync
        history = client.get_metric_history(runs[0].info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(6000))  # every point once
    assert _journals(data_dir) == []


def test_a_line_cut_mid_write_loses_only_that_line(tmp_path: Path, data_dir: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = textwrap.dedent(f'''
        import os, signal
        from trackbook.tracking import make_tracker
        tracker = make_tracker({uri!r}, offline=True)
        print(tracker.start_run("cut"), flush=True)
        for step in range(100):
            tracker.log_metrics({{"x": float(step)}}, step)
        os.kill(os.getpid(), signal.SIGKILL)
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    local_id = done.stdout.split()[0]
    [segment] = (data_dir / "journals" / local_id).glob("journal-*.jsonl")
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 12])  # the last write interrupted

    with pytest.warns(RuntimeWarning, match="was cut mid-write .* that one write is lost"):
        [result] = tb.sync()
    assert result.outcome == tbsync.DELIVERED and result.status == C.KILLED
    client = MlflowClient(uri)
    assert sorted(m.step for m in client.get_metric_history(result.run_id, "x")) == list(range(99))
    assert client.get_run(result.run_id).info.status == C.KILLED


def test_a_full_journal_warns_and_training_goes_on(tmp_path: Path, data_dir: Path, cartpole, monkeypatch):
    monkeypatch.setenv("TRACKBOOK_JOURNAL_MAX_MB", "0.004")  # 4 KiB: a full disk, simulated
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cb = TrackingCallback(uri, experiment="tiny", offline=True)
    sent: list[tuple[str, int, float]] = []
    cb.add_listener(lambda metrics, step: sent.extend((k, step, float(v)) for k, v in metrics.items()))
    model = PPO("MlpPolicy", cartpole(), n_steps=256, batch_size=64, seed=0)
    with pytest.warns(RuntimeWarning, match="reached its size bound of .* Training goes on"):
        model.learn(1024, callback=cb)
    assert model.num_timesteps >= 1024
    local_id = cb.run_id

    [result] = tb.sync()
    assert result.local_id == local_id and result.status == C.FINISHED
    hist = tb.connect(uri).history(result.run_id, cache=False)
    stored = sorted(zip(hist[C.STEP], hist[C.METRIC].astype(str), hist[C.VALUE]))
    kept = sorted((s, k, v) for k, s, v in sent[: len(stored)])
    assert 0 < len(stored) < len(sent) and stored == kept  # what was journaled, in order, once


def test_sync_to_a_deleted_run_says_so_and_touches_nothing_else(tmp_path: Path, data_dir: Path,
                                                               server: MlflowServer):
    script = tmp_path / "write.py"
    script.write_text(textwrap.dedent('''
        import os, signal, sys
        from trackbook.tracking import make_tracker
        tracker = make_tracker(sys.argv[1], flush_interval=0.2)
        print(tracker.start_run("deleted"), flush=True)
        for step in range(50):
            tracker.log_metrics({"x": float(step)}, step)
        tracker.flush(30)
        os.killpg(int(sys.argv[2]), signal.SIGKILL)
        for step in range(50, 100):
            tracker.log_metrics({"x": float(step)}, step)
        tracker.end_run(timeout=3)
    '''))
    done = subprocess.run([sys.executable, str(script), server.url, str(server.proc.pid)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **FAST_FAIL})
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[0]
    server.stop()
    _start(server)
    client = MlflowClient(server.url)
    client.delete_run(run_id)
    other_local, _ = _offline_run(server.url, "other", 20)

    synced = _sync_cli()
    assert synced.returncode == 1
    assert f"Run {run_id} (local id" in synced.stderr and "was deleted" in synced.stderr
    assert "trackbook sync --discard" in synced.stderr
    assert f"run {other_local} ->" in synced.stdout  # the other journal is delivered all the same
    client.restore_run(run_id)
    assert len(client.get_metric_history(run_id, "x")) == 50  # nothing written to the deleted run
    assert client.get_run(run_id).info.status == C.RUNNING
    [left] = _journals(data_dir)
    assert _sync_cli("--discard", left.name).returncode == 0 and _journals(data_dir) == []


def test_journal_lines_reach_the_os_before_log_returns(tmp_path: Path, data_dir: Path):
    """What a SIGKILL right after log_metrics would leave: the line is in the file already."""
    tracker = make_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", offline=True)
    local_id = tracker.start_run("os")
    tracker.log_metrics({"x": 1.0}, 7)
    found = _journal.read(data_dir / "journals" / local_id)
    assert [e.payload for e in found.entries if e.kind == "metrics"][-1][0][::3] == ["x", 7]
    tracker.end_run()
