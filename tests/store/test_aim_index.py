"""Aim round trips across processes: what one process writes, the next one reads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import trackbook as tb
from trackbook import columns as C

# A plain Aim user's script: no trackbook, a short-lived process that never waits for
# Aim's background indexer.
_PLAIN_AIM_WRITER = """
import sys, aim
repo, name = sys.argv[1], sys.argv[2]
run = aim.Run(repo=repo, experiment="plain-aim", system_tracking_interval=None)
run.name = name
run["hparams"] = {"lr": 0.01, "net": {"depth": 2}}
for step in range(50):
    run.track(step * 0.5, name="loss", step=step)
    run.track(step * 0.1, name="acc", step=step, context={"subset": "val"})
run.close()
print(run.hash)
"""

_READER = """
import sys, json, trackbook as tb
store = tb.connect("aim://" + sys.argv[1])
runs = store.runs()
hist = store.history(runs)
print(json.dumps({"names": sorted(runs["name"]), "points": len(hist)}))
"""


def _python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _aim_init(repo: Path) -> Path:
    """A new repository made by Aim's own CLI, as a user would."""
    repo.mkdir()
    subprocess.run([str(Path(sys.executable).with_name("aim")), "init", "--repo", str(repo)],
                   check=True, capture_output=True)
    return repo


def test_runs_written_by_short_plain_aim_processes_are_read_by_the_next(tmp_path: Path):
    import json

    repo = _aim_init(tmp_path / "repo")
    _python(_PLAIN_AIM_WRITER, str(repo), "first")
    assert json.loads(_python(_READER, str(repo))) == {"names": ["first"], "points": 100}
    # The index now exists; a later writer's run must still be seen by a new reader.
    _python(_PLAIN_AIM_WRITER, str(repo), "second")
    _python(_PLAIN_AIM_WRITER, str(repo), "third")
    assert json.loads(_python(_READER, str(repo))) == {"names": ["first", "second", "third"], "points": 300}


def test_a_long_lived_reader_sees_runs_written_after_it_connected(tmp_path: Path):
    repo = _aim_init(tmp_path / "repo")
    _python(_PLAIN_AIM_WRITER, str(repo), "before")
    store = tb.connect(f"aim://{repo}")
    assert list(store.runs()[C.NAME]) == ["before"]
    new_hash = _python(_PLAIN_AIM_WRITER, str(repo), "after")
    runs = store.runs()
    assert set(runs[C.NAME]) == {"before", "after"}
    row = store.run(new_hash)
    # plain Aim runs: FINISHED once closed, nested hparams flattened, contexts in the label
    assert row[C.STATUS] == C.FINISHED
    assert row["params.net.depth"] == 2
    assert row["metrics.acc[subset=val]"] == 49 * 0.1


def test_fixture_repo_is_fully_indexed_for_plain_aim_readers(fixture_dir: Path):
    code = "import sys, aim; print(len(list(aim.Repo(sys.argv[1]).iter_runs())))"
    assert _python(code, str(fixture_dir / "aim")) == "17"
