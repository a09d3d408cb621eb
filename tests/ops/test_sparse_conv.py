"""Sparse convolution ops (sparse_kernel_map, sparse_conv) against the pure-PyTorch references."""

import pytest
import torch

from ppt.ops import _reference as ref
from ppt.ops import conv_output_shape, sparse_conv, sparse_kernel_map
from ppt.testing import runs_cuda_kernels

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 8e-2, torch.float32: 1e-4, torch.float64: 1e-10}

# name -> (kernel_size, stride, padding, dilation, submanifold)
LAYERS = {
    "subm_k3": (3, 1, 0, 1, True),
    "subm_k5": (5, 1, 0, 1, True),
    "subm_k3_dilated": (3, 1, 0, 2, True),
    "subm_k1x3x5": ((1, 3, 5), 1, 0, 1, True),
    "conv_k2s2": (2, 2, 0, 1, False),
    "conv_k3s2p1": (3, 2, 1, 1, False),
    "conv_k3s1": (3, 1, 0, 1, False),
    "conv_k3s1d2p2": (3, 1, 2, 2, False),
    "conv_k1x2x3_s2x1x2": ((1, 2, 3), (2, 1, 2), (0, 1, 1), 1, False),
}


def _triple(v):
    return [v] * 3 if isinstance(v, int) else list(v)


def _sites(case, device):
    """(indices (N, 4) int32, batch_size, spatial_shape) for a named case."""
    if case == "empty":
        return torch.empty(0, 4, dtype=torch.int32, device=device), 1, [5, 5, 5]
    if case == "single":
        return torch.tensor([[0, 2, 3, 1]], dtype=torch.int32, device=device), 1, [5, 6, 4]
    if case == "corner_sites":  # sites on the grid faces exercise the bounds of every offset
        corners = torch.tensor([[0, x, y, z] for x in (0, 6) for y in (0, 4) for z in (0, 5)], dtype=torch.int32)
        return corners.to(device), 1, [7, 5, 6]
    if case == "random_batched":
        coords = torch.cat([torch.randint(0, 3, (700, 1)), torch.randint(0, 9, (700, 3))], 1)
        indices = torch.unique(coords, dim=0).int()
        return indices[torch.randperm(len(indices))].to(device), 3, [9, 10, 11]
    if case == "surface":  # a plane, like a scanned floor: many full neighbourhoods
        xs, ys = torch.meshgrid(torch.arange(12), torch.arange(10), indexing="ij")
        plane = torch.stack([torch.zeros_like(xs), xs, ys, (xs + ys) // 4], -1).reshape(-1, 4)
        return plane.int().to(device), 1, [12, 10, 8]
    raise ValueError(case)


SITE_CASES = ["empty", "single", "corner_sites", "random_batched", "surface"]


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("case", SITE_CASES)
def test_kernel_map_matches_reference(case, layer, device):
    kernel, stride, padding, dilation, submanifold = LAYERS[layer]
    indices, batch_size, shape = _sites(case, device)
    got = sparse_kernel_map(indices, batch_size, shape, kernel, stride, padding, dilation, submanifold)
    want = ref.sparse_kernel_map(indices, batch_size, shape, _triple(kernel), _triple(stride), _triple(padding),
                                 _triple(dilation), submanifold)
    names = ("out_indices", "pairs", "pair_offsets")
    for name, a, b in zip(names, got, want):
        assert a.device == indices.device, name
        assert a.dtype == (torch.int64 if name == "pair_offsets" else torch.int32), name
        torch.testing.assert_close(a, b.to(a.dtype), rtol=0, atol=0, msg=name)


def test_kernel_map_hand_checked():
    # Two neighbouring sites along z; SubM k3: offset (1, 1, 2) (k = 14) pairs output 0 with input 1,
    # offset (1, 1, 0) (k = 12) pairs output 1 with input 0, centre (k = 13) pairs each with itself.
    indices = torch.tensor([[0, 5, 5, 5], [0, 5, 5, 6]], dtype=torch.int32)
    out, pairs, offsets = sparse_kernel_map(indices, 1, [10, 10, 10], 3, submanifold=True)
    assert torch.equal(out, indices)
    counts = offsets.diff()
    assert counts.nonzero().squeeze(1).tolist() == [12, 13, 14]
    assert pairs[:, offsets[12]:offsets[13]].tolist() == [[0], [1]]
    assert pairs[:, offsets[13]:offsets[14]].tolist() == [[0, 1], [0, 1]]
    assert pairs[:, offsets[14]:offsets[15]].tolist() == [[1], [0]]
    # k3 s2 p1 on a 10^3 grid: output grid 5^3; site 9 reaches o = (9 + 1 - 2) / 2 = 4 only.
    out, pairs, offsets = sparse_kernel_map(torch.tensor([[0, 9, 9, 9]], dtype=torch.int32), 1, [10, 10, 10], 3, 2, 1)
    assert out.tolist() == [[0, 4, 4, 4]] and offsets.diff().nonzero().squeeze(1).tolist() == [26]


def _features(n, channels, dtype, device, non_contiguous=False):
    values = torch.randn(n, channels * (2 if non_contiguous else 1), dtype=torch.float64)
    values = values[:, ::2] if non_contiguous else values
    return values.to(device=device, dtype=dtype)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("case", SITE_CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv_forward_and_gradients_match_dense_reference(case, layer, dtype, device):
    kernel, stride, padding, dilation, submanifold = LAYERS[layer]
    indices, batch_size, shape = _sites(case, device)
    kernel = _triple(kernel)
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, kernel, stride, padding, dilation,
                                                    submanifold)
    features = _features(len(indices), 5, dtype, device, non_contiguous=case == "random_batched").requires_grad_()
    weight = (0.3 * torch.randn(4, *kernel, 5, dtype=torch.float64)).to(device=device, dtype=dtype).requires_grad_()
    out = sparse_conv(features, weight.reshape(4, -1, 5), pairs, offsets, len(out_indices))
    assert out.dtype == dtype and out.shape == (len(out_indices), 4)

    # The dense reference runs in float64 from the same (rounded) inputs.
    features64 = features.detach().double().requires_grad_()
    weight64 = weight.detach().double().requires_grad_()
    expected, expected_indices = ref.sparse_conv_dense(features64, indices, batch_size, shape, weight64,
                                                       _triple(stride), _triple(padding), _triple(dilation), submanifold)
    torch.testing.assert_close(out_indices, expected_indices, rtol=0, atol=0)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)

    grad = torch.randn(out.shape, dtype=torch.float64).to(device=device, dtype=dtype)
    out.backward(grad)
    expected.backward(grad.double())
    torch.testing.assert_close(features.grad.double(), features64.grad, rtol=tol, atol=tol * 4)
    torch.testing.assert_close(weight.grad.double(), weight64.grad, rtol=tol, atol=tol * 4 * max(1, len(indices)) ** 0.5)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv_matches_pairwise_reference_for_inverse_maps(dtype, device):
    # The inverse conv runs a strided map backwards (pairs flipped); compare with the pairwise reference.
    indices, batch_size, shape = _sites("random_batched", device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 3, 2, 1)
    flipped = pairs.flip(0)
    features = _features(len(out_indices), 6, dtype, device)
    weight = torch.randn(3, 27, 6, dtype=torch.float64).to(device=device, dtype=dtype)
    got = sparse_conv(features, weight, flipped, offsets, len(indices))
    want = ref.sparse_conv(features.double(), weight.double(), flipped, offsets, len(indices))
    torch.testing.assert_close(got.double(), want, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * 4)


# Channel counts around the CPU micro-kernel's register tile (12 or 6 rows x 2 vectors of 16 or 8
# floats) and column padding (multiples of 64 bytes): narrow, exact, ragged and multi-block widths.
CHANNEL_WIDTHS = [(1, 1), (6, 32), (16, 48), (37, 70), (64, 24), (130, 17)]


def _wide_problem(device, dtype, in_channels, out_channels):
    indices, batch_size, shape = _sites("random_batched", device)
    _, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 3, submanifold=True)
    features = _features(len(indices), in_channels, dtype, device).requires_grad_()
    weight = (torch.randn(out_channels, 27, in_channels, dtype=torch.float64) / in_channels ** 0.5)
    return features, weight.to(device=device, dtype=dtype).requires_grad_(), pairs, offsets, len(indices)


@pytest.mark.parametrize("channels", CHANNEL_WIDTHS, ids=lambda c: f"{c[0]}to{c[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv_channel_widths_match_pairwise_reference(channels, dtype, device):
    features, weight, pairs, offsets, num_out = _wide_problem(device, dtype, *channels)
    out = sparse_conv(features, weight, pairs, offsets, num_out)
    features64 = features.detach().double().requires_grad_()
    weight64 = weight.detach().double().requires_grad_()
    expected = ref.sparse_conv(features64, weight64, pairs, offsets, num_out)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)
    grad = torch.randn(out.shape, dtype=torch.float64).to(device=device, dtype=dtype)
    out.backward(grad)
    expected.backward(grad.double())
    torch.testing.assert_close(features.grad.double(), features64.grad, rtol=tol, atol=tol * 4)
    torch.testing.assert_close(weight.grad.double(), weight64.grad, rtol=tol, atol=tol * 40)


_ISA_CHECK = """
import hashlib
import torch
import ppt
from ppt.ops import _reference as ref, sparse_conv, sparse_kernel_map
torch.manual_seed(0)
coords = torch.cat([torch.randint(0, 2, (900, 1)), torch.randint(0, 10, (900, 3))], 1)
indices = torch.unique(coords, dim=0).int()
_, pairs, offsets = sparse_kernel_map(indices, 2, [10, 10, 10], 3, submanifold=True)
digest = hashlib.sha256()
for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
    for cin, cout in ((6, 32), (37, 70), (64, 24)):
        f = torch.randn(len(indices), cin, dtype=dtype, requires_grad=True)
        w = (torch.randn(cout, 27, cin, dtype=dtype) / cin ** 0.5).requires_grad_()
        out = sparse_conv(f, w, pairs, offsets, len(indices))
        f64, w64 = f.detach().double().requires_grad_(), w.detach().double().requires_grad_()
        want = ref.sparse_conv(f64, w64, pairs, offsets, len(indices))
        torch.testing.assert_close(out.double(), want, rtol=tol, atol=tol)
        g = torch.randn(out.shape, dtype=dtype)
        out.backward(g)
        want.backward(g.double())
        torch.testing.assert_close(f.grad.double(), f64.grad, rtol=tol, atol=4 * tol)
        torch.testing.assert_close(w.grad.double(), w64.grad, rtol=tol, atol=40 * tol)
        for t in (out, f.grad, w.grad):
            digest.update(t.detach().numpy().tobytes())
print(ppt.build_info()["cpu_kernels"], digest.hexdigest())
"""


def _run_with_cpu_isa(isa: str, script: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PPT_CPU_ISA": isa}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)


def test_conv_every_cpu_kernel_variant_matches_reference():
    # PPT_CPU_ISA caps the micro-kernel variant chosen on first use, so each runs in its own
    # process; a variant the CPU lacks falls back to the best one it has.
    digests = {}
    for isa in ("baseline", "avx2", "avx512"):
        result = _run_with_cpu_isa(isa, _ISA_CHECK)
        assert result.returncode == 0, result.stderr
        ran, digest = result.stdout.split()
        if ran == isa:
            digests[isa] = digest
    assert "baseline" in digests
    # AVX2 and AVX-512 sum every element in the same order with FMAs: identical bits.
    if {"avx2", "avx512"} <= digests.keys():
        assert digests["avx2"] == digests["avx512"]


def test_bad_cpu_isa_is_reported_not_fatal_to_import():
    script = ("import torch, ppt\n"
              "print(ppt.build_info()['cpu_kernels'], flush=True)\n"
              "torch.ops.ppt.sparse_conv(torch.ones(1, 2), torch.ones(3, 1, 2), torch.zeros(2, 1, dtype=torch.int32),"
              " torch.tensor([0, 1]), 1)")
    result = _run_with_cpu_isa("sse9", script)
    message = "PPT_CPU_ISA must be baseline, avx2 or avx512, got 'sse9'"
    assert result.stdout.startswith("invalid: " + message)
    assert result.returncode != 0 and message in result.stderr


def test_conv_zero_channels_and_no_pairs(device):
    indices, batch_size, shape = _sites("single", device)
    _, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 3, submanifold=True)
    assert sparse_conv(torch.randn(1, 0, device=device), torch.randn(2, 27, 0, device=device), pairs, offsets, 1).tolist() == [[0.0, 0.0]]
    empty_pairs, empty_offsets = pairs[:, :0], torch.zeros(28, dtype=torch.long, device=device)
    out = sparse_conv(torch.randn(1, 3, device=device), torch.randn(2, 27, 3, device=device), empty_pairs, empty_offsets, 4)
    assert out.shape == (4, 2) and not out.any()


def _small_problem(device, dtype=torch.float64, layer="conv_k3s2p1"):
    kernel, stride, padding, dilation, submanifold = LAYERS[layer]
    indices = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 3, 2, 1], [1, 2, 2, 2], [1, 2, 3, 2]],
                           dtype=torch.int32, device=device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, 2, [4, 4, 3], kernel, stride, padding, dilation, submanifold)
    volume = len(offsets) - 1
    features = torch.randn(len(indices), 3, dtype=dtype, device=device, requires_grad=True)
    weight = torch.randn(2, volume, 3, dtype=dtype, device=device, requires_grad=True)
    return features, weight, pairs, offsets, len(out_indices)


@pytest.mark.parametrize("layer", ["subm_k3", "conv_k3s2p1", "conv_k2s2"])
def test_conv_gradcheck(layer, device):
    features, weight, pairs, offsets, num_out = _small_problem(device, layer=layer)
    assert torch.autograd.gradcheck(lambda f, w: sparse_conv(f, w, pairs, offsets, num_out), (features, weight))


def test_conv_opcheck(device):
    features, weight, pairs, offsets, num_out = _small_problem(device, torch.float32)
    torch.library.opcheck(torch.ops.ppt.sparse_conv.default, (features, weight, pairs, offsets, num_out))
    grad = torch.randn(num_out, 2, device=device)
    torch.library.opcheck(torch.ops.ppt.sparse_conv_backward.default,
                          (grad, features.detach(), weight.detach(), pairs, offsets, num_out))


@pytest.mark.parametrize("submanifold", [True, False])
def test_kernel_map_opcheck(submanifold, device):
    indices, batch_size, shape = _sites("random_batched", device)
    args = (indices, batch_size, shape, [3, 3, 3], [1, 1, 1] if submanifold else [2, 2, 2], [1, 1, 1], [1, 1, 1],
            submanifold)
    torch.library.opcheck(torch.ops.ppt.sparse_kernel_map.default, args)


def test_conv_is_deterministic(device):
    # Bitwise equal run to run, and on CPU for any thread count too (fixed summation order). A
    # 24^3 block: ~13k pairs per offset, more than one parallel chunk and weight-gradient slab.
    grid = torch.stack(torch.meshgrid(*[torch.arange(24)] * 3, indexing="ij"), -1).reshape(-1, 3)
    indices = torch.cat([torch.zeros(len(grid), 1, dtype=torch.long), grid], 1).int().to(device)
    _, pairs, offsets = sparse_kernel_map(indices, 1, [24, 24, 24], 3, submanifold=True)
    features = torch.randn(len(indices), 24, device=device, requires_grad=True)
    weight = torch.randn(40, 27, 24, device=device, requires_grad=True)
    threads = torch.get_num_threads()
    results = []
    for run in range(4):
        torch.set_num_threads(1 if run == 3 and not runs_cuda_kernels(device) else threads)
        try:
            out = sparse_conv(features, weight, pairs, offsets, len(indices))
            grads = torch.autograd.grad(out, (features, weight), torch.ones_like(out))
        finally:
            torch.set_num_threads(threads)
        results.append((out, *grads))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_torch_compile_kernel_map_and_conv(device):
    indices, batch_size, shape = _sites("random_batched", device)
    features = torch.randn(len(indices), 4, device=device)
    weight = torch.randn(8, 8, 4, device=device)

    def down(features, indices, weight):
        out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 2, 2)
        return sparse_conv(features, weight, pairs, offsets, out_indices.shape[0]).relu(), out_indices

    compiled = torch.compile(down, fullgraph=True, dynamic=True)
    got, got_indices = compiled(features, indices, weight)
    want, want_indices = down(features, indices, weight)
    torch.testing.assert_close(got_indices, want_indices, rtol=0, atol=0)
    torch.testing.assert_close(got, want)


# ---------------------------------------------------------------------------------------------
# bad input


def _map_kwargs(**overrides):
    kwargs = dict(indices=torch.tensor([[0, 1, 1, 1], [0, 2, 2, 2]], dtype=torch.int32), batch_size=1,
                  spatial_shape=[4, 4, 4], kernel_size=3, stride=1, padding=0, dilation=1, submanifold=True)
    kwargs.update(overrides)
    return kwargs


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(indices=torch.zeros(2, 4, dtype=torch.int64)), "indices must have dtype Int"),
        (dict(indices=torch.zeros(2, 3, dtype=torch.int32)), r"indices must have shape \(N, 4\)"),
        (dict(indices=torch.tensor([[-1, 0, 0, 0]], dtype=torch.int32)), r"batch ids .* must be in \[0, batch_size=1\)"),
        (dict(indices=torch.tensor([[1, 0, 0, 0]], dtype=torch.int32)), r"batch ids .* must be in \[0, batch_size=1\)"),
        (dict(indices=torch.tensor([[0, 0, 4, 0]], dtype=torch.int32)), r"indices\[:, 2\] must be in \[0, spatial_shape\[1\]=4\)"),
        (dict(indices=torch.tensor([[0, 0, 0, -2]], dtype=torch.int32)), r"indices\[:, 3\] must be in"),
        (dict(indices=torch.tensor([[0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 2, 3]], dtype=torch.int32)),
         r"duplicate site: row 2 = \[0, 1, 2, 3\]"),
        (dict(kernel_size=0), "kernel_size entries must be >= 1"),
        (dict(kernel_size=[3, 3]), "kernel_size must have 3 entries"),
        (dict(kernel_size=2), "submanifold convolution needs odd kernel_size"),
        (dict(stride=2), "submanifold convolution must have stride 1"),
        (dict(stride=0, submanifold=False), "stride entries must be >= 1"),
        (dict(padding=-1, submanifold=False), "padding entries must be >= 0"),
        (dict(dilation=0), "dilation entries must be >= 1"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(spatial_shape=[4, 0, 4]), "spatial_shape entries must be >= 1"),
        (dict(kernel_size=5, submanifold=False), "output spatial shape would be empty"),
        (dict(spatial_shape=[2**31 - 1] * 3, batch_size=4), "does not fit the 62-bit site key packing"),
    ],
)
def test_kernel_map_bad_input(overrides, message, device):
    kwargs = _map_kwargs(**overrides)
    kwargs["indices"] = kwargs["indices"].to(device)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.ppt.sparse_kernel_map.default(
            kwargs["indices"], kwargs["batch_size"], kwargs["spatial_shape"],
            *[[v] * 3 if isinstance(v, int) else v for v in (kwargs["kernel_size"], kwargs["stride"], kwargs["padding"], kwargs["dilation"])],
            kwargs["submanifold"])


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (dict(batch_size=1.0), TypeError, "sparse_kernel_map: batch_size must be an int, got float 1.0"),
        (dict(spatial_shape=[4, 4.0, 4]), TypeError, "sparse_kernel_map: spatial_shape must be an int, got float 4.0"),
        (dict(kernel_size=3.0), TypeError, "sparse_kernel_map: kernel_size must be an int or 3 ints"),
        (dict(kernel_size=(3, 3, 2.9)), TypeError, "sparse_kernel_map: kernel_size must be an int, got float 2.9"),
        (dict(stride=True, submanifold=False), TypeError, "sparse_kernel_map: stride must be an int or 3 ints"),
        (dict(padding=0.0, submanifold=False), TypeError, "sparse_kernel_map: padding must be an int or 3 ints"),
        (dict(dilation=[1, 1]), ValueError, r"sparse_kernel_map: dilation must be an int or 3 ints \(x, y, z\), got \[1, 1\]"),
        (dict(padding=-1, submanifold=False), ValueError, r"sparse_kernel_map: padding entries must be >= 0, got \[-1"),
        (dict(submanifold=1), TypeError, "sparse_kernel_map: submanifold must be a bool, got int 1"),
    ],
)
def test_kernel_map_wrapper_rejects_non_integer_arguments(overrides, error, message):
    with pytest.raises(error, match=message):
        sparse_kernel_map(**_map_kwargs(**overrides))


def test_conv_arguments_must_be_integers():
    with pytest.raises(TypeError, match="sparse_conv: num_out must be an int, got float 2.0"):
        sparse_conv(torch.zeros(2, 3), torch.zeros(4, 1, 3), torch.zeros(2, 0, dtype=torch.int32),
                    torch.zeros(2, dtype=torch.long), 2.0)
    with pytest.raises(TypeError, match="conv_output_shape: stride must be an int or 3 ints"):
        conv_output_shape([8, 8, 8], 3, 1.5)
    with pytest.raises(ValueError, match=r"conv_output_shape: stride entries must be >= 1, got \[0, 0, 0\]"):
        conv_output_shape([8, 8, 8], 3, 0)
    assert conv_output_shape([8, 8, 8], 3, 2, 1) == [4, 4, 4]


def _conv_args(device):
    features, weight, pairs, offsets, num_out = _small_problem(device, torch.float32)
    return dict(features=features.detach(), weight=weight.detach(), pairs=pairs, pair_offsets=offsets, num_out=num_out)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(features=a["features"][:, :2]), "weight expects 3 input channels but features have 2"),
        (lambda a: a.update(features=a["features"].long()), "features must be a floating-point tensor"),
        (lambda a: a.update(weight=a["weight"].double()), "features and weight must have the same dtype"),
        (lambda a: a.update(weight=a["weight"][0]), r"weight must have shape \(out_channels, kernel_volume, in_channels\)"),
        (lambda a: a.update(pairs=a["pairs"].long()), "pairs must have dtype Int"),
        (lambda a: a.update(pair_offsets=a["pair_offsets"][:-1]), r"pair_offsets must have shape \(kernel_volume \+ 1,\)"),
        (lambda a: a.update(pair_offsets=a["pair_offsets"] + 1), "pair_offsets must start at 0"),
        (lambda a: a.update(num_out=1), r"pairs\[1\] \(output rows\) must be in \[0, num_out=1\)"),
        (lambda a: a.update(num_out=-1), "num_out must be >= 0"),
        (lambda a: a.update(features=a["features"][:1]), r"pairs\[0\] \(input rows\) must be in \[0, N=1\)"),
    ],
)
def test_conv_bad_input(change, message, device):
    args = _conv_args(device)
    change(args)
    with pytest.raises(RuntimeError, match=message):
        sparse_conv(**args)


def test_conv_backward_bad_grad(device):
    args = _conv_args(device)
    with pytest.raises(RuntimeError, match=r"grad_out must have shape \(num_out, out_channels\)"):
        torch.ops.ppt.sparse_conv_backward.default(torch.zeros(args["num_out"], 5, device=device), args["features"],
                                                   args["weight"], args["pairs"], args["pair_offsets"], args["num_out"])
