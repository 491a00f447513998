"""Chains, studies and comparisons: questions asked of a store, answered as DataFrames."""
