"""FollowPanel in a real browser, following trainings that log to ``trackbook serve``.

``trackbook serve`` (PostgreSQL and ``mlflow server --app-name trackbook``) takes four
training processes, each logging at a steady rate with MLflow's client: a base run,
its continuation (``base_model_run_id``) and two trials of a study (children of a
parent run). JupyterLab, in headless Chromium, runs a notebook that shows the panel;
once the page shows every training RUNNING the trainings are let finish; then the
points in the Plotly graph div (``gd.data``) must equal MLflow's ``get_metric_history``
per run and metric, and every run must show ``RUNNING → FINISHED``; the panel's Group
control then regroups the same points by chain. Then the same
panel in Marimo (``marimo run``), following one more training.

Every wait is on a condition (page, server or process), never a fixed sleep. Set
``TRACKBOOK_SCREENSHOT_DIR`` to get a copy of the screenshots there as well.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from mlflow.tracking import MlflowClient

from tests.browser import chromium_page
from tests.requirements import require
from tests.widgets.test_notebooks import _run_all, _shot_on_failure
from trackbook.servers import free_port, stop, wait_http

METRICS = ("reward", "loss")

_TRAINING = """
import json, math, os, sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from trackbook import layout as L

uri, experiment_id, name, out, gate, parent, base, after = sys.argv[1:9]
client = MlflowClient(uri)
tags = {**({L.TAG_MLFLOW_PARENT: parent} if parent != "-" else {}), **({L.TAG_BASE_RUN: base} if base != "-" else {})}
run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
with open(out + ".tmp", "w") as f:
    json.dump({"run_id": run_id}, f)
os.replace(out + ".tmp", out)
seed = sum(map(ord, name))
step, left = 0, int(after)
while left > 0:  # log at a steady rate until the gate opens, then `after` steps more
    if os.path.exists(gate):
        left -= 1
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("reward", 10 + 0.5 * step + 3 * math.sin(step + seed), now, step),
                                      Metric("loss", 1 / (1 + step) + 0.01 * math.cos(seed * step), now, step)])
    step += 1
    time.sleep(0.2)
client.set_terminated(run_id, "FINISHED")
"""

# The Plotly graph div, in the page or in a shadow root (Marimo's widgets), and the panel's run table.
_FIND = """
const find = (root, sel) => { const hit = root.querySelector(sel); if (hit) return hit;
  for (const e of root.querySelectorAll('*')) if (e.shadowRoot) { const f = find(e.shadowRoot, sel); if (f) return f; }
  return null; };
"""
_DRAWN = _FIND + """
const gd = find(document, '.js-plotly-plot');
return gd && gd.data ? gd.data.map(t => ({meta: t.meta || null, name: t.name, x: Array.from(t.x || []),
                                          y: Array.from(t.y || []),
                                          group: t.legendgrouptitle ? t.legendgrouptitle.text : null})) : null;
"""
_TABLE = _FIND + """
const view = find(document, '.tb-follow');
return view ? [...view.querySelectorAll('tr')].map(r => [...r.querySelectorAll('th,td')].map(c => c.innerText)) : null;
"""


def _js(body: str) -> str:
    return "() => {" + body + "}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``trackbook serve`` on free ports; yields its mlflow server URL."""
    require(bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres)", "apt-get install postgresql")
    work = tmp_path_factory.mktemp("serve")
    log = work / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("trackbook")), "serve", "--folder", str(work / "srv"),
                                 "--port", str(free_port())], stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (found := re.search(r"^mlflow server:\s+(\S+)", log.read_text(), re.M)):
            assert proc.poll() is None, f"trackbook serve exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"trackbook serve printed no URL in 180 s:\n{log.read_text()}"
            time.sleep(0.2)  # a poll interval: the loop ends on the condition above
        yield found.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


class _Trainings:
    """Training processes logging to the server; each writes its run id as soon as it has one."""

    def __init__(self, uri: str, experiment_id: str, folder: Path, after: int = 15) -> None:
        self.uri, self.experiment_id, self.folder, self.after = uri, experiment_id, folder, after
        self.script = folder / "training.py"
        self.script.write_text(textwrap.dedent(_TRAINING))
        self.gate = folder / "gate"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *, parent: str = "-", base: str = "-") -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, str(self.script), self.uri, self.experiment_id, name, str(self.folder / f"{name}.json"),
             str(self.gate), parent, base, str(self.after)],
            stdout=(self.folder / f"{name}.log").open("w"), stderr=subprocess.STDOUT)

    def run_id(self, name: str, timeout: float = 120) -> str:
        out, deadline = self.folder / f"{name}.json", time.monotonic() + timeout
        while not out.exists():
            assert self.procs[name].poll() is None, (self.folder / f"{name}.log").read_text()
            assert time.monotonic() < deadline, f"training {name} made no run in {timeout:.0f} s"
            time.sleep(0.1)  # a poll interval: the loop ends on the condition above
        return json.loads(out.read_text())["run_id"]

    def finish(self, timeout: float = 180) -> None:
        self.gate.touch()
        for name, proc in self.procs.items():
            assert proc.wait(timeout=timeout) == 0, (self.folder / f"{name}.log").read_text()[-3000:]

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()


def _stored(client: MlflowClient, run_ids: dict[str, str]) -> dict[tuple[str, str], tuple[list, list]]:
    out = {}
    for rid in run_ids.values():
        for metric in METRICS:
            points = sorted(client.get_metric_history(rid, metric), key=lambda p: (p.step, p.timestamp))
            out[(rid, metric)] = ([p.step for p in points], [p.value for p in points])
    return out


def _drawn(page, role: str = "raw") -> dict[tuple[str, str], tuple[list, list]]:
    traces = page.evaluate(_js(_DRAWN)) or []
    return {(t["meta"]["run_id"], t["meta"]["metric"]): ([int(v) for v in t["x"]], t["y"]) for t in traces
            if t["meta"] and t["meta"]["role"] == role}


def _states(page) -> dict[str, str]:
    rows = page.evaluate(_js(_TABLE)) or []
    if not rows:
        return {}
    header = rows[0]
    return {r[header.index("name")]: r[header.index("status")] for r in rows[1:]}


def _wait(page, condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s; the page shows {_states(page)}"
        page.wait_for_timeout(250)  # a poll interval: the loop ends on the condition


def _shots(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    if folder := os.environ.get("TRACKBOOK_SCREENSHOT_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(folder) / name)
    return shot


@contextlib.contextmanager
def _jupyterlab(root: Path, tmp_path: Path):
    """JupyterLab on ``root`` as ``bash scripts/dev lab`` starts it (127.0.0.1, a token); yields (base, token)."""
    port, token = free_port(), "t" + os.urandom(12).hex()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.log_level=WARN", "--LabApp.log_level=WARN"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with (tmp_path / "lab.log").open("w") as log:
        lab = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=120, proc=lab)
        yield f"http://127.0.0.1:{port}", token
    finally:
        stop(lab)


def _notebook(path: Path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(source).strip())]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_jupyterlab_panel_follows_four_trainings_to_the_end(served: str, tmp_path: Path):
    client = MlflowClient(served)
    experiment = "follow-lab"
    exp_id = client.create_experiment(experiment)
    parent = client.create_run(exp_id, run_name="study").info.run_id
    trainings = _Trainings(served, exp_id, tmp_path)
    root = tmp_path / "lab"
    root.mkdir()
    _notebook(root / "follow.ipynb", f"""
        import trackbook as tb
        store = tb.connect({served!r})
        panel = tb.widgets.FollowPanel(store, {experiment!r}, metrics={list(METRICS)!r}, interval=1.0,
                                       smoothing=("ema", 0.6), group_by="parent")
        panel
    """)
    started = time.monotonic()
    try:
        trainings.start("base")
        trainings.start("trial-0", parent=parent)
        trainings.start("trial-1", parent=parent)
        trainings.start("continued", base=trainings.run_id("base"))
        ids = {name: trainings.run_id(name) for name in trainings.procs}
        with _jupyterlab(root, tmp_path) as (base_url, token), chromium_page(viewport=(1400, 1300)) as page, \
                _shot_on_failure(page, tmp_path):
            url = f"{base_url}/lab/tree/follow.ipynb?token={token}"
            page.goto(url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            _run_all(page, url)
            page.wait_for_selector(".js-plotly-plot .main-svg", state="attached", timeout=120_000)
            # every training is drawn while RUNNING before any may finish
            _wait(page, lambda: all(_states(page).get(n) == "RUNNING" for n in ids) and
                  {(rid, m) for rid in ids.values() for m in METRICS} <= set(_drawn(page)), "all four RUNNING, drawn")
            page.evaluate(_js(_FIND + "find(document, '.js-plotly-plot').dataset.tbFirstSeen = 'yes';"))
            _shots(page, tmp_path, "follow-lab-running.png")
            trainings.finish()
            client.set_terminated(parent, "FINISHED")
            stored = _stored(client, ids)
            _wait(page, lambda: _drawn(page) == stored and all(
                _states(page).get(n) == "RUNNING → FINISHED" for n in [*ids, "study"]), "drawn == stored, FINISHED")
            smoothed = _drawn(page, "smoothed")
            assert set(smoothed) == set(stored) and all(smoothed[k][0] == stored[k][0] for k in stored)
            # the same graph div all along: the figure was extended, never rendered anew
            assert page.evaluate(_js(_FIND + "return find(document, '.js-plotly-plot').dataset.tbFirstSeen;")) == "yes"
            traces = page.evaluate(_js(_DRAWN))
            assert {f"{n} · FINISHED" for n in ids} <= {t["name"] for t in traces}
            groups = {t["meta"]["run_id"]: t["group"] for t in traces}
            assert groups[ids["trial-0"]] == groups[ids["trial-1"]] == "study: study"
            assert groups[ids["base"]] == groups[ids["continued"]] == "(no parent)"
            assert min(len(stored[(ids[n], "reward")][0]) for n in ids) >= 15
            _shots(page, tmp_path, "follow-lab.png")
            note = page.evaluate(_js(_FIND + "return find(document, '.tb-follow').innerText;"))
            print("JupyterLab panel:", note.splitlines()[0])
            # the panel's Group control, as a user picks it: the same points, now grouped by chain
            page.locator(".widget-dropdown", has_text="Group").locator("select").select_option(label="by chain")

            def chain_groups() -> dict[str, str]:
                return {t["meta"]["run_id"]: t["group"] for t in page.evaluate(_js(_DRAWN)) if t["meta"]}

            _wait(page, lambda: chain_groups().get(ids["continued"]) == "chain: base", "grouped by chain")
            groups = chain_groups()
            assert groups[ids["base"]] == "chain: base" and groups[ids["trial-0"]] == "chain: trial-0"
            assert _drawn(page) == stored
            _shots(page, tmp_path, "follow-lab-chains.png")
            assert not [e for e in page.console_errors if "plotly" in e.lower() or "widget" in e.lower()]
    finally:
        trainings.kill()
    print(f"JupyterLab part: {time.monotonic() - started:.1f} s")


_MARIMO = '''
import marimo

app = marimo.App()


@app.cell
def _():
    import trackbook as tb

    panel = tb.widgets.FollowPanel(tb.connect({uri!r}), {experiment!r}, metrics={metrics!r}, interval=1.0,
                                   smoothing=("rolling", 5), group_by="chain")
    panel
    return


if __name__ == "__main__":
    app.run()
'''


def test_marimo_panel_follows_a_training(served: str, tmp_path: Path):
    require(importlib.util.find_spec("marimo") is not None, "marimo", "pip install -e '.[notebook]' (bash scripts/dev setup)")
    client = MlflowClient(served)
    experiment = "follow-marimo"
    exp_id = client.create_experiment(experiment)
    (tmp_path / "follow_app.py").write_text(_MARIMO.format(uri=served, experiment=experiment, metrics=list(METRICS)))
    trainings = _Trainings(served, exp_id, tmp_path, after=10)
    port = free_port()
    with (tmp_path / "marimo.log").open("w") as log:
        app = subprocess.Popen([sys.executable, "-m", "marimo", "run", str(tmp_path / "follow_app.py"), "--headless",
                                "--host", "127.0.0.1", "--port", str(port), "--no-token", "--no-sandbox"],
                               cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        trainings.start("marimo-run")
        ids = {"marimo-run": trainings.run_id("marimo-run")}
        wait_http(f"http://127.0.0.1:{port}/", timeout=120, proc=app)
        with chromium_page(viewport=(1300, 1100)) as page, _shot_on_failure(page, tmp_path):
            page.goto(f"http://127.0.0.1:{port}/")
            _wait(page, lambda: _states(page).get("marimo-run") == "RUNNING" and
                  (ids["marimo-run"], "reward") in _drawn(page), "the training RUNNING, drawn")
            trainings.finish()
            stored = _stored(client, ids)
            _wait(page, lambda: _drawn(page) == stored and _states(page).get("marimo-run") == "RUNNING → FINISHED",
                  "drawn == stored, FINISHED")
            assert {k: v[0] for k, v in _drawn(page, "smoothed").items()} == {k: v[0] for k, v in stored.items()}
            _shots(page, tmp_path, "follow-marimo.png")
    finally:
        trainings.kill()
        stop(app)
