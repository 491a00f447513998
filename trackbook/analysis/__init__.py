"""Chains, studies, comparisons and statistics across seeds: questions asked of a store, answered as DataFrames."""

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

__all__ = [
    "AcrossSeeds",
    "SeedGroups",
    "across_seeds",
    "performance_profiles",
    "probability_of_improvement",
    "score_intervals",
    "seed_curves",
    "seed_groups",
    "seed_scores",
]
