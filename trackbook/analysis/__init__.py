"""Questions asked of a store, answered as DataFrames: chains, studies, comparisons.

Each is a function that takes a :class:`~trackbook.store.Store` and uses only its public
reads (``runs``, ``lookup``, ``history``):

Example:
    >>> chain = tb.chain(store, final_run_id)            # doctest: +SKIP
    >>> tree = tb.chain_tree(store, "ppo-cartpole")      # doctest: +SKIP
    >>> study = tb.study(store, parent_run_id)           # doctest: +SKIP
    >>> table = tb.study_list(store, "hpo-cartpole")     # doctest: +SKIP
    >>> tb.compare(store, run_ids, ["eval/mean_reward"])  # doctest: +SKIP
"""

from trackbook.analysis.chains import Chain, chain, chain_tree
from trackbook.analysis.compare import compare
from trackbook.analysis.studies import Study, study, study_list

__all__ = ["Chain", "Study", "chain", "chain_tree", "compare", "study", "study_list"]
