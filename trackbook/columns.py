"""Names shared by every DataFrame trackbook returns, and by both sides of a store.

Tidy frames are trackbook's common currency: the store layer returns them, analysis
and plots take them. Their column names live here, once.

``Store.runs()`` (one row per run):
    ``run_id``, ``name``, ``experiment_id``, ``experiment``, ``status``, ``stale`` (True
    for a RUNNING run with no sign of life, heartbeat or metric, for ``stale_after``
    seconds: its process was killed hard),
    ``start_time`` / ``end_time`` (UTC timestamps; ``end_time`` is NaT while running),
    ``duration`` (seconds, float), ``parent_run_id`` (the study/parent run, or None),
    ``base_run_id`` (the run this one continues, from the ``base_model_run_id`` tag),
    then ``params.<name>``, ``tags.<name>`` and ``metrics.<name>`` (last value by step).
    A ``params.*`` column is numeric when every value in it parses as a number.

``Store.history()`` (one row per logged point):
    ``run_id``, ``metric`` (both categorical: a 2,000,000-point frame holds each name
    once), ``step`` (int64), ``value`` (float64, NaN and ±inf kept), ``timestamp`` (UTC).

``Store.experiments()``:
    ``experiment_id``, ``name``, ``lifecycle_stage``, ``creation_time``.

``Store.artifacts()``:
    ``path`` (relative to the run's artifact root, '/'-separated), ``size`` (bytes).
"""

from __future__ import annotations

RUN_ID = "run_id"
NAME = "name"
EXPERIMENT_ID = "experiment_id"
EXPERIMENT = "experiment"
STATUS = "status"
STALE = "stale"
START_TIME = "start_time"
END_TIME = "end_time"
DURATION = "duration"
PARENT_RUN_ID = "parent_run_id"
BASE_RUN_ID = "base_run_id"

PARAMS_PREFIX = "params."
TAGS_PREFIX = "tags."
METRICS_PREFIX = "metrics."

RUN_COLUMNS = [
    RUN_ID,
    NAME,
    EXPERIMENT_ID,
    EXPERIMENT,
    STATUS,
    STALE,
    START_TIME,
    END_TIME,
    DURATION,
    PARENT_RUN_ID,
    BASE_RUN_ID,
]

METRIC = "metric"
STEP = "step"
VALUE = "value"
TIMESTAMP = "timestamp"
HISTORY_COLUMNS = [RUN_ID, METRIC, STEP, VALUE, TIMESTAMP]

LIFECYCLE_STAGE = "lifecycle_stage"
CREATION_TIME = "creation_time"
EXPERIMENT_COLUMNS = [EXPERIMENT_ID, NAME, LIFECYCLE_STAGE, CREATION_TIME]

PATH = "path"
SIZE = "size"
ARTIFACT_COLUMNS = [PATH, SIZE]

# Run statuses, as MLflow names them; Aim runs are mapped onto the same set.
RUNNING = "RUNNING"
SCHEDULED = "SCHEDULED"
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
STATUSES = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
FINAL_STATUSES = (FINISHED, FAILED, KILLED)

# Tags and metrics with a meaning across trackbook.
TAG_BASE_RUN = "base_model_run_id"
TAG_MLFLOW_PARENT = "mlflow.parentRunId"
TAG_MLFLOW_RUN_NAME = "mlflow.runName"
#: Tags with these prefixes are bookkeeping, not shown as ``tags.*`` columns.
SYSTEM_TAG_PREFIXES = ("mlflow.", "trackbook.")
TAG_HEARTBEAT = "trackbook.heartbeat"
METRIC_PREVIOUS_TIMESTEPS = "previous_timesteps"
METRIC_TOTAL_TIMESTEPS = "total_timesteps"
# A study's trial runs (written by tb.hpo.optimize, read by store.study).
TAG_TRIAL_NUMBER = "trial_number"
TAG_TRIAL_STATE = "trial_state"  # Optuna's state: COMPLETE, PRUNED, FAIL
TAG_STUDY_NAME = "study_name"
METRIC_OBJECTIVE = "objective"

# Where trackbook keeps MLflow's concepts inside an Aim run (written by the tracker
# and the fixtures, read by the Aim store).
AIM_PARAMS_KEY = "hparams"
AIM_TAGS_KEY = "tags"
AIM_TRACKBOOK_KEY = "trackbook"  # {"status": ..., "parent_run_id": ...}
