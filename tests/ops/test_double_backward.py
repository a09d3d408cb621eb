"""Double backward of every differentiable op: implemented and checked with gradgradcheck (float64)
and against the reference's second derivatives, or a RuntimeError naming the op, never torch's
warning with zero gradients. The sparse pools are gradgradchecked in test_sparse_pool.py."""

import warnings

import pytest
import torch
from test_raster import make_scene
from test_sparse_conv import LAYERS, _sites, _triple

from ppt.ops import _reference as ref
from ppt.ops import knn, rasterize_gaussians, segment_batch_norm, sparse_conv, sparse_kernel_map
from ppt.ops.norm import _SegmentBatchNormFunction

# Thousands of calls on tiny inputs: one thread avoids OpenMP wake-ups dominating.
pytestmark = pytest.mark.usefixtures("single_thread")


def _second_order(fn, inputs, seed=0):
    """Gradients of a scalar function of the create_graph gradients of ``fn`` w.r.t. ``inputs``."""
    gen = torch.Generator().manual_seed(seed)
    out = fn(*inputs)
    grad_out = torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device)
    grads = torch.autograd.grad(out, inputs, grad_out, create_graph=True)
    probes = [torch.randn(g.shape, generator=gen, dtype=g.dtype).to(g.device) for g in grads]
    scalar = sum((g * p).sum() for g, p in zip(grads, probes))
    if not scalar.requires_grad:  # first-order gradients independent of the inputs (e.g. eval-mode norm)
        return [g.detach() for g in grads], [torch.zeros_like(t) for t in inputs]
    return [g.detach() for g in grads], torch.autograd.grad(scalar, inputs, allow_unused=True, materialize_grads=True)


def _assert_same_second_order(fn, reference, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "autograd kernel was not registered" warning fails the test
        first, second = _second_order(fn, inputs)
    ref_first, ref_second = _second_order(reference, inputs)
    for got, want in zip(first + list(second), ref_first + list(ref_second)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# sparse_conv


def _conv_inputs(layer, device, inverse=False, channels=(2, 2)):
    kernel, stride, padding, dilation, submanifold = LAYERS[layer]
    indices, batch_size, shape = _sites("random_batched", device)
    indices = indices[:12]
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, kernel, stride, padding, dilation,
                                                    submanifold)
    num_in, num_out = indices.shape[0], out_indices.shape[0]
    if inverse:  # the inverse convolution's map: inputs and outputs swapped
        pairs, num_in, num_out = pairs.flip(0), num_out, num_in
    volume = offsets.numel() - 1
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(num_in, channels[0], generator=gen, dtype=torch.float64).to(device).requires_grad_()
    weight = torch.randn(channels[1], volume, channels[0], generator=gen, dtype=torch.float64).to(device)
    return features, weight.requires_grad_(), pairs, offsets, num_out


@pytest.mark.parametrize("inverse", [False, True], ids=["forward_map", "inverse_map"])
@pytest.mark.parametrize("layer", ["subm_k3", "conv_k3s2p1", "conv_k1x2x3_s2x1x2"])
def test_sparse_conv_gradgradcheck(layer, inverse, device):
    features, weight, pairs, offsets, num_out = _conv_inputs(layer, device, inverse)
    assert torch.autograd.gradgradcheck(lambda f, w: sparse_conv(f, w, pairs, offsets, num_out), (features, weight))


def test_sparse_conv_backward_op_gradcheck(device):
    """The backward op is differentiable in all of grad_out, features and weight (triple backward too)."""
    features, weight, pairs, offsets, num_out = _conv_inputs("conv_k3s2p1", device)
    grad_out = torch.randn(num_out, weight.shape[0], dtype=torch.float64, device=device, requires_grad=True)

    def backward_op(g, f, w):
        return torch.ops.ppt.sparse_conv_backward(g, f, w, pairs, offsets, num_out)

    assert torch.autograd.gradcheck(backward_op, (grad_out, features, weight))
    assert torch.autograd.gradgradcheck(backward_op, (grad_out, features, weight))


@pytest.mark.parametrize("layer", ["subm_k3", "conv_k2s2"])
def test_sparse_conv_second_order_matches_reference(layer, device):
    features, weight, pairs, offsets, num_out = _conv_inputs(layer, device, channels=(4, 3))
    _assert_same_second_order(lambda f, w: sparse_conv(f, w, pairs, offsets, num_out),
                              lambda f, w: ref.sparse_conv(f, w, pairs, offsets, num_out), (features, weight))


def test_sparse_conv_backward_opcheck(device):
    features, weight, pairs, offsets, num_out = _conv_inputs("conv_k3s2p1", device, channels=(4, 3))
    grad_out = torch.randn(num_out, 3, dtype=torch.float64, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.ppt.sparse_conv_backward.default,
                          (grad_out, features, weight, pairs, offsets, num_out))


def test_sparse_conv_dense_second_order(device):
    """Second derivatives equal those of the dense conv3d formulation."""
    kernel, stride, padding, dilation, submanifold = LAYERS["conv_k3s2p1"]
    indices, batch_size, shape = _sites("corner_sites", device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, kernel, stride, padding, dilation,
                                                    submanifold)
    features = torch.randn(indices.shape[0], 2, dtype=torch.float64, device=device, requires_grad=True)
    weight = torch.randn(3, 27, 2, dtype=torch.float64, device=device, requires_grad=True)

    def dense(f, w):
        return ref.sparse_conv_dense(f, indices, batch_size, shape, w.reshape(3, 3, 3, 3, 2), _triple(stride),
                                     _triple(padding), _triple(dilation), submanifold)[0]

    _assert_same_second_order(lambda f, w: sparse_conv(f, w, pairs, offsets, out_indices.shape[0]), dense,
                              (features, weight))


# ---------------------------------------------------------------------------------------------
# knn


def test_knn_gradgradcheck(device):
    gen = torch.Generator().manual_seed(2)
    query = torch.randn(2, 3, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    points = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda q, p: knn(q, p, 3)[0], (query, points))
    _assert_same_second_order(lambda q, p: knn(q, p, 3)[0], lambda q, p: ref.knn(q, p, 3)[0], (query, points))
    _, index = knn(query, points, 3)
    grad = torch.randn(2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)

    def backward_op(g, q, p):
        return torch.ops.ppt.knn_backward(g, q, p, index)

    assert torch.autograd.gradcheck(backward_op, (grad, query, points))
    assert torch.autograd.gradgradcheck(backward_op, (grad, query, points))
    torch.library.opcheck(torch.ops.ppt.knn_backward.default, (grad, query, points, index))


# ---------------------------------------------------------------------------------------------
# segment_batch_norm


def _norm_inputs(device):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(13, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    segment = torch.tensor([0, 2, 0, 2, 2, 0, 0, 2, 0, 2, 2, 0, 2], device=device)
    weight = torch.randn(3, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    bias = torch.randn(3, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    running_mean = torch.randn(3, 3, generator=gen, dtype=torch.float64).to(device)
    running_var = torch.rand(3, 3, generator=gen, dtype=torch.float64).to(device) + 0.5
    return x, segment, weight, bias, running_mean, running_var


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_segment_batch_norm_double_backward(training, affine, device):
    x, segment, weight, bias, running_mean, running_var = _norm_inputs(device)

    def with_stats(op):
        def fn(x, *affine_tables):
            return op(x, segment, 3, running_mean.clone(), running_var.clone(), *affine_tables, training, 0.1, 1e-5)
        return fn

    inputs = (x, weight, bias) if affine else (x,)
    fn, reference = with_stats(segment_batch_norm), with_stats(ref.segment_batch_norm)
    if not affine:
        fn = (lambda f: lambda x: f(x, None, None))(fn)
        reference = (lambda f: lambda x: f(x, None, None))(reference)
    assert torch.autograd.gradgradcheck(fn, inputs)
    _assert_same_second_order(fn, reference, inputs)
    # The first-order gradients of the create_graph path equal the kernels'.
    grad_out = torch.randn(x.shape, dtype=x.dtype, device=device)
    kernels = torch.autograd.grad(fn(*inputs), inputs, grad_out)
    differentiable = torch.autograd.grad(fn(*inputs), inputs, grad_out, create_graph=True)
    for a, b in zip(differentiable, kernels):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_segment_batch_norm_double_backward_with_sync_raises():
    """With statistics all-reduced across processes (a group is set) the create_graph backward raises;
    the two-process run in test_segment_norm_distributed.py checks the same through the public API."""
    x, segment, _, _, _, _ = _norm_inputs("cpu")
    count, mean, m2 = torch.ops.ppt.segment_bn_stats(x.detach(), segment, 3)
    invstd = torch.rsqrt(m2 / count.clamp_min(1)[:, None] + 1e-5)
    group = object()  # stands for a process group: the error comes before any collective
    y = _SegmentBatchNormFunction.apply(x, segment, mean, invstd, count, None, None, group, 1e-5)
    with pytest.raises(RuntimeError, match="segment_batch_norm: double backward .* sync=True"):
        torch.autograd.grad(y.sum(), x, create_graph=True)


@pytest.mark.parametrize("op", ["segment_bn_stats", "segment_bn_apply"])
def test_segment_bn_kernels_are_not_differentiable_alone(op, device):
    x = torch.randn(6, 2, device=device, requires_grad=True)
    segment = torch.tensor([0, 1] * 3, device=device)
    if op == "segment_bn_stats":
        out = torch.ops.ppt.segment_bn_stats(x, segment, 2)[1]
    else:
        out = torch.ops.ppt.segment_bn_apply(x, segment, torch.zeros(2, 2, device=device),
                                             torch.ones(2, 2, device=device), None, None)
    with pytest.raises(RuntimeError, match=f"ppt::{op} has no autograd formula of its own; differentiate through "
                                           "ppt.ops.segment_batch_norm"):
        out.sum().backward()


# ---------------------------------------------------------------------------------------------
# rasterizer: not twice differentiable, and says so


@pytest.mark.parametrize("wrt, op", [("means", "project_gaussians"), ("colors", "rasterize_tiles"),
                                     ("sh", "spherical_harmonics")])
def test_rasterizer_double_backward_raises(wrt, op, device):
    sh = wrt == "sh"
    scene = make_scene(n=8, device=device, sh_coeffs=4 if sh else None)
    leaves = [t.clone().requires_grad_() for t in scene[:5]]
    colors, alphas, _ = rasterize_gaussians(*leaves, *scene[5:], sh_degree=1 if sh else None)
    # First-order gradients with create_graph=True still work ...
    grads = torch.autograd.grad(colors.square().sum() + alphas.sum(), leaves, create_graph=True)
    grad = grads[0] if wrt == "means" else grads[4]
    # ... differentiating them again names the op.
    with pytest.raises(RuntimeError, match=f"ppt::{op} \\(rasterize_gaussians\\): double backward is not implemented"):
        grad.square().sum().backward()
