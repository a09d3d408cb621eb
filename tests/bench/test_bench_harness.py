"""The benchmark harness and report: correctness gate, timing records, skips, table, JSON, --compare."""

import contextlib
import importlib.util
import json
import re

import pytest
import torch

from ppt.bench import raster, sparse_conv
from ppt.bench.harness import (Baseline, Case, CorrectnessError, Unavailable, failed_result, measure)
from ppt.bench.machine import Ceilings, machine_info
from ppt.bench.spconv_reference import spconv_or_reason
from ppt.bench.report import (SCHEMA, case_results, compare_with, derive, load_results, notes, table,
                              write_results)
from ppt.bench.summarize import render

CPU = torch.device("cpu")
CEILINGS = Ceilings(gemm_gflops={"float32": 100.0}, gemm_size=2048, copy_gbps=20.0, copy_bytes=2**27)


def _close(got, expected):
    torch.testing.assert_close(got, expected)


def _square_case(candidate, x=None, **overrides) -> Case:
    x = torch.randn(64, 64) if x is None else x
    fields = dict(name="square", run=lambda: candidate(x),
                  baselines=[Baseline("torch.mm", lambda: torch.mm(x, x), check=_close)], warmup=1, repeats=3)
    return Case(**(fields | overrides))


def test_gate_fails_a_wrong_kernel_before_timing():
    timed = []

    def wrong(x):
        timed.append(True)
        return x @ x + 1e-2

    with pytest.raises(CorrectnessError, match="square: ppt's result disagrees with torch.mm"):
        measure(_square_case(wrong), "unit", CPU)
    assert len(timed) == 1  # the gate ran it once; nothing was warmed up or timed


def test_gate_runs_the_case_own_check():
    def off_by_one(got):
        assert torch.equal(got, torch.zeros(3)), "expected zeros"

    case = Case(name="ones", run=lambda: torch.ones(3), check=off_by_one)
    with pytest.raises(CorrectnessError, match="ones: ppt's result is wrong: expected zeros"):
        measure(case, "unit", CPU)


def test_a_case_without_any_check_is_refused():
    case = Case(name="unchecked", run=lambda: torch.ones(3), baselines=[Baseline("timing only", lambda: 1)])
    with pytest.raises(ValueError, match="has no correctness check"):
        measure(case, "unit", CPU)


def test_measure_records_timings_speedups_and_skips():
    x = torch.randn(64, 64)
    slow_calls = []

    def slow_baseline():
        slow_calls.append(True)
        return torch.mm(x, x)

    def broken():
        raise RuntimeError("no kernel for this dtype")

    case = _square_case(lambda x: x @ x, x, repeats=4, baselines=[
        Baseline("torch.mm", lambda: torch.mm(x, x), check=_close, target=0.01),
        Baseline("capped", slow_baseline, repeats=1),
        Baseline("broken", broken),
        Unavailable("somelib", "not installed", 'pip install --no-build-isolation -e ".[bench]"'),
    ])
    result = measure(case, "unit", CPU)
    assert result.status == "ok" and len(result.ppt.times_ms) == 4 and result.ppt.peak_bytes is None
    mm, capped, broken_result, missing = result.baselines
    assert mm.status == "ok" and mm.checked and len(mm.timing.times_ms) == 4
    assert mm.speedup == pytest.approx(mm.timing.median_ms / result.ppt.median_ms)
    assert mm.meets_target is True
    assert len(capped.timing.times_ms) == 1 and not capped.checked
    assert len(slow_calls) == 1 + 1 + 1  # gate, warm-up, one timed round
    assert broken_result.status == "skipped" and "RuntimeError: no kernel for this dtype" in broken_result.reason
    assert (missing.status, missing.reason) == ("skipped", "not installed")
    lines = notes([result])
    assert 'skipped baseline somelib: not installed; install: pip install --no-build-isolation -e ".[bench]"' in lines
    assert any(line.startswith("skipped baseline broken: failed to run") for line in lines)


def test_missing_baselines_are_reported_with_their_install_hint(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "spconv" else find_spec(name, *a))
    spconv, (reason, hint) = spconv_or_reason(CPU)
    assert spconv is None and reason == "not installed"
    assert '--no-build-isolation' in hint and '.[bench]' in hint
    baselines = sparse_conv._spconv_baselines(None, (reason, hint), CPU, 2.0, sparse_conv._check_same_sites(1e-3))
    assert baselines and all(isinstance(b, Unavailable) and b.hint == hint for b in baselines)
    gsplat = raster._gsplat(CPU, lambda: None)
    assert isinstance(gsplat, Unavailable) and gsplat.reason == "runs on CUDA only"


def test_derived_figures_use_the_ceilings():
    flop_case = _square_case(lambda x: x @ x, flops=2 * 64**3, items=(64, "rows"), name="gemm rows")
    byte_case = _square_case(lambda x: x @ x, bytes=3 * 64 * 64 * 4, name="copy rows", ceiling_target=0.5)
    results = [measure(flop_case, "unit", CPU), measure(byte_case, "unit", CPU)]
    for r in results:
        derive(r, CEILINGS)
    seconds = results[0].ppt.median_ms / 1e3
    assert results[0].derived["gflops"] == pytest.approx(2 * 64**3 / seconds / 1e9)
    assert results[0].derived["gemm_fraction"] == pytest.approx(results[0].derived["gflops"] / 100.0)
    assert results[0].derived["throughput_per_s"] == pytest.approx(64 / seconds)
    assert results[1].derived["copy_fraction"] == pytest.approx(results[1].derived["gbps"] / 20.0)
    assert results[1].derived["meets_ceiling_target"] == (results[1].derived["copy_fraction"] >= 0.5)
    text = table(results)
    assert "of GEMM" in text and "of copy" in text and "0.00x" not in text


def test_ceilings_are_timed_in_the_case_rounds():
    # The run's ceilings were measured while other jobs held the cores (1 GFLOP/s, 0.5 GB/s); the
    # case's own probes see what the machine gave during its rounds, and the fractions use those.
    rates = iter([40.0, 90.0, 60.0, 80.0])
    probes = {"gemm_gflops": lambda: next(rates), "copy_gbps": lambda: 25.0}
    loaded = Ceilings(gemm_gflops={"float32": 1.0}, gemm_size=2048, copy_gbps=0.5, copy_bytes=2**27)
    case = _square_case(lambda x: x @ x, flops=2 * 64**3, bytes=3 * 64 * 64 * 4, warmup=1, repeats=3)
    result = measure(case, "unit", CPU, probes)
    assert result.ceilings == {"gemm_gflops": 90.0, "copy_gbps": 25.0}  # warm-up call 40, rounds 90, 60, 80
    derive(result, loaded)
    assert result.derived["gemm_fraction"] == pytest.approx(result.derived["gflops"] / 90.0)
    assert result.derived["copy_fraction"] == pytest.approx(result.derived["gbps"] / 25.0)
    # a result without probes (or from an older results file) falls back to the run's ceilings
    plain = measure(case, "unit", CPU)
    assert plain.ceilings == {}
    derive(plain, loaded)
    assert plain.derived["gemm_fraction"] == pytest.approx(plain.derived["gflops"] / 1.0)


def test_a_case_runs_under_its_condition():
    events = []

    @contextlib.contextmanager
    def condition():
        events.append("enter")
        observed = {"load": "busy"}
        yield observed
        observed["seen"] = len(events)
        events.append("exit")

    def run():
        events.append("run")
        return torch.ones(3)

    case = Case(name="ones", run=run, check=lambda got: None, repeats=2, warmup=1, condition=condition,
                params={"size": 3})
    result = measure(case, "unit", CPU)
    assert events[0] == "enter" and events[-1] == "exit" and set(events[1:-1]) == {"run"}
    assert result.params == {"size": 3, "load": "busy", "seen": len(events) - 1}


def test_table_columns_align_with_long_baseline_names():
    x = torch.randn(8, 8)
    long_name = "spconv 2 threads (racy, timing only) with a much longer name"
    case = _square_case(lambda x: x @ x, x, baselines=[
        Baseline("mm", lambda: x @ x, check=_close), Baseline(long_name, lambda: x @ x),
        Unavailable("gsplat", "runs on CUDA only")])
    result = measure(case, "unit", CPU)
    derive(result, CEILINGS)
    lines = table([result, failed_result(case, "unit", CPU, CorrectnessError("bad"))]).splitlines()
    header = lines[0]
    start = header.index("baseline ms")
    end = start + len("baseline ms")
    assert lines[1][start:end] == "-" * len("baseline ms")
    assert re.fullmatch(r" *\d+\.\d+", lines[2][start:end]) and re.fullmatch(r" *\d+\.\d+", lines[3][start:end])
    assert lines[4][start:end].strip() == "skipped"
    assert lines[3][header.index("baseline"):].startswith(long_name)
    assert "FAILED" in lines[5]


def _write(tmp_path, name, results):
    return write_results(tmp_path / name, results=results, machine=machine_info(CPU), ceilings=CEILINGS,
                         command="ppt bench unit", device="cpu", quick=True, suites={"unit": {"cases": len(results)}})


def test_results_json_schema(tmp_path):
    result = measure(_square_case(lambda x: x @ x, flops=2 * 64**3), "unit", CPU)
    derive(result, CEILINGS)
    path = _write(tmp_path, "results.json", [result])
    payload = load_results(path)
    assert payload["schema"] == SCHEMA
    assert {"date", "command", "device", "quick", "machine", "ceilings", "suites", "results"} <= payload.keys()
    assert payload["ceilings"]["gemm_gflops"] == {"float32": 100.0}
    row = payload["results"][0]
    expected_keys = {"suite", "case", "device", "dtype", "params", "status", "ppt", "baselines", "flops", "derived"}
    assert expected_keys <= row.keys()
    assert set(row["ppt"]) == {"median_ms", "spread", "times_ms", "peak_bytes"}
    assert row["baselines"][0]["name"] == "torch.mm" and row["baselines"][0]["speedup"] > 0
    assert row["derived"]["gemm_fraction"] > 0


def test_load_results_rejects_other_files(tmp_path):
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"date": "2026-01-01", "results": []}))
    with pytest.raises(SystemExit, match="not a ppt bench results file"):
        load_results(legacy)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit, match="is not JSON"):
        load_results(tmp_path / "broken.json")


def test_compare_reports_the_change_per_case(tmp_path):
    result = measure(_square_case(lambda x: x @ x), "unit", CPU)
    payload = json.loads(_write(tmp_path, "old.json", [result]).read_text())
    payload["results"][0]["ppt"]["median_ms"] = result.ppt.median_ms / 2  # it used to take half as long
    text = compare_with(payload, [result], "old.json")
    row = next(line for line in text.splitlines() if line.startswith("unit"))
    assert "+100.0%" in row and row.rstrip().endswith("slower")
    assert "1 case(s) in both runs: 1 slower and 0 faster" in text


def test_a_results_file_redraws_as_the_same_table_and_plots(tmp_path):
    x = torch.randn(64, 64)
    result = measure(_square_case(lambda x: x @ x, x, flops=2 * 64**3, baselines=[
        Baseline("torch.mm", lambda: torch.mm(x, x), check=_close), Unavailable("gsplat", "runs on CUDA only")]),
        "unit", CPU)
    derive(result, CEILINGS)
    path = _write(tmp_path, "results.json", [result])
    assert table(case_results(load_results(path))) == table([result])
    markdown = render(path, plots=tmp_path / "plots")
    assert "Command: `ppt bench unit`" in markdown and "| square |" in markdown
    assert "- skipped baseline gsplat: runs on CUDA only" in markdown
    assert (tmp_path / "plots" / "unit.png").is_file()
