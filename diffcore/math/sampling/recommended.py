"""Recommended sampler and spacing per (schedule family, NFE budget). Placeholder until
benchmarks/frontier.py tune writes it."""

RECOMMENDED: dict = {}
