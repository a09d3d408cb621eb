"""``ppt bench contention``: each op family timed at torch's thread count and at one thread while a
busy process, started and stopped by the case, holds a core."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppt.bench import contention
from ppt.bench.harness import Unavailable

LINUX_PROC = Path("/proc/self/stat").exists()


def _spinning_children() -> list[int]:
    """Our children running the busy loop (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"while True" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not LINUX_PROC, reason="reads the processes from Linux's /proc")
def test_busy_processes_take_a_core_while_the_block_runs_and_stop_after():
    with contention.busy_processes(2) as observed:
        assert len(_spinning_children()) == 2
        time.sleep(0.5)
    assert _spinning_children() == []
    assert observed["busy_processes"] == 2
    assert observed["load_average_1min"] >= 0
    assert observed["busy_cpu_per_second"] > 0.1  # they ran (how much depends on the machine's load)


def test_every_op_family_has_a_case():
    cases = list(contention.cases(torch.device("cpu"), torch.float32, quick=True))
    names = " | ".join(case.name for case in cases)
    for family in ("voxelize", "fps", "knn", "kernel map", "subm k3", "max pool", "segment BN", "rasterize"):
        assert family in names
    for case in cases:
        (baseline,) = case.baselines
        assert case.condition is not None and case.check is not None
        if torch.get_num_threads() > 1:
            assert baseline.name == "1 thread" and baseline.target == pytest.approx(1 / 1.2)
    assert list(contention.cases(torch.device("cuda"), torch.float32, quick=True)) == []


def test_one_thread_leaves_nothing_to_compare(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    case = next(contention.cases(torch.device("cpu"), torch.float32, quick=True))
    (baseline,) = case.baselines
    assert isinstance(baseline, Unavailable) and "nothing to compare" in baseline.reason


def test_cli_times_a_case_against_one_thread_under_a_busy_process(tmp_path):
    out = tmp_path / "run"
    process = subprocess.run([sys.executable, "-m", "ppt", "bench", "contention", "--quick", "--case", "knn",
                              "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr
    assert "knn B=32 M=128 N=2048 k=32" in process.stdout and "1 thread" in process.stdout
    payload = json.loads((out / "results.json").read_text())
    (row,) = payload["results"]
    assert row["suite"] == "contention" and row["status"] == "ok"
    assert row["params"]["busy_processes"] == 1 and "load_average_1min" in row["params"]
    assert len(row["ppt"]["times_ms"]) == 5
    if torch.get_num_threads() > 1:
        (baseline,) = row["baselines"]
        assert baseline["name"] == "1 thread" and baseline["status"] == "ok" and baseline["checked"]
        assert baseline["speedup"] == pytest.approx(baseline["timing"]["median_ms"] / row["ppt"]["median_ms"])
