"""The run layout: the names a run carries in a store, shared by writers and readers.

``trackbook.columns`` names the columns of the frames trackbook returns; this module
names what lives *inside* a store: tags, params and metrics with a meaning, the trial
states of a study, where trackbook keeps MLflow's concepts in an Aim run, and the kinds
of write operation a tracker delivers. Writers (``trackbook.tracking``) write these
names and readers (``trackbook.store``, ``trackbook.analysis``) read them; nothing
else spells them.

Enhancement chains:
    a continued run carries the tag ``base_model_run_id`` (its base's run id) and logs
    the metric ``previous_timesteps`` (timesteps of the chain before it); every
    training logs ``total_timesteps`` (the chain-wide step it ended at).

Studies:
    the parent run has the params ``direction`` (maximize/minimize), ``objective``
    (the metric optimised) and ``space.<name>`` (the search space, one per searched
    hyper-parameter); each trial is a child run (MLflow's ``mlflow.parentRunId``) with
    the tags ``trial_number``, ``trial_state`` and ``study_name`` and the metric
    ``objective``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

# ------------------------------------------------------------------- chains
TAG_BASE_RUN = "base_model_run_id"
METRIC_PREVIOUS_TIMESTEPS = "previous_timesteps"
METRIC_TOTAL_TIMESTEPS = "total_timesteps"

# ------------------------------------------------------------ MLflow's own tags
TAG_MLFLOW_PARENT = "mlflow.parentRunId"
TAG_MLFLOW_RUN_NAME = "mlflow.runName"
#: Tags with these prefixes are bookkeeping, not shown as ``tags.*`` columns.
SYSTEM_TAG_PREFIXES = ("mlflow.", "trackbook.")
#: Last sign of life of a run, ms since the epoch (written every 30 s while training).
TAG_HEARTBEAT = "trackbook.heartbeat"
#: The id a run has in its local journal (``local-...``), so a replayed create finds the run.
TAG_LOCAL_ID = "trackbook.local_id"

# ------------------------------------------------------------------- seeds
#: Params whose name says "seed" (``seed``, ``random_seed``, ``env.seed``, ``seed_offset``)
#: tell repetitions of one configuration apart; seed statistics never group by them.
SEED_PARAM = re.compile(r"seed", re.IGNORECASE)
#: The seed param preferred when several are logged.
PARAM_SEED = "seed"

# ------------------------------------------------------------ what a training is
TAG_ALGORITHM = "algorithm"
PARAM_ALGORITHM = "algorithm"
#: Artifact paths the SB3 callback writes and ``continue_training`` reads back.
MODEL_ARTIFACT = "model/model.zip"
MODEL_DIR = "model"
#: The file a saved model is, in MODEL_DIR and BEST_MODEL_DIR.
MODEL_FILE = "model.zip"
BEST_MODEL_DIR = "best_model"
CHECKPOINT_DIR = "checkpoints"
#: A checkpoint's file in CHECKPOINT_DIR (``step``: the chain-wide step it was saved at).
CHECKPOINT_FILE = "model_{step}_steps.zip"
#: Files every SB3 training run carries beside its models.
ENVIRONMENT_ARTIFACT = "environment.json"
CONFIG_ARTIFACT = "config.yaml"
PARAM_POLICY = "policy"
PARAM_ENV_ID = "env_id"

# ------------------------------------------------------ what an SB3 training logs
#: Each finished episode (from a ``Monitor``-wrapped env), or their mean over ``log_interval`` steps.
METRIC_EPISODE_REWARD = "rollout/episode_reward"
METRIC_EPISODE_LENGTH = "rollout/episode_length"
#: Periodic evaluation of the policy on its own environment.
METRIC_EVAL_MEAN_REWARD = "eval/mean_reward"
METRIC_EVAL_STD_REWARD = "eval/std_reward"
METRIC_EVAL_MEAN_EP_LENGTH = "eval/mean_ep_length"
METRIC_EVAL_BEST_MEAN_REWARD = "eval/best_mean_reward"

# ------------------------------------------------------------------- studies
TAG_TRIAL_NUMBER = "trial_number"
TAG_TRIAL_STATE = "trial_state"
TAG_STUDY_NAME = "study_name"
TAG_TRIAL_ERROR = "error"
METRIC_OBJECTIVE = "objective"
PARAM_DIRECTION = "direction"
PARAM_OBJECTIVE = "objective"
#: ``space.<name>`` params of a study's parent run name the searched hyper-parameters.
PARAM_SPACE_PREFIX = "space."
MAXIMIZE, MINIMIZE = "maximize", "minimize"
DIRECTIONS = (MAXIMIZE, MINIMIZE)

#: What ``optuna_integration.MLflowCallback`` writes on each trial run: tags with the
#: trial's number, its state (once finished) and the study's direction (upper case).
OPTUNA_TAG_NUMBER = "number"
OPTUNA_TAG_STATE = "state"
OPTUNA_TAG_DIRECTION = "direction"

#: Trial states, in Optuna's names.
COMPLETE = "COMPLETE"
PRUNED = "PRUNED"
FAIL = "FAIL"
TRIAL_RUNNING = "RUNNING"
WAITING = "WAITING"
TRIAL_STATES = (COMPLETE, PRUNED, FAIL, TRIAL_RUNNING, WAITING)

# ------------------------------------------------- MLflow's concepts in an Aim run
AIM_PARAMS_KEY = "hparams"
AIM_TAGS_KEY = "tags"
#: ``run["trackbook"]``: a dict with the keys below.
AIM_TRACKBOOK_KEY = "trackbook"
AIM_STATUS = "status"
AIM_PARENT_RUN_ID = "parent_run_id"
AIM_HEARTBEAT = "heartbeat"
AIM_END_MS = "end_ms"
AIM_LOCAL_ID = "local_id"
#: Top-level run keys that are not params: Aim's own (``__system_params``), and the
#: training state ``aim.sb3.AimCallback`` copies from an SB3 model with its
#: hyper-parameters (it sets every attribute of the model as ``run[key]``); they differ
#: from run to run without being a choice anyone made.
AIM_NOT_PARAMS = ("__system_params", "start_time", "num_timesteps", "ep_info_buffer", "ep_success_buffer")


class OpKind(StrEnum):
    """The kinds of write a tracker queues and a backend delivers, in order."""

    CREATE = "create"
    PARAMS = "params"
    TAGS = "tags"
    METRICS = "metrics"
    ARTIFACT = "artifact"
    HEARTBEAT = "heartbeat"
    TERMINATE = "terminate"


# ------------------------------------------------------------ what "better" means
#: Metric names that read as lower-is-better unless the caller says otherwise.
LOWER_IS_BETTER = re.compile(r"loss|error|mse|mae|rmse|regret|perplexity|drawdown|latency", re.IGNORECASE)
MAX, MIN = "max", "min"


def metric_goal(metric: str, goals: Mapping[str, str] | None = None) -> str:
    """``"max"`` or ``"min"`` for ``metric``: from ``goals`` (``{metric: "min"}``), else
    ``"min"`` for loss/error-like names, else ``"max"``. The one rule for "better"
    (comparisons, chain links, study directions, seed statistics).

    Raises:
        ValueError: ``goals`` gives something other than "max" or "min".
    """
    goal = (goals or {}).get(metric) or (MIN if LOWER_IS_BETTER.search(metric) else MAX)
    if goal not in (MAX, MIN):
        raise ValueError(f"goals[{metric!r}]={goal!r}: use 'max' or 'min'.")
    return goal


# ------------------------------------------------------------ the reward metric
#: Where a run's reward lives, best first: trackbook's evaluation, the trading stack's
#: evaluation, SB3's rollout mean, then plain names other scripts log.
REWARD_METRICS = (
    "eval/mean_reward",
    "evaluation/mean_reward",
    "rollout/ep_rew_mean",
    "eval/reward",
    "mean_reward",
    "reward",
    "episode_reward_mean",
)


def reward_metric(names, default: str | None = None) -> str | None:
    """The reward metric among ``names`` (metric names a run or a history has): the first
    of :data:`REWARD_METRICS` present, else ``default``. The one rule for every default
    reward metric (reports, panels, chain and comparison helpers).

    Example:
        >>> reward_metric(["train/loss", "evaluation/mean_reward"])
        'evaluation/mean_reward'

    Args:
        names: metric names; ``metrics.``-prefixed run columns are read as the bare names.
        default: what to answer when none of them is a reward.
    """
    present = {str(n).removeprefix("metrics.") for n in names}
    return next((m for m in REWARD_METRICS if m in present), default)
