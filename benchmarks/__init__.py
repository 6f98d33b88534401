"""Benchmarks: speed against limits measured in the same run."""
