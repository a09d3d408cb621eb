"""`ppt bench` end to end on a small suite defined here: table, results.json, plots, --profile,
--compare, failures, device errors, the default output folder and an empty suite."""

import json
import sys
import types

import pytest
import torch

import ppt
from ppt.bench import cli as bench_cli
from ppt.bench.harness import Baseline, Case, Unavailable
from ppt.cli import main as cli_main


def _close(got, expected):
    torch.testing.assert_close(got, expected)


def _small_suite(wrong: bool = False) -> types.ModuleType:
    suite = types.ModuleType("small_bench_suite")
    suite.SUITE = "small"
    suite.SUPPORTED_DTYPES = ("float32",)
    suite.default_dtypes = lambda device: ("float32",)

    def cases(device, dtype, quick):
        x = torch.randn(96, 96, device=device, dtype=dtype)
        yield Case(name="matmul 96", run=lambda: x @ x + (1.0 if wrong else 0.0),
                   baselines=[Baseline("torch.mm", lambda: torch.mm(x, x), check=_close),
                              Unavailable("otherlib", "not installed",
                                          'pip install --no-build-isolation -e ".[bench]"')],
                   flops=2 * 96**3, items=(96, "rows"), warmup=1, repeats=3)
        yield Case(name="copy 1M", run=lambda: x.new_empty(2**20).copy_(torch.ones(2**20, device=device)),
                   check=lambda got: _close(got, torch.ones(2**20, device=device)),
                   baselines=[Baseline("clone", lambda: torch.ones(2**20, device=device).clone(), check=_close)],
                   bytes=2 * 4 * 2**20, warmup=1, repeats=3)

    suite.cases = cases
    return suite


@pytest.fixture
def small_suite(monkeypatch):
    def install(wrong=False):
        monkeypatch.setitem(sys.modules, "small_bench_suite", _small_suite(wrong))
        monkeypatch.setitem(bench_cli.SUITES, "small", "small_bench_suite")
    return install


def _run(argv) -> int:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["bench", *argv])
    return exit_.value.code


def test_run_prints_the_table_and_writes_results_and_plots(tmp_path, small_suite, capsys):
    small_suite()
    assert _run(["small", "--quick", "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "ceilings: GEMM float32" in out and "GB/s" in out
    assert "matmul 96" in out and "torch.mm" in out and "of GEMM" in out and "of copy" in out
    assert 'skipped baseline otherlib: not installed; install: pip install --no-build-isolation -e ".[bench]"' in out
    payload = json.loads((tmp_path / "run" / "results.json").read_text())
    assert payload["command"] == f"ppt bench small --device cpu --quick --out {tmp_path / 'run'}"
    assert payload["machine"]["ppt"]["version"] == ppt.__version__
    assert [r["case"] for r in payload["results"]] == ["matmul 96", "copy 1M"]
    # each case's fraction of the ceiling uses the GEMM or copy timed in its own rounds
    assert set(payload["results"][0]["ceilings"]) == {"gemm_gflops"} and payload["results"][0]["ceilings"]["gemm_gflops"] > 0
    assert set(payload["results"][1]["ceilings"]) == {"copy_gbps"} and payload["results"][1]["ceilings"]["copy_gbps"] > 0
    assert payload["suites"]["small"] == {"dtypes": ["float32"], "cases": 2, "plot": "small.png"}
    assert (tmp_path / "run" / "small.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_case_filter_runs_the_matching_cases_only(tmp_path, small_suite, capsys):
    small_suite()
    assert _run(["small", "--quick", "--device", "cpu", "--case", "MATMUL", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [r["case"] for r in payload["results"]] == ["matmul 96"]
    assert payload["command"].endswith(f"--case MATMUL --out {tmp_path}")


def test_profile_and_compare(tmp_path, small_suite, capsys):
    small_suite()
    assert _run(["small", "--quick", "--device", "cpu", "--out", str(tmp_path / "before")]) == 0
    capsys.readouterr()
    assert _run(["small", "--quick", "--device", "cpu", "--out", str(tmp_path / "after"), "--profile",
                 "--compare", str(tmp_path / "before" / "results.json")]) == 0
    out = capsys.readouterr().out
    assert "profile of matmul 96 (float32):" in out and "ms/call" in out
    traces = sorted(p.name for p in (tmp_path / "after" / "traces" / "small").iterdir())
    assert traces == ["copy-1M-float32.json", "matmul-96-float32.json"]
    assert "traceEvents" in json.loads((tmp_path / "after" / "traces" / "small" / traces[0]).read_text())
    assert "== compared with" in out and "2 case(s) in both runs" in out


def test_a_wrong_kernel_fails_the_run(tmp_path, small_suite, capsys):
    small_suite(wrong=True)
    assert _run(["small", "--quick", "--device", "cpu", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED matmul 96 (float32): CorrectnessError: matmul 96: ppt's result disagrees with torch.mm" in out
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [r["status"] for r in payload["results"]] == ["failed", "ok"]


def test_results_default_to_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    empty = types.ModuleType("empty_bench_suite")
    empty.SUITE, empty.SUPPORTED_DTYPES, empty.PENDING = "empty", ("float32",), "Its cases arrive later."
    empty.default_dtypes = lambda device: ("float32",)
    empty.cases = lambda device, dtype, quick: iter(())
    monkeypatch.setitem(sys.modules, "empty_bench_suite", empty)
    monkeypatch.setitem(bench_cli.SUITES, "empty", "empty_bench_suite")
    assert _run(["empty", "--quick", "--device", "cpu"]) == 0
    assert "empty: no cases yet. Its cases arrive later." in capsys.readouterr().out
    payload = json.loads((tmp_path / "ppt-bench-results" / "results.json").read_text())
    assert payload["suites"]["empty"]["cases"] == 0 and payload["results"] == []


def test_unusable_devices_end_in_one_line():
    message = r"^ppt bench: --device tpu is not supported: ppt's kernels run on cpu or cuda$"
    with pytest.raises(SystemExit, match=message):
        cli_main(["bench", "--device", "tpu"])
    if ppt.build_info()["cuda"] and torch.cuda.is_available():
        return
    expected = "has no CUDA kernels" if not ppt.build_info()["cuda"] else "torch sees no GPU"
    with pytest.raises(SystemExit, match=expected):
        cli_main(["bench", "--device", "cuda"])


def test_unknown_suite_and_bad_compare_file(tmp_path):
    with pytest.raises(SystemExit, match="unknown benchmark suite"):
        cli_main(["bench", "no_such_suite"])
    with pytest.raises(SystemExit, match="does not exist"):
        cli_main(["bench", "models", "--compare", str(tmp_path / "missing.json")])


def test_a_suite_for_other_devices_is_skipped(tmp_path, monkeypatch, capsys):
    gpu_only = types.ModuleType("gpu_bench_suite")
    gpu_only.SUITE, gpu_only.SUPPORTED_DTYPES, gpu_only.DEVICES = "gpu_only", ("float32",), ("cuda",)
    gpu_only.default_dtypes = lambda device: ("float32",)
    gpu_only.cases = lambda device, dtype, quick: pytest.fail("a skipped suite must not build its cases")
    monkeypatch.setitem(sys.modules, "gpu_bench_suite", gpu_only)
    monkeypatch.setitem(bench_cli.SUITES, "gpu_only", "gpu_bench_suite")
    assert _run(["gpu_only", "--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert "gpu_only: skipped, it runs on cuda only" in capsys.readouterr().out


def test_unsupported_dtype_is_reported(tmp_path, capsys):
    assert _run(["point_ops", "--device", "cpu", "--dtype", "bfloat16", "--out", str(tmp_path)]) == 0
    assert "point_ops: skipped, it runs in float32 only" in capsys.readouterr().out
