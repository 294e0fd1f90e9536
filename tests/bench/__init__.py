"""Benchmarks run by ``make bench``; they print ratios measured in one run."""
