"""Benchmarks: each ``benchmarks/<name>.py`` prints a table and writes JSON to
``benchmarks/out/<name>.json``; run ``python -m benchmarks <name>|all [--quick]``."""
