"""The runs filter language on a small runs frame: which runs a user's filter keeps."""

from __future__ import annotations

import pytest

import trackbook as tb
from trackbook.store.filters import apply_filter
from trackbook.store.frames import RunRecord, runs_frame


@pytest.fixture(scope="module")
def frame():
    rows = [("a", "FINISHED", {"lr": "0.1", "algo": "ppo", "net.arch": "64"}, {"team": "x", "note": "x=y AND z"}, {"reward": 10.0}),
            ("b", "FAILED", {"lr": "0.01", "algo": "sac", "net.arch": "128"}, {"team": "y"}, {"reward": 20.0}),
            ("c", "FINISHED", {"lr": "0.001", "algo": "ppo", "net.arch": "256"}, {"team": "x"}, {"reward": 30.0})]
    return runs_frame([RunRecord(run_id=f"{i:032x}", name=n, experiment_id="1", experiment="e", status=s,
                                 start_time=1000.0 * i, end_time=None, params=p, tags=t, metrics=m)
                       for i, (n, s, p, t, m) in enumerate(rows)])


def names(frame, expression):
    return sorted(apply_filter(frame, expression)["name"])


@pytest.mark.parametrize("expression, expected", [
    ("params.lr > 0.005", ["a", "b"]),
    ("params.algo == 'ppo'", ["a", "c"]),
    ("params.algo = 'ppo'", ["a", "c"]),
    ("params.algo != 'ppo'", ["b"]),
    ("metrics.reward >= 20", ["b", "c"]),
    ("metrics.reward <= 20", ["a", "b"]),
    ("params.algo = 'ppo' AND metrics.reward > 15", ["c"]),
    ("params.algo = 'sac' OR tags.team = 'x' and metrics.reward < 20", ["a", "b"]),
    ("NOT params.algo = 'ppo'", ["b"]),
    ("params.net.arch == 128", ["b"]),
    ("`params.net.arch` == 256", ["c"]),
    ('params."net.arch" == 64', ["a"]),
    ("params.'net.arch' == 64", ["a"]),
    ("params.`net.arch` == 128", ["b"]),
    ("tags.note == 'x=y AND z'", ["a"]),
    ("status == 'FINISHED' and params.algo == 'ppo'", ["a", "c"]),
])
def test_filters_keep_the_runs_that_match(frame, expression, expected):
    assert names(frame, expression) == expected


def test_words_inside_quotes_are_left_alone(frame):
    assert names(frame, "params.algo == 'AND'") == []
    assert names(frame, "tags.team == 'x' and name != 'a=b'") == ["a", "c"]


def test_a_bad_filter_says_what_and_lists_the_columns(frame):
    with pytest.raises(tb.InvalidFilter) as info:
        apply_filter(frame, "params.nope > 1")
    message = str(info.value)
    assert "Could not apply filter 'params.nope > 1'" in message
    assert "UndefinedVariableError" in message
    assert "Columns here: params.algo, params.lr, params.net.arch, tags.note, tags.team, metrics.reward." in message


def test_a_bad_filter_lists_at_most_20_columns_or_says_none():
    wide = runs_frame([RunRecord(run_id="0" * 32, name="w", experiment_id="1", experiment="e", status="FINISHED",
                                 start_time=1.0, end_time=None, params={f"p{i:02d}": i for i in range(25)})])
    with pytest.raises(tb.InvalidFilter) as info:
        apply_filter(wide, "nope > 1")
    listed = str(info.value).split("Columns here: ")[1].rstrip(".").split(", ")
    assert listed == [f"params.p{i:02d}" for i in range(20)]
    bare = runs_frame([RunRecord(run_id="0" * 32, name="w", experiment_id="1", experiment="e", status="FINISHED",
                                 start_time=1.0, end_time=None)])
    with pytest.raises(tb.InvalidFilter, match=r"Columns here: none\.$"):
        apply_filter(bare, "nope > 1")
