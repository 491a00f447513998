"""Aim round trips across processes: what one process writes, the next one reads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.foreign._truth import aim_series
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


_FINISHED_RUN = """
import sys, aim
run = aim.Run(repo=sys.argv[1], experiment="late", system_tracking_interval=None)
for step in range(10, 20):
    run.track(1.0, name="loss", step=step)
run.close()
print(run.hash)
"""

_APPEND = """
import sys, aim
repo, run_hash, step, value = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
run = aim.Run(run_hash, repo=repo, system_tracking_interval=None)
run.track(value, name="loss", step=step)
run.close()
print(step)
"""

_CACHED_READER = """
import sys, json, trackbook as tb
from trackbook.store.aim import AimStore
store = AimStore("aim://" + sys.argv[1], cache_dir=sys.argv[2])
read = []
inner = store._read_history
store._read_history = lambda ids, names: read.append(list(ids)) or inner(ids, names)
hist = store.history(store.runs(), ["loss"])
print(json.dumps({"points": [[int(s), float(v)] for s, v in zip(hist["step"], hist["value"])], "read": len(read)}))
"""


def test_late_points_on_a_finished_aim_run_reach_the_next_reader_past_the_cache(tmp_path: Path):
    """Aim keeps no point count; the cache checks a series by Aim's own summary of it
    (last step and value, min, max, ...). A later point with the same value as the last
    one (the old check by last value missed it), and an earlier one that moves the max,
    are both seen."""
    import json

    import aim

    repo, cache = _aim_init(tmp_path / "repo"), tmp_path / "cache"
    run_hash = _python(_FINISHED_RUN, str(repo))  # each writer its own process: Aim locks a run's files

    first = json.loads(_python(_CACHED_READER, str(repo), str(cache)))
    assert first["read"] == 1 and len(first["points"]) == 10
    assert json.loads(_python(_CACHED_READER, str(repo), str(cache)))["read"] == 0  # served from the cache
    for step, value in ((25, 1.0), (5, 3.0)):  # the last value unchanged both times
        _python(_APPEND, str(repo), run_hash, str(step), str(value))
        after = json.loads(_python(_CACHED_READER, str(repo), str(cache)))
        steps, values = aim_series(aim.Repo(str(repo)), run_hash)["loss"]
        assert after["read"] == 1, step
        assert after["points"] == [[s, v] for s, v in zip(steps, values, strict=True)]
        assert steps == sorted({*range(10, 20), 25, *([5] if step == 5 else [])})
