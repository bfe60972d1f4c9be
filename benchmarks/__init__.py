"""Benchmark suite of the Smooth-InfoNCE loss (see benchmarks/README.md). Not part of the default test run."""
