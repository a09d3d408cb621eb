"""Every op under torch.autocast behaves like its torch counterpart (docs/ops.md, "Mixed precision"):
sparse_conv in the autocast dtype (like conv3d), point and raster ops in float32 (like cdist),
segment batch norm with float32 statistics and the input's dtype (like batch_norm), pools uncast.
Outputs are compared with the reference run in the stated precision; gradients reach float32
leaves in float32."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_raster import make_scene
from test_sparse_conv import _sites

from ppt.models import SpUNet
from ppt.nn import SubMConv3d
from ppt.ops import _reference as ref
from ppt.ops import (farthest_point_sample, knn, rasterize_gaussians, segment_batch_norm, sparse_avg_pool,
                     sparse_conv, sparse_kernel_map, sparse_max_pool, voxelize)
from ppt.sparse import SparseTensor

# Tiny inputs: one thread avoids OpenMP wake-ups dominating (the kernels' threading is tested elsewhere).
pytestmark = pytest.mark.usefixtures("single_thread")

TOLERANCE = {torch.float16: dict(atol=2e-2, rtol=2e-2), torch.bfloat16: dict(atol=8e-2, rtol=5e-2)}


@pytest.fixture(params=[torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def autocast_dtype(request):
    return request.param


def _conv_case(device, stride=1):
    indices, batch_size, shape = _sites("random_batched", device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 3, stride, 1, 1, stride == 1)
    features = torch.randn(indices.shape[0], 5, device=device, requires_grad=True)
    weight = torch.randn(7, 27, 5, device=device, requires_grad=True)
    return features, weight, pairs, offsets, out_indices.shape[0]


# ---------------------------------------------------------------------------------------------
# sparse convolution: the current autocast dtype, like conv3d


@pytest.mark.parametrize("stride", [1, 2], ids=["subm", "strided"])
def test_sparse_conv_runs_in_the_autocast_dtype(stride, autocast_dtype, device):
    features, weight, pairs, offsets, num_out = _conv_case(device, stride)
    with torch.autocast(device.type, dtype=autocast_dtype):
        out = sparse_conv(features, weight, pairs, offsets, num_out)
        dense = F.conv3d(torch.randn(1, 5, 3, 3, 3, device=device), torch.randn(7, 5, 3, 3, 3, device=device))
    assert out.dtype == dense.dtype == autocast_dtype
    grad = torch.randn_like(out)
    out.backward(grad)
    assert features.grad.dtype == weight.grad.dtype == torch.float32

    # Reference: the same op on inputs cast to the autocast dtype, outside autocast.
    leaves = [t.detach().clone().requires_grad_() for t in (features, weight)]
    want = ref.sparse_conv(leaves[0].to(autocast_dtype), leaves[1].to(autocast_dtype), pairs, offsets, num_out)
    want.backward(grad)
    torch.testing.assert_close(out, want, **TOLERANCE[autocast_dtype])
    torch.testing.assert_close(features.grad, leaves[0].grad, **TOLERANCE[autocast_dtype])
    torch.testing.assert_close(weight.grad, leaves[1].grad, **TOLERANCE[autocast_dtype])


def test_sparse_conv_follows_the_autocast_dtype_setting(device):
    """The dtype is read at call time (torch.get_autocast_dtype), not fixed at registration."""
    features, weight, pairs, offsets, num_out = _conv_case(device)
    for dtype in (torch.bfloat16, torch.float16, torch.bfloat16):
        with torch.autocast(device.type, dtype=dtype):
            assert sparse_conv(features, weight, pairs, offsets, num_out).dtype == dtype


def test_sparse_conv_leaves_float64_alone(device):
    features, weight, pairs, offsets, num_out = _conv_case(device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = sparse_conv(features.double(), weight.double(), pairs, offsets, num_out)
    assert out.dtype == torch.float64


def test_sparse_conv_without_autocast_keeps_its_dtype_check(device):
    features, weight, pairs, offsets, num_out = _conv_case(device)
    with pytest.raises(RuntimeError, match="same dtype"):
        sparse_conv(features.bfloat16(), weight, pairs, offsets, num_out)


def test_conv_layer_output_like_conv3d(autocast_dtype, device):
    """Bias included: the layer's output is in the autocast dtype, its parameter grads in float32."""
    indices, batch_size, shape = _sites("random_batched", device)
    layer = SubMConv3d(4, 6, 3, bias=True).to(device)
    x = SparseTensor(torch.randn(indices.shape[0], 4, device=device), indices, shape, batch_size)
    with torch.autocast(device.type, dtype=autocast_dtype):
        out = layer(x)
    assert out.features.dtype == autocast_dtype
    out.features.float().square().sum().backward()
    assert layer.weight.grad.dtype == layer.bias.grad.dtype == torch.float32
    # The layer cast to the autocast dtype, run outside autocast, computes the same.
    cast_layer = copy.deepcopy(layer).to(autocast_dtype)
    want = cast_layer(SparseTensor(x.features.to(autocast_dtype), indices, shape, batch_size))
    torch.testing.assert_close(out.features, want.features, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_conv_under_autocast(backend, device):
    features, weight, pairs, offsets, num_out = _conv_case(device)

    def step(features, weight):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = sparse_conv(features, weight, pairs, offsets, num_out)
        return out, out.float().square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(step, backend=backend, fullgraph=True)
    results = []
    for fn in (step, compiled):
        leaves = [t.detach().clone().requires_grad_() for t in (features, weight)]
        out, loss = fn(*leaves)
        loss.backward()
        results.append((out, *(t.grad for t in leaves)))
    assert results[1][0].dtype == torch.bfloat16
    assert results[1][1].dtype == results[1][2].dtype == torch.float32
    for compiled_value, eager_value in zip(results[1], results[0]):
        torch.testing.assert_close(compiled_value, eager_value)


# ---------------------------------------------------------------------------------------------
# point ops: float32, like cdist


def test_point_ops_run_in_float32(autocast_dtype, device):
    gen = torch.Generator().manual_seed(1)
    query = torch.randn(2, 9, 3, generator=gen).to(device, autocast_dtype).requires_grad_()
    points = torch.randn(2, 17, 3, generator=gen).to(device, autocast_dtype).requires_grad_()
    with torch.autocast(device.type, dtype=autocast_dtype):
        dist2, index = knn(query, points, 4)
        like_cdist = torch.cdist(query, points)
        fps = farthest_point_sample(points, 6, 2)
        voxels = voxelize(points.reshape(-1, 3), 0.4)
    assert dist2.dtype == like_cdist.dtype == torch.float32
    want_dist2, want_index = ref.knn(query.float(), points.float(), 4)
    torch.testing.assert_close(dist2, want_dist2)
    assert torch.equal(index, want_index)
    assert torch.equal(fps, ref.farthest_point_sample(points.float(), 6, 2))
    for got, want in zip(voxels, ref.voxelize(points.detach().reshape(-1, 3).float(), 0.4)):
        assert torch.equal(got, want.to(got.dtype))
    # Gradients flow back through the cast, arriving in the leaves' dtype.
    grad = torch.randn_like(dist2)
    dist2.backward(grad)
    assert query.grad.dtype == points.grad.dtype == autocast_dtype
    leaves = [t.detach().float().requires_grad_() for t in (query, points)]
    ref.knn(*leaves, 4)[0].backward(grad)
    torch.testing.assert_close(query.grad, leaves[0].grad.to(autocast_dtype))
    torch.testing.assert_close(points.grad, leaves[1].grad.to(autocast_dtype))


# ---------------------------------------------------------------------------------------------
# segment batch norm: float32 statistics, output in the input's dtype, like batch_norm


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("input_dtype", [torch.bfloat16, torch.float32], ids=["bf16_input", "f32_input"])
def test_segment_batch_norm_like_batch_norm(training, input_dtype, device):
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(40, 6, generator=gen) * 3 + 1).to(device, input_dtype).requires_grad_()
    segment = torch.randint(0, 3, (40,), generator=gen).to(device)
    weight = (torch.rand(3, 6, generator=gen) + 0.5).to(device).requires_grad_()
    bias = torch.randn(3, 6, generator=gen).to(device).requires_grad_()
    running_mean, running_var = torch.zeros(3, 6, device=device), torch.ones(3, 6, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        out = segment_batch_norm(x, segment, 3, running_mean, running_var, weight, bias, training, 0.1, 1e-5)
        like = F.batch_norm(x, running_mean[0].clone(), running_var[0].clone(), weight[0], bias[0], training)
    assert out.dtype == like.dtype == input_dtype
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    want = ref.segment_batch_norm(leaves[0], segment, 3, torch.zeros(3, 6, device=device),
                                  torch.ones(3, 6, device=device), leaves[1], leaves[2], training, 0.1, 1e-5)
    tolerance = TOLERANCE[torch.bfloat16] if input_dtype == torch.bfloat16 else {}
    torch.testing.assert_close(out, want, **tolerance)
    grad = torch.randn_like(out)
    out.backward(grad)
    want.backward(grad)
    assert x.grad.dtype == input_dtype and weight.grad.dtype == bias.grad.dtype == torch.float32
    for got, expected in zip((x.grad, weight.grad, bias.grad), (t.grad for t in leaves)):
        torch.testing.assert_close(got, expected, **tolerance)


def test_segment_bn_kernels_take_half_tables_under_autocast(device):
    """Called directly, the kernels get their statistics and affine tables in float32 under autocast
    (outside autocast, half tables are rejected: the kernels accumulate in float32)."""
    x = torch.randn(12, 4, device=device).bfloat16()
    segment = torch.tensor([0, 1] * 6, device=device)
    mean, invstd = torch.randn(2, 4, device=device), torch.rand(2, 4, device=device) + 0.5
    weight, bias = torch.randn(2, 4, device=device), torch.randn(2, 4, device=device)
    want = torch.ops.ppt.segment_bn_apply(x, segment, mean, invstd, weight, bias)
    half = [t.bfloat16() for t in (mean, invstd, weight, bias)]
    with pytest.raises(RuntimeError, match="mean"):
        torch.ops.ppt.segment_bn_apply(x, segment, *half)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        got = torch.ops.ppt.segment_bn_apply(x, segment, *half)
    assert got.dtype == torch.bfloat16
    cast_back = [t.float() for t in half]
    torch.testing.assert_close(got, torch.ops.ppt.segment_bn_apply(x, segment, *cast_back), rtol=0, atol=0)
    torch.testing.assert_close(got, want, **TOLERANCE[torch.bfloat16])


# ---------------------------------------------------------------------------------------------
# rasterizer: float32


def test_rasterizer_runs_in_float32(autocast_dtype, device):
    scene = make_scene(n=16, dtype=torch.float32, device=device, sh_coeffs=4)
    tensors, (width, height) = scene[:7], scene[7:]
    half = [t.to(autocast_dtype).requires_grad_() for t in tensors[:5]] + list(tensors[5:])
    backgrounds = torch.rand(2, 3, 3, device=device)
    kwargs = dict(sh_degree=1, render_mode="RGB+ED", backgrounds=backgrounds)
    with torch.autocast(device.type, dtype=autocast_dtype):
        colors, alphas, meta = rasterize_gaussians(*half, width, height, **kwargs)
    assert colors.dtype == alphas.dtype == meta["means2d"].dtype == torch.float32
    # The same render from the inputs cast to float32, outside autocast.
    leaves = [t.detach().float().requires_grad_() for t in half[:5]]
    want_colors, want_alphas, _ = rasterize_gaussians(*leaves, *tensors[5:], width, height, **kwargs)
    torch.testing.assert_close(colors, want_colors, rtol=0, atol=0)
    torch.testing.assert_close(alphas, want_alphas, rtol=0, atol=0)
    loss = colors.square().mean() + alphas.mean()
    loss.backward()
    (want_colors.square().mean() + want_alphas.mean()).backward()
    for got, want in zip(half[:5], leaves):
        assert got.grad.dtype == autocast_dtype
        # Each op casts separately, so a leaf used twice sums two grads rounded to its dtype.
        torch.testing.assert_close(got.grad, want.grad.to(autocast_dtype), **TOLERANCE[autocast_dtype])


# ---------------------------------------------------------------------------------------------
# sparse pools: no cast


@pytest.mark.parametrize("pool", [sparse_max_pool, sparse_avg_pool], ids=["max", "avg"])
def test_pools_keep_their_input_dtype(pool, device):
    indices, batch_size, shape = _sites("random_batched", device)
    out_indices, pairs, offsets = sparse_kernel_map(indices, batch_size, shape, 2, 2)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        features = torch.randn(indices.shape[0], 5, device=device).to(dtype).requires_grad_()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = pool(features, pairs, offsets, out_indices.shape[0])
        assert out.dtype == dtype
        want = getattr(ref, pool.__name__)(features, pairs, offsets, out_indices.shape[0])
        want = want[0] if isinstance(want, tuple) else want
        torch.testing.assert_close(out, want)
        out.float().sum().backward()
        assert features.grad.dtype == dtype


# ---------------------------------------------------------------------------------------------
# training steps of whole networks under CPU bf16 autocast

SMALL = dict(base_channels=8, channels=(8, 16, 16, 24, 16, 16, 8, 8), layers=(1, 1, 1, 1, 1, 1, 1, 1))


def _scene_tensor(device, scenes=2, points=800, extent=32):
    coords = torch.cat([torch.randint(0, scenes, (points, 1)), torch.randint(0, extent, (points, 3))], 1)
    indices = torch.unique(coords, dim=0).int().to(device)
    return SparseTensor(torch.randn(indices.shape[0], 6, device=device), indices, batch_size=scenes)


@pytest.mark.parametrize("norm", ["bn", "pdnorm"])
def test_spunet_training_step_under_autocast(norm, device):
    extra = dict(norm="pdnorm", context_channels=16, zero_init=False) if norm == "pdnorm" else {}
    model = SpUNet(in_channels=6, num_classes=5, **SMALL, **extra).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = _scene_tensor(device)
    labels = torch.randint(0, 5, (x.features.shape[0],), device=device)
    # PDNorm: a mixed batch (scene 0 of condition 0, scene 1 of condition 2) and a context table.
    domain = torch.tensor([0, 2], device=device)[x.indices[:, 0].long()]
    inputs = (x, domain, torch.randn(3, 16, device=device)) if norm == "pdnorm" else (x,)
    dtype = torch.bfloat16
    with torch.autocast(device.type, dtype=dtype):
        logits = model(*inputs)
        loss = F.cross_entropy(logits, labels)
    assert logits.dtype == dtype and loss.dtype == torch.float32
    assert torch.isfinite(loss)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and g.dtype == torch.float32 and bool(torch.isfinite(g).all()) for g in grads.values())
    assert any(bool(g.abs().sum() > 0) for g in grads.values())
    optimizer.step()
    # The same step in float32 gives a loss within bf16 rounding.
    with torch.no_grad():
        torch.testing.assert_close(loss, F.cross_entropy(model(*inputs), labels), atol=0.5, rtol=0.2)
