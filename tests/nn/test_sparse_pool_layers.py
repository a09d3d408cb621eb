"""SparseMaxPool3d / SparseAvgPool3d: spconv semantics, kernel-map cache, spconv 2.3.8 as the oracle."""

import pytest
import torch
from test_sparse_layers import _scene, _sorted, _spconv, needs_spconv
from torch import nn

import ppt.nn as pnn
from ppt.ops import _reference as ref
from ppt.ops import conv_output_shape, sparse_kernel_map
from ppt.sparse import SparseTensor

# name -> (kernel_size, stride, padding, dilation); stride None is spconv's default (= kernel_size)
GEOMETRIES = {
    "k2": (2, None, 0, 1),
    "k3s2p1": (3, 2, 1, 1),
    "k3s1": (3, 1, 0, 1),
    "k2x3x1_s1x2x1": ((2, 3, 1), (1, 2, 1), 0, 1),
    "k2s1d2": (2, 1, 0, 2),
}
POOLS = {"max": (pnn.SparseMaxPool3d, ref.sparse_max_pool), "avg": (pnn.SparseAvgPool3d, ref.sparse_avg_pool)}


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("kind", list(POOLS))
def test_pool_layers_match_reference(kind, geometry, device):
    layer_type, reference = POOLS[kind]
    kernel, stride, padding, dilation = GEOMETRIES[geometry]
    layer = layer_type(kernel, stride, padding, dilation)
    x = _scene(device, dtype=torch.float64)
    features = x.features.clone().requires_grad_()
    y = layer(x.replace_feature(features))
    # The output sites and grid of a SparseConv3d with the same geometry.
    out_indices, pairs, offsets = sparse_kernel_map(x.indices, x.batch_size, x.spatial_shape, layer.kernel_size,
                                                    layer.stride, layer.padding, layer.dilation)
    assert torch.equal(y.indices, out_indices) and y.batch_size == x.batch_size and y.cache is x.cache
    assert list(y.spatial_shape) == conv_output_shape(x.spatial_shape, kernel, layer.stride, padding, dilation)
    reference_features = x.features.clone().requires_grad_()
    want = reference(reference_features, pairs, offsets, len(out_indices))
    want = want[0] if kind == "max" else want
    torch.testing.assert_close(y.features, want)
    grad = torch.randn_like(want)
    y.features.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(features.grad, reference_features.grad)


def test_pool_defaults_and_repr():
    pool = pnn.SparseMaxPool3d(2)
    assert pool.kernel_size == pool.stride == (2, 2, 2) and pool.padding == (0, 0, 0) and pool.dilation == (1, 1, 1)
    assert pnn.SparseAvgPool3d((1, 2, 3), stride=1).stride == (1, 1, 1)
    assert isinstance(pool, pnn.SparseModule)
    assert repr(pnn.SparseAvgPool3d(3, 2, 1, indice_key="p")) == (
        "SparseAvgPool3d(kernel_size=(3, 3, 3), stride=(2, 2, 2), padding=(1, 1, 1), dilation=(1, 1, 1), "
        "indice_key='p')")


def test_inverse_conv_maps_a_pool_back(device):
    # As in spconv, a pool's indice_key names a strided map a SparseInverseConv3d can run backwards.
    x = _scene(device)
    pool = pnn.SparseMaxPool3d(2, indice_key="pool1")
    up = pnn.SparseInverseConv3d(5, 3, 2, indice_key="pool1").to(device)
    pooled = pool(x)
    y = up(pooled)
    assert y.indices is x.indices and y.spatial_shape == x.spatial_shape and y.features.shape == (len(x.indices), 3)
    # Reused, not rebuilt: a second pool with the key on the same input takes the cached map.
    assert pnn.SparseAvgPool3d(2, indice_key="pool1")(x).indices is pooled.indices


def test_pools_in_sparse_sequential(device):
    x = _scene(device)
    net = pnn.SparseSequential(pnn.SubMConv3d(5, 8, 3), nn.BatchNorm1d(8), nn.ReLU(), pnn.SparseMaxPool3d(2),
                               pnn.SparseAvgPool3d(3, 2, 1)).to(device)
    y = net(x)
    first = sparse_kernel_map(x.indices, x.batch_size, x.spatial_shape, 2, 2)[0]
    second = sparse_kernel_map(first, x.batch_size, conv_output_shape(x.spatial_shape, 2, 2), 3, 2, 1)[0]
    assert torch.equal(y.indices, second) and y.features.shape == (len(second), 8)
    y.features.sum().backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_empty_tensor_flows_through_pools(device):
    x = SparseTensor(torch.zeros(0, 4, device=device, requires_grad=True),
                     torch.zeros(0, 4, dtype=torch.int32, device=device), [6, 6, 6], 1)
    y = pnn.SparseAvgPool3d(2)(pnn.SparseMaxPool3d(3, 1, 1)(x))
    assert y.features.shape == (0, 4) and y.spatial_shape == (3, 3, 3)
    y.features.sum().backward()
    assert x.features.grad.shape == (0, 4)


def test_pool_layer_bad_input(device):
    with pytest.raises(ValueError, match="kernel_size entries must be >= 1"):
        pnn.SparseMaxPool3d(0)
    with pytest.raises(ValueError, match="kernel_size must be an int or 3 ints"):
        pnn.SparseMaxPool3d((2, 2))
    with pytest.raises(ValueError, match="stride entries must be >= 1"):
        pnn.SparseAvgPool3d(2, stride=0)
    with pytest.raises(ValueError, match="padding entries must be >= 0"):
        pnn.SparseAvgPool3d(2, padding=-1)
    with pytest.raises(ValueError, match="dilation entries must be >= 1"):
        pnn.SparseMaxPool3d(2, dilation=0)
    x = _scene(device)
    with pytest.raises(TypeError, match="SparseMaxPool3d expects a ppt.sparse.SparseTensor, got Tensor"):
        pnn.SparseMaxPool3d(2)(x.features)
    with pytest.raises(RuntimeError, match="output spatial shape would be empty"):
        pnn.SparseAvgPool3d(20)(x)


# ---------------------------------------------------------------------------------------------
# spconv 2.x as the oracle (CPU wheel; optional). spconv's CPU max pool starts every output at 0
# (a window of negative values pools to 0) and gives a tie's gradient to every tied input, so the
# comparison uses positive, tie-free features; docs/ops.md lists both differences.


def _site_gradient(indices, channels):
    """An upstream gradient that depends on the site only, so outputs in different row orders get the same."""
    key = ((indices[:, 0].double() * 64 + indices[:, 1]) * 64 + indices[:, 2]) * 64 + indices[:, 3]
    return torch.sin(key[:, None] * torch.arange(1, channels + 1, dtype=torch.float64)).float()


@needs_spconv
@pytest.mark.parametrize("geometry", ["k2", "k3s2p1", "k3s1", "k2x3x1_s1x2x1"])
def test_max_pool_equals_spconv_cpu(geometry):
    spconv_torch = _spconv()
    kernel, stride, padding, dilation = GEOMETRIES[geometry]
    x = _scene("cpu")
    x = x.replace_feature(x.features.abs() + 0.1)
    features_theirs = x.features.clone().requires_grad_()
    features_ours = x.features.clone().requires_grad_()
    theirs = spconv_torch.SparseMaxPool3d(kernel, stride, padding, dilation)
    y_theirs = theirs(spconv_torch.SparseConvTensor(features_theirs, x.indices, list(x.spatial_shape), x.batch_size))
    y_ours = pnn.SparseMaxPool3d(kernel, stride, padding, dilation)(x.replace_feature(features_ours))
    assert list(y_theirs.spatial_shape) == list(y_ours.spatial_shape)
    their_indices, their_features = _sorted(y_theirs.indices, y_theirs.features)
    our_indices, our_features = _sorted(y_ours.indices, y_ours.features)
    torch.testing.assert_close(our_indices, their_indices, rtol=0, atol=0)
    torch.testing.assert_close(our_features, their_features, rtol=0, atol=0)
    y_theirs.features.backward(_site_gradient(y_theirs.indices, y_theirs.features.shape[1]))
    y_ours.features.backward(_site_gradient(y_ours.indices, y_ours.features.shape[1]))
    torch.testing.assert_close(features_ours.grad, features_theirs.grad, rtol=0, atol=0)


@needs_spconv
def test_max_pool_then_inverse_conv_equals_spconv_cpu():
    spconv_torch = _spconv()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv 2.3.8's CPU convolution races with more than one thread
    try:
        x = _scene("cpu")
        x = x.replace_feature(x.features.abs() + 0.1)
        outputs = {}
        up_theirs = spconv_torch.SparseInverseConv3d(5, 4, 3, indice_key="p")
        up_ours = pnn.SparseInverseConv3d(5, 4, 3, indice_key="p")
        up_ours.load_state_dict(up_theirs.state_dict())
        for name, lib, up, tensor in (
            ("theirs", spconv_torch, up_theirs, spconv_torch.SparseConvTensor(x.features, x.indices, list(x.spatial_shape),
                                                                             x.batch_size)),
            ("ours", pnn, up_ours, x),
        ):
            outputs[name] = up(lib.SparseMaxPool3d(3, 2, 1, indice_key="p")(tensor))
        torch.testing.assert_close(outputs["ours"].indices, outputs["theirs"].indices, rtol=0, atol=0)
        torch.testing.assert_close(outputs["ours"].features, outputs["theirs"].features, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(threads)
