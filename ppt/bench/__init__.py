"""Benchmark suites of ppt: ``ppt bench`` (or ``python -m ppt.bench``) runs them; see docs/benchmarks.md.

Each suite module yields :class:`ppt.bench.harness.Case` objects; the harness checks, times and
reports them against the machine's ceilings.
"""
