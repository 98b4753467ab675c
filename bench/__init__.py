"""Benchmarks: scripts that serve the real app and print ratios measured in one run."""
