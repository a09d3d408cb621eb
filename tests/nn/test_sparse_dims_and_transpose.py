"""1-D and 2-D sparse layers, the transposed convolution and the global pools, each against the dense
PyTorch layer it equals on the densified input (float64)."""

import pytest
import torch
import torch.nn.functional as F

import ppt.nn as pnn
from ppt.nn.sparse_conv import SubMConv
from ppt.ops import conv_transpose_output_shape, sparse_transposed_kernel_map
from ppt.sparse import SparseTensor

DENSE_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DENSE_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
DENSE_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
LAYERS = {
    "subm": {1: pnn.SubMConv1d, 2: pnn.SubMConv2d, 3: pnn.SubMConv3d},
    "conv": {1: pnn.SparseConv1d, 2: pnn.SparseConv2d, 3: pnn.SparseConv3d},
    "transpose": {1: pnn.SparseConvTranspose1d, 2: pnn.SparseConvTranspose2d, 3: pnn.SparseConvTranspose3d},
    "inverse": {1: pnn.SparseInverseConv1d, 2: pnn.SparseInverseConv2d, 3: pnn.SparseInverseConv3d},
    "max_pool": {1: pnn.SparseMaxPool1d, 2: pnn.SparseMaxPool2d, 3: pnn.SparseMaxPool3d},
    "avg_pool": {1: pnn.SparseAvgPool1d, 2: pnn.SparseAvgPool2d, 3: pnn.SparseAvgPool3d},
}
SHAPES = {1: (23,), 2: (13, 11), 3: (9, 8, 7)}


def _scene(device, ndim, n=120, batch_size=2, channels=3, low=-1.0):
    shape = SHAPES[ndim]
    coords = torch.cat([torch.randint(0, batch_size, (n, 1))] + [torch.randint(0, s, (n, 1)) for s in shape], 1)
    indices = torch.unique(coords, dim=0).int()
    indices = indices[torch.randperm(len(indices))].to(device)  # layers must not rely on sorted input
    features = (torch.rand(len(indices), channels, dtype=torch.float64) * (1 - low) + low).to(device)
    return SparseTensor(features.requires_grad_(), indices, shape, batch_size)


def _at_sites(dense, indices):
    """``dense`` ``(B, C, *grid)`` read at ``indices`` ``(M, 1 + D)`` -> ``(M, C)``."""
    return dense.movedim(1, -1)[tuple(indices.long().unbind(1))]


def _scatter(values, indices, like):
    """``values`` ``(M, C)`` at ``indices`` in a zero grid shaped ``like`` ``(B, C, *grid)``."""
    return torch.zeros_like(like).movedim(1, -1).index_put(tuple(indices.long().unbind(1)), values).movedim(-1, 1)


def _reached(x, dense_op, kernel, *args, **kwargs):
    """Sites of the dense output that some input site reaches (the occupancy grid through
    ``dense_op`` with a ones kernel), sorted by (b, x, y, z)."""
    occupancy = x.replace_feature(torch.ones_like(x.features[:, :1])).dense().detach()
    ones = torch.ones((1, 1) + (kernel,) * x.ndim, dtype=occupancy.dtype, device=occupancy.device)
    return torch.nonzero(dense_op(occupancy, ones, None, *args, **kwargs)[:, 0] > 0)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kernel, stride, padding, dilation", [(3, 1, 0, 1), (2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2)])
def test_strided_and_submanifold_convs_equal_dense(device, ndim, kernel, stride, padding, dilation):
    x = _scene(device, ndim)
    conv = LAYERS["conv"][ndim](3, 4, kernel, stride, padding, dilation).to(device).double()
    y = conv(x)
    weight = conv.weight.movedim(-1, 1)  # (out, k..., in) -> (out, in, k...)
    want = DENSE_CONV[ndim](x.dense(), weight, conv.bias, stride, padding, dilation)
    assert y.spatial_shape == tuple(want.shape[2:])
    assert torch.equal(y.indices.long(), _reached(x, DENSE_CONV[ndim], kernel, stride, padding, dilation))
    torch.testing.assert_close(_at_sites(want, y.indices), y.features)
    # gradients through the sparse layer equal the dense layer's read at the sites
    grad = torch.randn_like(y.features)
    (y.features * grad).sum().backward()
    got_x, got_w = x.features.grad.clone(), conv.weight.grad.clone()
    x.features.grad = None
    dense_x = x.dense().detach().requires_grad_()
    dense_w = weight.detach().requires_grad_()
    (DENSE_CONV[ndim](dense_x, dense_w, None, stride, padding, dilation) * _scatter(grad, y.indices, want)).sum().backward()
    torch.testing.assert_close(got_x, _at_sites(dense_x.grad, x.indices))
    torch.testing.assert_close(got_w, dense_w.grad.movedim(1, -1))

    subm = LAYERS["subm"][ndim](3, 4, 3, dilation=dilation).to(device).double()
    z = subm(x)
    assert z.indices is x.indices
    dense = DENSE_CONV[ndim](x.dense(), subm.weight.movedim(-1, 1), subm.bias, padding=dilation, dilation=dilation)
    torch.testing.assert_close(z.features, _at_sites(dense, x.indices))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kernel, stride, padding, dilation",
                         [(2, 2, 0, 1), (3, 2, 1, 1), (3, 3, 2, 1), (2, 1, 2, 1), (3, 1, 1, 2), (1, 2, 0, 1)])
def test_transposed_conv_equals_conv_transpose(device, ndim, kernel, stride, padding, dilation):
    x = _scene(device, ndim)
    conv = LAYERS["transpose"][ndim](3, 4, kernel, stride, padding, dilation, indice_key="up").to(device).double()
    y = conv(x)
    # spconv's layout (out, k..., in) is ConvTranspose's (in, out, k...) permuted
    weight = conv.weight.movedim(-1, 0)
    want = DENSE_TRANSPOSE[ndim](x.dense(), weight, conv.bias, stride, padding, dilation=dilation)
    assert y.spatial_shape == tuple(want.shape[2:]) == tuple(
        conv_transpose_output_shape(x.spatial_shape, kernel, stride, padding, dilation))
    # the output sites are exactly the cells some input reaches, sorted by (b, x, y, z)
    assert torch.equal(y.indices.long(), _reached(x, DENSE_TRANSPOSE[ndim], kernel, stride, padding, dilation=dilation))
    torch.testing.assert_close(_at_sites(want, y.indices), y.features)
    grad = torch.randn_like(y.features)
    (y.features * grad).sum().backward()
    dense_x = x.dense().detach().requires_grad_()
    dense_w = weight.detach().requires_grad_()
    dense_out = DENSE_TRANSPOSE[ndim](dense_x, dense_w, None, stride, padding, dilation=dilation)
    (dense_out * _scatter(grad, y.indices, want)).sum().backward()
    torch.testing.assert_close(x.features.grad, _at_sites(dense_x.grad, x.indices))
    torch.testing.assert_close(conv.weight.grad, dense_w.grad.movedim(0, -1))
    # with the same indice_key an inverse conv maps back to the input's sites
    back = LAYERS["inverse"][ndim](4, 2, kernel, indice_key="up").to(device).double()(y)
    assert back.indices is x.indices and back.spatial_shape == x.spatial_shape


def test_transposed_map_of_an_empty_tensor_and_bad_sites():
    indices = torch.zeros(0, 4, dtype=torch.int32)
    out, pairs, offsets = sparse_transposed_kernel_map(indices, 1, [4, 4, 4], 2, 2)
    assert out.shape == (0, 4) and pairs.shape == (2, 0) and offsets.tolist() == [0] * 9
    with pytest.raises(ValueError, match=r"coordinates indices\[:, 2\] must be in \[0, spatial_shape\[1\]=4\), got range"):
        sparse_transposed_kernel_map(torch.tensor([[0, 1, 4, 0]], dtype=torch.int32), 1, [4, 4, 4], 2, 2)
    with pytest.raises(ValueError, match=r"batch ids \(indices\[:, 0\]\) must be in \[0, batch_size=1\)"):
        sparse_transposed_kernel_map(torch.tensor([[1, 1, 1, 1]], dtype=torch.int32), 1, [4, 4, 4], 2, 2)
    with pytest.raises(ValueError, match="indices contain a duplicate site"):
        sparse_transposed_kernel_map(torch.tensor([[0, 1, 1], [0, 1, 1]], dtype=torch.int32), 1, [4, 4], 2, 2)
    with pytest.raises(TypeError, match="indices must have dtype torch.int32"):
        sparse_transposed_kernel_map(torch.zeros(1, 4, dtype=torch.int64), 1, [4, 4, 4], 2)
    with pytest.raises(ValueError, match=r"spatial_shape must be an int or 2 ints \(x, y\)"):
        sparse_transposed_kernel_map(torch.zeros(1, 3, dtype=torch.int32), 1, [4, 4, 4], 2)
    with pytest.raises(ValueError, match=r"the output spatial shape \[-1, -1, -1\] would be empty"):
        sparse_transposed_kernel_map(torch.zeros(1, 4, dtype=torch.int32), 1, [1, 1, 1], 1, padding=1)


def test_transposed_conv_under_torch_compile():
    x = _scene("cpu", 3)
    conv = pnn.SparseConvTranspose3d(3, 4, 2, stride=2).double()

    def up(features, indices):
        y = conv(SparseTensor(features, indices, x.spatial_shape, x.batch_size))
        return y.features.relu(), y.indices

    compiled = torch.compile(up, fullgraph=True, backend="aot_eager")
    got, got_indices = compiled(x.features.detach(), x.indices)
    want, want_indices = up(x.features.detach(), x.indices)
    assert torch.equal(got_indices, want_indices)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kernel, stride, padding, dilation", [(2, None, 0, 1), (3, 2, 1, 1), (2, 1, 1, 2)])
def test_pools_equal_dense(device, ndim, kernel, stride, padding, dilation):
    x = _scene(device, ndim, low=0.1)  # positive: a dense max over empty cells (zeros) equals the sparse max
    pooled = LAYERS["max_pool"][ndim](kernel, stride, padding, dilation, indice_key="pool")(x)
    want = DENSE_MAX_POOL[ndim](x.dense(), kernel, stride if stride is not None else kernel, padding, dilation)
    torch.testing.assert_close(pooled.dense(), want)
    averaged = LAYERS["avg_pool"][ndim](kernel, stride, padding, dilation)(x)
    assert torch.equal(averaged.indices, pooled.indices)
    # the mean over the sites present in each window: the dense window sum over the dense site count
    window = torch.ones((1, 1) + (kernel,) * ndim, dtype=torch.float64, device=device)
    dense_sum = DENSE_CONV[ndim](x.dense().flatten(0, 1)[:, None], window, None, stride or kernel, padding, dilation)
    count = DENSE_CONV[ndim](x.replace_feature(torch.ones_like(x.features[:, :1])).dense(), window, None,
                             stride or kernel, padding, dilation)
    torch.testing.assert_close(averaged.features, _at_sites(dense_sum.unflatten(0, (x.batch_size, 3))[:, :, 0] / count,
                                                            averaged.indices))
    back = LAYERS["inverse"][ndim](3, 2, kernel, indice_key="pool").to(device).double()(pooled)
    assert back.indices is x.indices


def test_global_pools(device):
    x = _scene(device, 3, batch_size=3)
    keep = x.indices[:, 0] != 1  # scene 1 has no sites
    x = SparseTensor(x.features.detach()[keep].requires_grad_(), x.indices[keep], x.spatial_shape, 3)
    scenes = x.indices[:, 0].long()
    maxima = pnn.SparseGlobalMaxPool()(x)
    means = pnn.SparseGlobalAvgPool()(x)
    assert maxima.shape == means.shape == (3, 3)
    for b in (0, 2):
        torch.testing.assert_close(maxima[b], x.features[scenes == b].amax(0))
        torch.testing.assert_close(means[b], x.features[scenes == b].mean(0))
    assert maxima[1].tolist() == [0.0, 0.0, 0.0] and means[1].tolist() == [0.0, 0.0, 0.0]
    (maxima.sum() + means.sum()).backward()
    counts = torch.bincount(scenes, minlength=3).to(torch.float64)
    winners = (x.features == maxima[scenes]).to(torch.float64)
    torch.testing.assert_close(x.features.grad, winners + (1 / counts[scenes])[:, None])
    with pytest.raises(TypeError, match="SparseGlobalMaxPool expects a ppt.sparse.SparseTensor"):
        pnn.SparseGlobalMaxPool()(x.features)


def test_layers_check_the_grid_dimension():
    x2 = _scene("cpu", 2)
    with pytest.raises(ValueError, match=r"SubMConv3d expects a 3-D sparse tensor \(indices \(N, 4\)\), got a 2-D one"):
        pnn.SubMConv3d(3, 4, 3).double()(x2)
    with pytest.raises(ValueError, match=r"SparseMaxPool1d expects a 1-D sparse tensor"):
        pnn.SparseMaxPool1d(2)(x2)
    with pytest.raises(ValueError, match="SubMConv2d: kernel_size must be an int or 2 ints"):
        pnn.SubMConv2d(3, 4, (3, 3, 3))

    class SubMConv4d(SubMConv):
        ndim = 4

    with pytest.raises(ValueError, match="SubMConv4d: ppt's sparse layers support 1, 2 and 3 spatial dimensions, not 4"):
        SubMConv4d(3, 4, 3)
    assert pnn.SubMConv2d(3, 4, 3).weight.shape == (4, 3, 3, 3)  # spconv's (out, kx, ky, in)
