"""Frame builders: how params read as numbers or text, whichever backend answered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackbook.store.frames import RunRecord, runs_frame


def _params_frame(values: list[object]) -> pd.Series:
    records = [RunRecord(run_id=f"{i:032x}", name=f"r{i}", experiment_id="1", experiment="e", status="FINISHED",
                         start_time=1000.0 * i, end_time=None, params={"x": v}) for i, v in enumerate(values)]
    return runs_frame(records).sort_values("name")["params.x"].reset_index(drop=True)


def test_none_texts_are_missing_in_a_numeric_column():
    # MLflow logs Python's None as the text "None"; one such run must not make a filter on the column fail.
    column = _params_frame(["0.01", "None", "0.5"])
    assert column.dtype == "float64"
    assert np.isnan(column[1]) and column[0] == 0.01 and column[2] == 0.5


def test_zero_padded_codes_stay_text():
    assert _params_frame(["007", "8"]).tolist() == ["007", "8"]


def test_words_stay_text_and_numbers_become_numbers():
    assert _params_frame(["adam", "sgd"]).tolist() == ["adam", "sgd"]
    assert _params_frame(["1", "2"]).dtype == "int64"
    assert _params_frame(["1e-4", "0"]).tolist() == [0.0001, 0.0]
