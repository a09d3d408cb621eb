#!/bin/sh
# The kernels on at::parallel_for (BEFORE: a venv with commit 41425b9 installed) against those on
# ppt::parallel_for (AFTER), interleaved, two rounds at 2 threads; one JSON line per run.
for round in 1 2; do
  "$BEFORE/bin/python" compare_builds.py 2 at::parallel_for
  "$AFTER/bin/python" compare_builds.py 2 ppt::parallel_for
done
