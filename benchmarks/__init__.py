"""Throughput benchmarks: each figure is measured next to its baseline, in the same process."""
