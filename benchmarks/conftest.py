"""Benchmarks and ratio gates.

``pytest benchmarks`` runs the pytest-benchmark suites; ``pytest benchmarks -m
gate`` runs only the ratio gates that .ci/run enforces. A gate measures
mailscale and its reference in the same run and asserts a generous floor on the
ratio, never an absolute time.
"""
