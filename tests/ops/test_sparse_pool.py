"""Sparse pooling ops (sparse_max_pool, sparse_avg_pool and their backward ops) against the references."""

import pytest
import torch
import torch.nn.functional as F
from test_sparse_conv import _sites as conv_sites

from ppt.ops import _reference as ref
from ppt.ops import sparse_avg_pool, sparse_kernel_map, sparse_max_pool
from ppt.testing import runs_cuda_kernels

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
TOLERANCE = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-6, torch.float64: 1e-12}

# name -> (kernel_size, stride, padding, dilation) of a strided (pooling) kernel map
WINDOWS = {
    "k2s2": (2, 2, 0, 1),
    "k3s2p1": (3, 2, 1, 1),  # overlapping windows: an input feeds several outputs
    "k2s1d2": (2, 1, 0, 2),
    "k1x2x3_s2x1x2": ((1, 2, 3), (2, 1, 2), (0, 1, 1), 1),
}


def _sites(case, device):
    """(indices (N, 4) int32, batch_size, spatial_shape) for a named case."""
    if case == "full_windows":  # a filled block: every window holds its whole kernel volume
        grid = torch.stack(torch.meshgrid(*[torch.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3)
        return torch.cat([torch.zeros(len(grid), 1, dtype=torch.long), grid], 1).int().to(device), 1, [5, 5, 5]
    # The non-contiguous case differs from the random one in its features only.
    return conv_sites("random_batched" if case == "non_contiguous" else case, device)


CASES = ["empty", "single", "corner_sites", "full_windows", "random_batched", "non_contiguous"]


def _features(case, n, channels, dtype, device):
    if case == "full_windows":  # few distinct values: ties in almost every window
        values = torch.randint(-2, 3, (n, channels)).to(device=device, dtype=dtype)
    else:
        values = torch.randn(n, channels * 2, dtype=torch.float64).to(device=device, dtype=dtype)
        values = values[:, ::2] if case == "non_contiguous" else values[:, :channels].contiguous()
    assert values.is_contiguous() == (case != "non_contiguous")
    return values


def _pool_map(case, window, device):
    kernel, stride, padding, dilation = WINDOWS[window]
    indices, batch_size, shape = _sites(case, device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, kernel, stride, padding, dilation)
    return indices, pairs, offsets, len(out_indices)


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_pools_match_reference(case, window, dtype, device):
    indices, pairs, offsets, num_out = _pool_map(case, window, device)
    features = _features(case, len(indices), 5, dtype, device).requires_grad_()
    out, argmax = torch.ops.ppt.sparse_max_pool.default(features, pairs, offsets, num_out)
    want, want_argmax = ref.sparse_max_pool(features.detach(), pairs, offsets, num_out)
    assert out.dtype == dtype and argmax.dtype == torch.int32 and out.shape == argmax.shape == (num_out, 5)
    # A maximum is one of the inputs: exact in every dtype, and so is the winner.
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    torch.testing.assert_close(argmax, want_argmax, rtol=0, atol=0)
    assert (argmax >= 0).all()  # a pooling map reaches every output
    mean = sparse_avg_pool(features, pairs, offsets, num_out)
    assert mean.dtype == dtype and mean.shape == (num_out, 5)

    # Gradients (and the mean) against the references in float64 from the same (rounded) inputs;
    # the op accumulates half types in float32.
    features64 = features.detach().double().requires_grad_()
    want64, _ = ref.sparse_max_pool(features64, pairs, offsets, num_out)
    want_mean = ref.sparse_avg_pool(features64, pairs, offsets, num_out)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(mean.double(), want_mean, rtol=tol, atol=tol)
    for got, expected in ((out, want64), (mean, want_mean)):
        grad = torch.randn(num_out, 5, dtype=torch.float64).to(device=device, dtype=dtype)
        (got_grad,) = torch.autograd.grad(got, features, grad)
        (expected_grad,) = torch.autograd.grad(expected, features64, grad.double())
        torch.testing.assert_close(got_grad.double(), expected_grad, rtol=tol, atol=tol)


def test_pooling_hand_checked():
    # k2 s2 on a 4^3 grid: sites 0-2 share window (0, 0, 0), site 3 is alone in window (1, 1, 1).
    indices = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 3, 3, 2]], dtype=torch.int32)
    features = torch.tensor([[-1.0, 2.0], [-3.0, 2.0], [-0.5, 1.0], [-2.0, -4.0]], requires_grad=True)
    out_indices, pairs, offsets = sparse_kernel_map(indices, 1, [4, 4, 4], 2, 2)
    assert out_indices.tolist() == [[0, 0, 0, 0], [0, 1, 1, 1]]
    out, argmax = torch.ops.ppt.sparse_max_pool.default(features, pairs, offsets, 2)
    # A true maximum (negative values stay negative); the tie 2.0 = 2.0 goes to site 0, whose
    # offset (0, 0, 0) comes before site 1's (1, 0, 0).
    assert out.tolist() == [[-0.5, 2.0], [-2.0, -4.0]]
    assert argmax.tolist() == [[2, 0], [3, 3]]
    out.backward(torch.tensor([[10.0, 20.0], [30.0, 40.0]]))
    assert features.grad.tolist() == [[0.0, 20.0], [0.0, 0.0], [10.0, 0.0], [30.0, 40.0]]

    features.grad = None
    mean = sparse_avg_pool(features, pairs, offsets, 2)
    # The mean over the 3 present sites, not over the 8 cells of the window.
    torch.testing.assert_close(mean, torch.tensor([[-1.5, 5.0 / 3.0], [-2.0, -4.0]]))
    mean.backward(torch.tensor([[3.0, 6.0], [1.0, 1.0]]))
    assert features.grad.tolist() == [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 1.0]]


def test_rows_no_pair_reaches_are_zero(device):
    # num_out beyond the map's outputs (e.g. a caller's padded output): 0, argmax -1, no gradient.
    indices = torch.tensor([[0, 1, 1, 1]], dtype=torch.int32, device=device)
    _, pairs, offsets = sparse_kernel_map(indices, 1, [4, 4, 4], 2, 2)
    features = torch.tensor([[-5.0, 7.0]], device=device, requires_grad=True)
    out, argmax = torch.ops.ppt.sparse_max_pool.default(features, pairs, offsets, 3)
    assert out.tolist() == [[-5.0, 7.0], [0.0, 0.0], [0.0, 0.0]] and argmax.tolist() == [[0, 0], [-1, -1], [-1, -1]]
    assert sparse_avg_pool(features, pairs, offsets, 3).tolist() == [[-5.0, 7.0], [0.0, 0.0], [0.0, 0.0]]
    out.backward(torch.ones_like(out))
    assert features.grad.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("pool", [sparse_max_pool, sparse_avg_pool], ids=["max", "avg"])
def test_zero_channels(pool, device):
    indices, pairs, offsets, num_out = _pool_map("random_batched", "k3s2p1", device)
    features = torch.zeros(len(indices), 0, device=device, requires_grad=True)
    out = pool(features, pairs, offsets, num_out)
    assert out.shape == (num_out, 0)
    out.sum().backward()
    assert features.grad.shape == (len(indices), 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_pool_nan_propagates_and_last_nan_wins(dtype, device):
    # k2 s2: window 0 holds sites 0-2 (site 1 NaN in channel 0), window 1 holds sites 3-4, both
    # NaN in channel 1 (site 4's offset comes last, so it wins, as in torch's max_pool3d);
    # channel 0 of window 1 has no NaN.
    nan = float("nan")
    indices = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 2, 2, 2], [0, 3, 3, 3]],
                           dtype=torch.int32, device=device)
    features = torch.tensor([[1.0, 0.0], [nan, 0.5], [9.0, 0.25], [-1.0, nan], [-2.0, nan]],
                            dtype=dtype, device=device, requires_grad=True)
    _, pairs, offsets = sparse_kernel_map(indices, 1, [4, 4, 4], 2, 2)
    out, argmax = torch.ops.ppt.sparse_max_pool.default(features, pairs, offsets, 2)
    assert out[0, 0].isnan() and out[1, 1].isnan() and out[0, 1].item() == 0.5 and out[1, 0].item() == -1.0
    assert argmax.tolist() == [[1, 1], [3, 4]]
    want, want_argmax = ref.sparse_max_pool(features.detach(), pairs, offsets, 2)
    torch.testing.assert_close(out, want, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(argmax, want_argmax)
    out.backward(torch.ones_like(out))
    assert features.grad.tolist() == [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    # The mean of a window with a NaN is NaN, the other channels are untouched.
    mean = sparse_avg_pool(features.detach(), pairs, offsets, 2)
    assert mean[0, 0].isnan() and mean[1, 1].isnan() and not mean[1, 0].isnan() and not mean[0, 1].isnan()


@pytest.mark.parametrize("values", ["distinct", "ties_and_nans"])
@pytest.mark.parametrize("window", ["k2s2", "k3s2p1"])
def test_full_grid_equals_dense_pooling(window, values, device):
    # On a fully occupied grid the sparse pools are torch's dense pools, winners included (ties to
    # the first cell of the window, NaN to the last): max_pool3d pads with -inf (padding never
    # wins), avg_pool3d with count_include_pad=False averages the real cells.
    kernel, stride, padding, _ = WINDOWS[window]
    indices, _, shape = _sites("full_windows", device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, 1, shape, kernel, stride, padding)
    if values == "distinct":
        features = torch.randn(len(indices), 3, dtype=torch.float64, device=device)
    else:
        features = torch.randint(-1, 2, (len(indices), 3), device=device).double()
        features[torch.rand(features.shape, device=device) < 0.1] = float("nan")
    dense = ref.sparse_to_dense(features, indices, 1, shape)
    dense_max, dense_index = F.max_pool3d(dense, kernel, stride, padding, return_indices=True)
    dense_avg = F.avg_pool3d(dense, kernel, stride, padding, count_include_pad=False)
    o = out_indices.long()
    assert len(o) == dense_max[0, 0].numel()
    out, argmax = torch.ops.ppt.sparse_max_pool.default(features, pairs, offsets, len(o))
    torch.testing.assert_close(out, dense_max[o[:, 0], :, o[:, 1], o[:, 2], o[:, 3]], rtol=0, atol=0, equal_nan=True)
    winner_cell = indices.long()[argmax.long()][..., 1:]  # (M, C, 3) coordinates of the winners
    flat = (winner_cell[..., 0] * shape[1] + winner_cell[..., 1]) * shape[2] + winner_cell[..., 2]
    assert torch.equal(flat, dense_index[o[:, 0], :, o[:, 1], o[:, 2], o[:, 3]])
    torch.testing.assert_close(sparse_avg_pool(features, pairs, offsets, len(o)),
                               dense_avg[o[:, 0], :, o[:, 1], o[:, 2], o[:, 3]], equal_nan=True)


def _small_problem(device, window="k3s2p1", dtype=torch.float64):
    kernel, stride, padding, dilation = WINDOWS[window]
    indices = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 3, 2, 1], [1, 2, 2, 2], [1, 2, 3, 2]],
                           dtype=torch.int32, device=device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, 2, [4, 4, 3], kernel, stride, padding, dilation)
    features = torch.randn(len(indices), 3, dtype=dtype, device=device, requires_grad=True)
    return features, pairs, offsets, len(out_indices)


@pytest.mark.parametrize("window", ["k2s2", "k3s2p1"])
@pytest.mark.parametrize("pool", [sparse_max_pool, sparse_avg_pool], ids=["max", "avg"])
def test_gradcheck_and_gradgradcheck(pool, window, device):
    features, pairs, offsets, num_out = _small_problem(device, window)
    fn = lambda f: pool(f, pairs, offsets, num_out)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (features,))
    assert torch.autograd.gradgradcheck(fn, (features,))


def test_backward_ops_are_differentiable(device):
    # The backward ops' own gradients (w.r.t. grad_out) through gradcheck, the path double backward takes.
    features, pairs, offsets, num_out = _small_problem(device)
    _, argmax = torch.ops.ppt.sparse_max_pool.default(features.detach(), pairs, offsets, num_out)
    grad = torch.randn(num_out, 3, dtype=torch.float64, device=device, requires_grad=True)
    num_in = len(features)
    assert torch.autograd.gradcheck(
        lambda g: torch.ops.ppt.sparse_max_pool_backward.default(g, argmax, pairs, offsets, num_in), (grad,))
    assert torch.autograd.gradcheck(
        lambda g: torch.ops.ppt.sparse_avg_pool_backward.default(g, pairs, offsets, num_in), (grad,))


def test_opcheck(device):
    features, pairs, offsets, num_out = _small_problem(device, dtype=torch.float32)
    _, argmax = torch.ops.ppt.sparse_max_pool.default(features.detach(), pairs, offsets, num_out)
    grad = torch.randn(num_out, 3, device=device, requires_grad=True)
    num_in = len(features)
    torch.library.opcheck(torch.ops.ppt.sparse_max_pool.default, (features, pairs, offsets, num_out))
    torch.library.opcheck(torch.ops.ppt.sparse_avg_pool.default, (features, pairs, offsets, num_out))
    torch.library.opcheck(torch.ops.ppt.sparse_max_pool_backward.default, (grad, argmax, pairs, offsets, num_in))
    torch.library.opcheck(torch.ops.ppt.sparse_avg_pool_backward.default, (grad, pairs, offsets, num_in))


def test_pooling_is_deterministic(device):
    # Bitwise equal run to run, and on CPU for any thread count; a 16^3 block with overlapping
    # windows gives each offset more pairs than one parallel chunk.
    grid = torch.stack(torch.meshgrid(*[torch.arange(16)] * 3, indexing="ij"), -1).reshape(-1, 3)
    indices = torch.cat([torch.zeros(len(grid), 1, dtype=torch.long), grid], 1).int().to(device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, 1, [16, 16, 16], 3, 1, 1)
    features = torch.randn(len(indices), 16, device=device, requires_grad=True)
    threads = torch.get_num_threads()
    results = []
    for run in range(3):
        torch.set_num_threads(1 if run == 2 and not runs_cuda_kernels(device) else threads)
        try:
            outs = [pool(features, pairs, offsets, len(out_indices)) for pool in (sparse_max_pool, sparse_avg_pool)]
            grads = [torch.autograd.grad(out, features, torch.ones_like(out))[0] for out in outs]
        finally:
            torch.set_num_threads(threads)
        results.append((*outs, *grads))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_torch_compile_pooling(device):
    indices, batch_size, shape = _sites("random_batched", device)
    features = torch.randn(len(indices), 4, device=device, requires_grad=True)

    def pool(features, indices):
        out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 2, 2)
        num_out = out_indices.shape[0]
        return sparse_max_pool(features, pairs, offsets, num_out) + sparse_avg_pool(features, pairs, offsets, num_out)

    compiled = torch.compile(pool, fullgraph=True, dynamic=True)
    got = compiled(features, indices)
    want = pool(features, indices)
    torch.testing.assert_close(got, want)
    grad = torch.randn_like(want)
    (got_grad,) = torch.autograd.grad(got, features, grad)
    (want_grad,) = torch.autograd.grad(want, features, grad)
    torch.testing.assert_close(got_grad, want_grad)


# ---------------------------------------------------------------------------------------------
# bad input


def _pool_args(device):
    features, pairs, offsets, num_out = _small_problem(device, dtype=torch.float32)
    return dict(features=features.detach(), pairs=pairs, pair_offsets=offsets, num_out=num_out)


FORWARD_BAD_INPUT = [
    (lambda a: a.update(features=a["features"].long()), "features must be a floating-point tensor"),
    (lambda a: a.update(features=a["features"][:, 0]), r"features must have shape \(N, channels\)"),
    (lambda a: a.update(pairs=a["pairs"].long()), "pairs must have dtype Int"),
    (lambda a: a.update(pairs=a["pairs"][:1]), r"pairs must have shape \(2, P\)"),
    (lambda a: a.update(pair_offsets=a["pair_offsets"].int()), "pair_offsets must have dtype Long"),
    (lambda a: a.update(pair_offsets=a["pair_offsets"][None]), r"pair_offsets must have shape \(kernel_volume \+ 1,\)"),
    (lambda a: a.update(pair_offsets=a["pair_offsets"][:0]), r"pair_offsets must have shape \(kernel_volume \+ 1,\)"),
    (lambda a: a.update(pair_offsets=a["pair_offsets"] + 1), "pair_offsets must start at 0 and end at P="),
    (lambda a: a.update(num_out=1), r"pairs\[1\] \(output rows\) must be in \[0, num_out=1\)"),
    (lambda a: a.update(num_out=-1), "num_out must be >= 0"),
    (lambda a: a.update(features=a["features"][:1]), r"pairs\[0\] \(input rows\) must be in \[0, N=1\)"),
]


@pytest.mark.parametrize("op", ["sparse_max_pool", "sparse_avg_pool"])
@pytest.mark.parametrize("change, message", FORWARD_BAD_INPUT)
def test_pool_bad_input(op, change, message, device):
    args = _pool_args(device)
    change(args)
    with pytest.raises(RuntimeError, match=f"{op}: {message}"):
        getattr(torch.ops.ppt, op).default(*args.values())


def test_pool_offsets_must_not_decrease(device):
    args = _pool_args(device)
    offsets = args["pair_offsets"].clone()
    offsets[1], offsets[2] = offsets[-1], 0
    with pytest.raises(RuntimeError, match="sparse_max_pool: pair_offsets must be non-decreasing"):
        sparse_max_pool(args["features"], args["pairs"], offsets, args["num_out"])


def _backward_args(device):
    args = _pool_args(device)
    _, argmax = torch.ops.ppt.sparse_max_pool.default(*args.values())
    grad = torch.randn(args["num_out"], 3, device=device)
    return dict(grad_out=grad, argmax=argmax, pairs=args["pairs"], pair_offsets=args["pair_offsets"],
                num_in=len(args["features"]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(grad_out=a["grad_out"].int()), "grad_out must be a floating-point tensor"),
        (lambda a: a.update(grad_out=a["grad_out"][0]), r"grad_out must have shape \(num_out, channels\)"),
        (lambda a: a.update(argmax=a["argmax"].long()), "argmax must have dtype Int"),
        (lambda a: a.update(argmax=a["argmax"][:, :2]), r"argmax must have the shape of grad_out \[6, 3\], got \[6, 2\]"),
        (lambda a: a.update(num_in=2), r"pairs\[0\] \(input rows\) must be in \[0, num_in=2\)"),
        (lambda a: a.update(num_in=-1), "num_in must be >= 0"),
        (lambda a: a.update(grad_out=a["grad_out"][:1], argmax=a["argmax"][:1]), r"pairs\[1\] \(output rows\) must be in \[0, num_out=1\)"),
    ],
)
def test_max_pool_backward_bad_input(change, message, device):
    args = _backward_args(device)
    change(args)
    with pytest.raises(RuntimeError, match=f"sparse_max_pool_backward: {message}"):
        torch.ops.ppt.sparse_max_pool_backward.default(*args.values())


def test_avg_pool_backward_bad_input(device):
    args = _backward_args(device)
    del args["argmax"]
    with pytest.raises(RuntimeError, match=r"sparse_avg_pool_backward: pairs\[0\] \(input rows\) must be in \[0, num_in=3\)"):
        torch.ops.ppt.sparse_avg_pool_backward.default(*{**args, "num_in": 3}.values())
    with pytest.raises(RuntimeError, match="sparse_avg_pool_backward: grad_out must be a floating-point tensor"):
        torch.ops.ppt.sparse_avg_pool_backward.default(*{**args, "grad_out": args["grad_out"].long()}.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to place arguments on two devices")
def test_pool_arguments_on_two_devices():
    args = _pool_args(torch.device("cuda"))
    with pytest.raises(RuntimeError, match="sparse_max_pool: features and pairs must be on the same device"):
        sparse_max_pool(args["features"].cpu(), args["pairs"], args["pair_offsets"], args["num_out"])
