"""Questions asked of a store, answered as DataFrames: chains, studies, comparisons,
statistics across seeds.

Each is a function that takes a :class:`~trackbook.store.Store` and uses only its public
reads (``runs``, ``lookup``, ``history``), or tidy frames those reads return:

Example:
    >>> chain = tb.chain(store, final_run_id)            # doctest: +SKIP
    >>> tree = tb.chain_tree(store, "ppo-cartpole")      # doctest: +SKIP
    >>> study = tb.study(store, parent_run_id)           # doctest: +SKIP
    >>> table = tb.study_list(store, "hpo-cartpole")     # doctest: +SKIP
    >>> tb.compare(store, run_ids, ["eval/mean_reward"])  # doctest: +SKIP
    >>> tb.across_seeds(store, runs, "eval/mean_reward").intervals()  # doctest: +SKIP
"""

from trackbook.analysis.chains import Chain, chain, chain_tree
from trackbook.analysis.compare import compare
from trackbook.analysis.seeds import (
    AcrossSeeds,
    SeedGroups,
    across_seeds,
    performance_profiles,
    probability_of_improvement,
    score_intervals,
    seed_curves,
    seed_groups,
    seed_scores,
)
from trackbook.analysis.studies import Study, study, study_list

__all__ = [
    "AcrossSeeds",
    "Chain",
    "SeedGroups",
    "Study",
    "across_seeds",
    "chain",
    "chain_tree",
    "compare",
    "performance_profiles",
    "probability_of_improvement",
    "score_intervals",
    "seed_curves",
    "seed_groups",
    "seed_scores",
    "study",
    "study_list",
]
