"""Benchmarks (not tests): run the scripts directly; see docs/benchmarks.md."""
