"""Benchmark suites of ppt (run as ``python -m bench.<suite>`` or ``ppt bench``)."""
