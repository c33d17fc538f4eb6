"""Benchmarks: per-stage cost and memory by training-set size, and anomalib side by side."""
