"""Build metadata, the ppt command and the benchmark harness."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

import ppt
from ppt.cli import main as cli_main

POINT_OPS = {"voxelize", "farthest_point_sample", "knn", "knn_backward"}


def test_build_info_describes_the_build():
    info = ppt.build_info()
    assert info["version"] == ppt.__version__
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert isinstance(info["cuda"], bool) and isinstance(info["openmp"], bool)
    assert info["cuda"] == bool(info["cuda_archs"])
    assert info["cpu_kernels"] in {"avx512", "avx2", "baseline"}
    assert POINT_OPS <= set(info["ops"])
    for name in info["ops"]:
        assert hasattr(torch.ops.ppt, name)


def test_ppt_info_prints_a_table(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["info"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "CUDA kernels" in out and "voxelize" in out and ppt.__version__ in out


def test_cpu_kernel_variant_can_be_capped():
    env = {**os.environ, "PPT_CPU_ISA": "baseline"}
    result = subprocess.run([sys.executable, "-m", "ppt", "info"], capture_output=True, text=True, check=True, env=env)
    assert re.search(r"CPU kernels\s+baseline", result.stdout)


def test_python_dash_m_ppt_runs():
    result = subprocess.run([sys.executable, "-m", "ppt", "info"], capture_output=True, text=True, check=True)
    assert "built against torch" in result.stdout


def test_bench_rejects_unknown_suite():
    with pytest.raises(SystemExit, match="unknown benchmark suite"):
        cli_main(["bench", "no_such_suite"])


def test_bench_harness_checks_times_and_writes_json(tmp_path):
    from bench.harness import compare, format_row, write_results

    x = torch.randn(256, 256)
    calls = []

    def checked(got, expected):
        calls.append(True)
        torch.testing.assert_close(got, expected)

    result = compare(suite="unit", case="mm", device=torch.device("cpu"), params={"n": 256},
                     candidate=lambda: x @ x, baseline=lambda: torch.mm(x, x), baseline_name="torch.mm",
                     check=checked, warmup=1, repeats=3, target_speedup=0.01)
    assert calls == [True]
    assert len(result.ppt_times_ms) == 3 and len(result.baseline_times_ms) == 3
    assert result.speedup == result.baseline_ms / result.ppt_ms
    assert "speedup" in format_row(result)
    payload = json.loads(write_results([result], tmp_path / "unit.json", torch.device("cpu")).read_text())
    assert payload["machine"]["torch"] == torch.__version__
    assert payload["results"][0]["case"] == "mm" and payload["results"][0]["meets_target"] is True


def test_bench_harness_refuses_wrong_results():
    from bench.harness import compare

    def strict(got, expected):
        torch.testing.assert_close(got, expected)

    with pytest.raises(AssertionError, match="not close"):
        compare(suite="unit", case="wrong", device=torch.device("cpu"), params={},
                candidate=lambda: torch.zeros(3), baseline=lambda: torch.ones(3), baseline_name="ones",
                check=strict)
