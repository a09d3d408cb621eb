"""The emulation build (ppt.testing.emulated_cuda): switching, launch counts, thread order, and that
the suite launched every CUDA kernel defined in csrc/. (The launch-limit checks are exercised by the
regression tests of the bugs they found: tests/ops/test_point_ops.py, tests/ops/test_segment_norm.py.)"""

import importlib
import re
from pathlib import Path

import pytest
import torch

from ppt import testing
from ppt.ops import knn

REPO = Path(__file__).resolve().parents[1]

needs_emulation = pytest.mark.skipif(
    not testing.emulation_available(), reason="ppt was built without the CUDA emulation module (PPT_EMULATION=ON)"
)


def defined_kernels() -> set[str]:
    """Names of the __global__ functions in csrc/**/*.cu."""
    names = set()
    for source in sorted((REPO / "csrc").glob("*/*.cu")):
        text = re.sub(r"__launch_bounds__\s*\([^)]*\)", "", source.read_text())
        names.update(re.findall(r"__global__\s+void\s+(\w+)\s*\(", text))
    return names


def test_missing_emulation_module_says_how_to_build_it(monkeypatch):
    real_import = importlib.import_module

    def import_without_emulation(name, *args):
        if name == "ppt._C_emulated":
            raise ImportError("No module named 'ppt._C_emulated'")
        return real_import(name, *args)

    monkeypatch.setattr(testing, "_module", None)
    monkeypatch.delenv(testing.LIBRARY_ENV, raising=False)
    monkeypatch.setattr(importlib, "import_module", import_without_emulation)
    with pytest.raises(RuntimeError, match=r"PPT_EMULATION=ON pip install --no-build-isolation -e \."):
        with testing.emulated_cuda():
            pass


def test_emulation_library_path_must_exist(monkeypatch, tmp_path):
    monkeypatch.setattr(testing, "_module", None)
    monkeypatch.setenv(testing.LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(RuntimeError, match="PPT_EMULATION_LIBRARY=.*missing.so.* is not a file"):
        with testing.emulated_cuda():
            pass


def test_thread_order_variable_is_checked(monkeypatch):
    monkeypatch.setenv(testing.THREAD_ORDER_ENV, "backwards")
    with pytest.raises(ValueError, match="PPT_EMULATED_THREAD_ORDER must be 'forward' or 'reverse', got 'backwards'"):
        with testing.emulated_cuda():
            pass


@needs_emulation
def test_ops_run_the_cuda_kernels_only_inside_the_context():
    query, points = torch.rand(2, 40, 3), torch.rand(2, 90, 3)
    assert not testing.emulation_active() and not testing.runs_cuda_kernels("cpu")
    with testing.emulated_cuda() as outer:
        assert testing.emulation_active() and testing.runs_cuda_kernels("cpu")
        with testing.emulated_cuda() as inner:
            knn(query, points, 4)
        knn(query, points, 4)
        assert inner.launches == {"knn_kernel": 1}
    assert not testing.emulation_active()
    knn(query, points, 4)  # the CPU kernel again
    assert outer.launches == {"knn_kernel": 2}


@needs_emulation
def test_backward_ops_run_emulated_too():
    query = torch.rand(1, 30, 3, dtype=torch.float64, requires_grad=True)
    points = torch.rand(1, 50, 3, dtype=torch.float64, requires_grad=True)
    with testing.emulated_cuda() as emulator:
        dist, _ = knn(query, points, 5)
        dist.sum().backward()
    assert emulator.launches == {"knn_kernel": 1, "knn_backward_kernel": 1}


@needs_emulation
def test_reverse_thread_order_reverses_a_blocks_threads():
    # knn_backward adds each query's term to its neighbour's gradient with atomics, one thread per
    # query in one block: the float32 sum of -1, -1e8, +1e8 depends on the threads' order.
    points = torch.zeros(1, 1, 3, requires_grad=True)
    query = torch.tensor([[[0.5, 0.0, 0.0]] * 3])
    grad_dist2 = torch.tensor([[[1.0], [1e8], [-1e8]]])
    sums = {}
    for reverse in (False, True):
        with testing.emulated_cuda(reverse_threads=reverse) as emulator:
            assert emulator.reverse_threads == reverse
            dist, _ = knn(query, points, 1)
            (sums[reverse],) = torch.autograd.grad(dist, points, grad_dist2)
    assert sums[False][0, 0, 0].item() == 0.0  # (-1 + -1e8) + 1e8: the -1 is lost
    assert sums[True][0, 0, 0].item() == -1.0  # (1e8 + -1e8) + -1


@needs_emulation
def test_every_cuda_kernel_launched_emulated(request):
    """Runs last (tests/conftest.py orders it): every __global__ kernel in csrc/ ran in this session."""
    if not request.config.getoption("emulation_coverage"):
        pytest.skip("the whole suite was not collected (the kernel coverage needs every emulated test)")
    defined, launched = defined_kernels(), set(testing.launches_since_load())
    assert len(defined) >= 38
    never = sorted(defined - launched)
    assert not never, f"CUDA kernels no emulated test launched: {never}"
    assert launched <= defined, "launch counts name kernels that csrc/ does not define"
    print(f"\nemulated kernel coverage: {len(defined & launched)}/{len(defined)} kernels launched")
