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

# Columns analysis adds (chains, studies, comparisons).
#: ``Chain.runs``: position in the chain (root = 0) and the global step its own steps start at.
POSITION = "position"
OFFSET = "offset"
#: ``Chain.history()``: the chain-wide step and the run's position.
GLOBAL_STEP = "global_step"
SEGMENT = "segment"
#: ``chains()``: one row per run of the experiment's chain trees.
ROOT_RUN_ID = "root_run_id"
DEPTH = "depth"
CHILDREN = "children"
MISSING_BASE = "missing_base"
#: ``chains()``: why a run's link is broken (None for a sound one), one of the values below.
LINK_PROBLEM = "link_problem"
LINK_CYCLE = "cycle"
LINK_SELF = "self link"
LINK_MISSING = "missing base"
#: ``Chain.links()``: one row per link and metric.
TIMESTEPS_ADDED = "timesteps_added"
BEFORE = "before"
AFTER = "after"
DELTA = "delta"
LINK_COLUMNS = [POSITION, RUN_ID, NAME, BASE_RUN_ID, TIMESTEPS_ADDED, METRIC, BEFORE, AFTER, DELTA]
#: ``Study.trials``: then the trials' ``params.*``.
TRIAL_NUMBER = "trial_number"
STATE = "state"
OBJECTIVE = "objective"
TRIAL_COLUMNS = [TRIAL_NUMBER, RUN_ID, NAME, STATUS, STATE, OBJECTIVE, DURATION, START_TIME]
#: ``Study.importance()``.
PARAM = "param"
IMPORTANCE = "importance"
#: ``studies()``: one row per study, with a count per trial state (COMPLETE, PRUNED, FAIL, RUNNING).
DIRECTION = "direction"
N_TRIALS = "n_trials"
BEST_OBJECTIVE = "best_objective"
#: ``compare()``: per metric ``final.<m>``, ``best.<m>`` and ``rank.<m>``.
FINAL_PREFIX = "final."
BEST_PREFIX = "best."
RANK_PREFIX = "rank."
