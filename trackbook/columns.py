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

# Columns of the statistics across seeds (``trackbook.analysis.seeds``).
#: ``seed_groups().table``: one row per group (then the columns grouped by):
#: ``group`` (a label such as ``learning_rate=0.001, gamma=0.99``), ``n_runs``,
#: ``run_ids`` and ``seeds`` (lists, by seed). ``.members``: one row per run,
#: ``run_id, name, group, seed, task``.
GROUP = "group"
N_RUNS = "n_runs"
RUN_IDS = "run_ids"
SEEDS = "seeds"
SEED = "seed"
TASK = "task"
SEED_GROUP_COLUMNS = [GROUP, N_RUNS, RUN_IDS, SEEDS]
MEMBER_COLUMNS = [RUN_ID, NAME, GROUP, SEED, TASK]
#: ``seed_scores()``: one row per run and metric: the mean of the run's last N finite points.
SCORE = "score"
SCORE_COLUMNS = [GROUP, RUN_ID, SEED, TASK, METRIC, SCORE]
#: ``seed_curves()``: one row per group, metric and grid step: the statistic across runs
#: (runs linearly interpolated onto a common step grid), its bootstrap band, and how
#: many runs cover the step.
ESTIMATE = "estimate"
LOW = "low"
HIGH = "high"
CURVE_COLUMNS = [GROUP, METRIC, STEP, ESTIMATE, LOW, HIGH, N_RUNS]
#: ``score_intervals()``: one row per group, metric and statistic.
STATISTIC = "statistic"
N_SEEDS = "n_seeds"
N_TASKS = "n_tasks"
INTERVAL_COLUMNS = [GROUP, METRIC, STATISTIC, ESTIMATE, LOW, HIGH, N_RUNS, N_SEEDS, N_TASKS]
#: ``performance_profiles()``: fraction of runs better than ``tau``, with its band.
TAU = "tau"
FRACTION = "fraction"
PROFILE_COLUMNS = [GROUP, METRIC, TAU, FRACTION, LOW, HIGH]
#: ``probability_of_improvement()``: P(a run of group_x beats a run of group_y).
GROUP_X = "group_x"
GROUP_Y = "group_y"
PROBABILITY = "probability"
IMPROVEMENT_COLUMNS = [METRIC, GROUP_X, GROUP_Y, PROBABILITY, LOW, HIGH]
#: Values of the ``statistic`` column (rliable's aggregates).
IQM = "iqm"
MEAN = "mean"
MEDIAN = "median"
OPTIMALITY_GAP = "optimality_gap"
