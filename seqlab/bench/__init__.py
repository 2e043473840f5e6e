"""Benchmarks: each prints its figures next to a baseline measured in the same process, and the ratio."""
