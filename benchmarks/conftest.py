"""Benchmarks and ratio gates.

``pytest benchmarks`` runs the pytest-benchmark suites; ``pytest benchmarks -m
gate`` runs only the ratio gates that .ci/run enforces. A gate measures
mailscale and its reference in the same run (benchmarks/_ratio.py: interleaved
rounds, median of the per-round ratios) and asserts a floor on the ratio, never
an absolute time; docs/performance.md ("Ratio gates") gives each floor and how
it was chosen.
"""
