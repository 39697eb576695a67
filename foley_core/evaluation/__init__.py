"""Benchmarks with ground truth: the synthetic Foley benchmark (`python -m foley_core.evaluation`)."""
