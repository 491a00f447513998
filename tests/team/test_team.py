"""Team scale: one mlflow server on PostgreSQL, many training processes, distributed studies.

Real PostgreSQL (initdb/pg_ctl), a real ``mlflow server`` and real SB3 trainings in
separate processes; points are compared as multisets with what each process logged.
"""

from __future__ import annotations

import collections
import json
import re
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest

from tests.requirements import require

import trackbook as tb
from trackbook import columns as C
from trackbook.servers import free_port

WRITERS = 8

_TRAINER = """
import json, sys, warnings
import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from trackbook.tracking import TrackingCallback

torch.set_num_threads(1)
uri, experiment, out, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sent = []
cb = TrackingCallback(uri, experiment=experiment, run_name=f"writer-{seed}", eval_env=Monitor(gym.make("CartPole-v1")),
                      eval_freq=512, n_eval_episodes=2)
cb.add_listener(lambda metrics, step: sent.extend([k, step, float(v)] for k, v in metrics.items()))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    PPO("MlpPolicy", Monitor(gym.make("CartPole-v1")), n_steps=256, batch_size=64, n_epochs=2, seed=seed).learn(
        1024, callback=cb)
json.dump({"run_id": cb.run_id, "sent": sent, "warnings": [str(w.message) for w in caught]}, open(out, "w"))
"""

_STUDY_WORKER = """
import sys, trackbook as tb
uri, storage = sys.argv[1], sys.argv[2]
tb.hpo.optimize(lambda t: -(t.params["x"] - 0.3) ** 2 - (t.params["y"] - 2) ** 2,
                {"x": {"low": 0.0, "high": 1.0}, "y": [1, 2, 3]}, n_trials=4, store=uri, experiment="team-study",
                study_name="team", storage=storage)
"""


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """``trackbook serve``: PostgreSQL (databases mlflow, optuna) and an mlflow server on it.

    Yields ``({"mlflow": sql_uri, "optuna": storage_uri}, server_url)`` as the command
    prints them; Ctrl+C (SIGINT) must then stop both and exit 0.
    """
    import glob
    import shutil

    require(bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres)", "apt-get install postgresql")
    work = tmp_path_factory.mktemp("team")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("trackbook")), "serve", "--folder", str(work),
                             "--port", str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed = _read_until(proc, "Ctrl+C", timeout=180)
        found = dict(re.findall(r"^(mlflow server|direct SQL|optuna storage):\s+(\S+)", printed, re.M))
        assert len(found) == 3, printed
        yield {"mlflow": found["direct SQL"], "optuna": found["optuna storage"]}, found["mlflow server"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        for uri in (found["mlflow server"], found["direct SQL"]):  # both servers are gone
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", urlsplit(uri).port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()


def _read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    """What a process printed up to a line holding ``marker``; a thread keeps draining the pipe."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline, printed = time.monotonic() + timeout, []
    while time.monotonic() < deadline and (proc.poll() is None or not lines.empty()):
        try:
            printed.append(lines.get(timeout=1.0))
        except queue.Empty:
            continue
        if marker in printed[-1]:
            return "".join(printed)
    raise AssertionError(f"no {marker!r} within {timeout}s; printed:\n{''.join(printed)[-3000:]}")


def _train_concurrently(uri: str, experiment: str, folder: Path) -> list[dict]:
    script = folder / "trainer.py"
    script.write_text(textwrap.dedent(_TRAINER))
    outs = [folder / f"writer-{i}.json" for i in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, str(script), uri, experiment, str(out), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, out in enumerate(outs)]
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-3000:]
    return [json.loads(out.read_text()) for out in outs]


def _assert_exactly_once(store: tb.Store, results: list[dict]) -> None:
    run_ids = [r["run_id"] for r in results]
    assert len(set(run_ids)) == WRITERS and None not in run_ids
    runs = store.runs(run_ids=run_ids)
    assert (runs[C.STATUS] == C.FINISHED).all()
    hist = store.history(run_ids, cache=False)
    for result in results:
        mine = hist[hist[C.RUN_ID] == result["run_id"]]
        stored = collections.Counter(zip(mine[C.METRIC].astype(str), mine[C.STEP], mine[C.VALUE]))
        sent = collections.Counter((k, s, v) for k, s, v in result["sent"])
        assert stored == sent, f"run {result['run_id']}: missing {sent - stored}, extra {stored - sent}"


def test_eight_trainings_log_to_one_server_on_postgresql(team, tmp_path: Path):
    uris, url = team
    results = _train_concurrently(url, "team-train", tmp_path)
    for result in results:
        assert not [w for w in result["warnings"] if "cannot write" in w], result["warnings"]
    _assert_exactly_once(tb.connect(url), results)
    # the same runs read directly from PostgreSQL through the bulk SQL path
    direct = tb.connect(uris["mlflow"])
    over_http = tb.connect(url).history([r["run_id"] for r in results], cache=False)
    over_sql = direct.history([r["run_id"] for r in results], cache=False)
    key = [C.RUN_ID, C.METRIC, C.STEP, C.VALUE]
    assert over_sql[key].astype({C.RUN_ID: str, C.METRIC: str}).sort_values(key).reset_index(drop=True).equals(
        over_http[key].astype({C.RUN_ID: str, C.METRIC: str}).sort_values(key).reset_index(drop=True))


def test_three_optuna_workers_share_one_study_on_postgresql(team, tmp_path: Path):
    uris, url = team
    storage = uris["optuna"]
    created = tb.hpo.optimize(lambda t: 0.0, {"x": {"low": 0.0, "high": 1.0}, "y": [1, 2, 3]}, n_trials=0,
                              store=url, experiment="team-study", study_name="team", storage=storage)
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(_STUDY_WORKER))
    procs = [subprocess.Popen([sys.executable, str(script), url, storage], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    study = tb.study(tb.connect(url), created.parent_run_id)
    optuna_study = optuna.load_study(study_name="team", storage=storage)
    assert len(study.trials) == len(optuna_study.trials) == 12
    assert sorted(study.trials["trial_number"]) == list(range(12))
    assert (study.trials["state"] == "COMPLETE").all()
    assert study.best["objective"] == pytest.approx(optuna_study.best_value)
    assert study.best["trial_number"] == optuna_study.best_trial.number
    listed = tb.study_list(tb.connect(url), "team-study")
    assert listed.set_index(C.RUN_ID).loc[created.parent_run_id, "n_trials"] == 12


def test_eight_trainings_on_one_sqlite_file(tmp_path: Path):
    """The embedded store under the same load: busy sqlite writes are retried, none lost or doubled."""
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    tb.connect(uri).experiments()  # create the schema once, before the writers race for it
    results = _train_concurrently(uri, "team-sqlite", tmp_path)
    _assert_exactly_once(tb.connect(uri), results)
