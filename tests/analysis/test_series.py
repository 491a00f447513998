"""Per-series summaries: last by step (not by row), max and min over finite points only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackbook import columns as C
from trackbook.analysis._series import series_summary
from trackbook.store.frames import finish_history


def test_last_is_by_step_and_non_finite_points_are_left_out():
    raw = pd.DataFrame([("r1", "m", 3, 7.0, 1), ("r1", "m", 1, 9.0, 2), ("r1", "m", 5, np.nan, 3),
                        ("r1", "m", 4, np.inf, 4), ("r1", "m", 2, -1.0, 5), ("r2", "m", 0, 4.0, 1),
                        ("r2", "n", 0, -np.inf, 1)], columns=C.HISTORY_COLUMNS)
    summary = series_summary(finish_history(raw, ["r1", "r2"]))
    assert summary == {("r1", "m"): {"last": 7.0, "max": 9.0, "min": -1.0},
                       ("r2", "m"): {"last": 4.0, "max": 4.0, "min": 4.0}}
    assert all(type(k[0]) is str and type(k[1]) is str for k in summary)
