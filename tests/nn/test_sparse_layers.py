"""SparseTensor and the sparse convolution layers: spconv semantics, kernel-map cache, state_dicts."""

import importlib.util

import pytest
import torch

import ppt.nn as pnn
from ppt.ops import _reference as ref
from ppt.sparse import SparseTensor

HAS_SPCONV = importlib.util.find_spec("spconv") is not None
needs_spconv = pytest.mark.skipif(not HAS_SPCONV, reason="spconv (CPU wheel, in the `test` and `bench` extras) is not installed")


def _scene(device, n=800, batch_size=2, shape=(14, 12, 10), channels=5, dtype=torch.float32):
    coords = torch.cat([torch.randint(0, batch_size, (n, 1)), torch.randint(0, min(shape), (n, 3))], 1)
    indices = torch.unique(coords, dim=0).int()
    indices = indices[torch.randperm(len(indices))].to(device)  # layers must not rely on sorted input
    features = torch.randn(len(indices), channels, dtype=torch.float64).to(device=device, dtype=dtype)
    return SparseTensor(features, indices, list(shape), batch_size)


def _sorted(indices, features):
    key = ((indices[:, 0].long() * 4096 + indices[:, 1]) * 4096 + indices[:, 2]) * 4096 + indices[:, 3]
    order = torch.argsort(key)
    return indices[order], features[order]


def test_sparse_tensor_defaults_dense_and_replace_feature(device):
    indices = torch.tensor([[0, 1, 2, 3], [1, 0, 0, 4]], dtype=torch.int32, device=device)
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    x = SparseTensor(features, indices)
    assert x.spatial_shape == (2, 3, 5) and x.batch_size == 2
    dense = x.dense()
    assert dense.shape == (2, 2, 2, 3, 5)
    assert dense[0, :, 1, 2, 3].tolist() == [1.0, 2.0] and dense[1, :, 0, 0, 4].tolist() == [3.0, 4.0]
    assert dense.sum().item() == 10.0
    y = x.replace_feature(features * 2)
    assert y.indices is x.indices and y.cache is x.cache and y.spatial_shape == x.spatial_shape


def test_sparse_tensor_bad_input():
    with pytest.raises(TypeError, match="indices must have dtype torch.int32"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"features must be \(N, C\) and indices \(N, 4\)"):
        SparseTensor(torch.zeros(3, 3), torch.zeros(2, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"features must be \(N, C\) and indices \(N, 4\)"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 5, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"spatial_shape must be an int or 3 ints \(x, y, z\), got \[4, 4\]"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.int32), [4, 4])
    with pytest.raises(ValueError, match=r"spatial_shape must be an int or 2 ints \(x, y\), got \[4, 4, 4\]"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int32), [4, 4, 4])
    with pytest.raises(TypeError, match="SparseTensor: spatial_shape must be an int, got float 4.5"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.int32), [4, 4.5, 4])
    with pytest.raises(ValueError, match=r"SparseTensor: spatial_shape entries must be >= 1, got \[4, 0, 4\]"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.int32), [4, 0, 4])
    with pytest.raises(TypeError, match="SparseTensor: batch_size must be an int, got float 2.0"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.int32), [4, 4, 4], 2.0)
    with pytest.raises(ValueError, match="SparseTensor: batch_size must be >= 1, got 0"):
        SparseTensor(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.int32), [4, 4, 4], 0)


@pytest.mark.parametrize("layer", ["subm3", "subm5", "down_k2s2", "down_k3s2p1"])
def test_layers_match_dense_reference(layer, device):
    x = _scene(device, dtype=torch.float64)
    make = {
        "subm3": lambda: pnn.SubMConv3d(5, 7, 3),
        "subm5": lambda: pnn.SubMConv3d(5, 7, 5, bias=False),
        "down_k2s2": lambda: pnn.SparseConv3d(5, 7, 2, stride=2),
        "down_k3s2p1": lambda: pnn.SparseConv3d(5, 7, 3, stride=2, padding=1),
    }[layer]
    conv = make().to(device=device, dtype=torch.float64)
    y = conv(x)
    want, want_indices = ref.sparse_conv_dense(x.features, x.indices, x.batch_size, x.spatial_shape, conv.weight,
                                               conv.stride, conv.padding, conv.dilation, isinstance(conv, pnn.SubMConv3d))
    if conv.bias is not None:
        want = want + conv.bias
    got_indices, got = _sorted(y.indices, y.features)
    want_indices, want = _sorted(want_indices, want)
    torch.testing.assert_close(got_indices, want_indices, rtol=0, atol=0)
    torch.testing.assert_close(got, want)
    if isinstance(conv, pnn.SparseConv3d):
        assert list(y.spatial_shape) == [(n + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1 for n in x.spatial_shape]


def test_kernel_maps_are_cached_per_key_and_reused_by_inverse(device):
    x = _scene(device)
    first, second = pnn.SubMConv3d(5, 5, 3, indice_key="subm1"), pnn.SubMConv3d(5, 5, 3, indice_key="subm1")
    down, up = pnn.SparseConv3d(5, 6, 2, stride=2, indice_key="down1"), pnn.SparseInverseConv3d(6, 5, 2, indice_key="down1")
    for module in (first, second, down, up):
        module.to(device)
    y = first(x)
    kmap = x.cache.get_or_build("subm1", x.indices, x.spatial_shape, x.batch_size, (3, 3, 3), (1, 1, 1), (0, 0, 0),
                                (1, 1, 1), True)
    z = second(y)
    assert z.indices is x.indices and x.cache.get_or_build(
        "subm1", y.indices, y.spatial_shape, y.batch_size, (3, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1), True) is kmap
    coarse = down(z)
    restored = up(coarse)
    assert restored.indices is x.indices and restored.spatial_shape == x.spatial_shape
    strided = x.cache.find("down1")
    expected = ref.sparse_conv(coarse.features, up.weight.reshape(5, -1, 6), strided.pairs.flip(0), strided.pair_offsets,
                               len(x.indices)) + up.bias
    torch.testing.assert_close(restored.features, expected)


def test_empty_sparse_tensor_flows_through(device):
    x = SparseTensor(torch.zeros(0, 4, device=device), torch.zeros(0, 4, dtype=torch.int32, device=device), [6, 6, 6], 1)
    net = [pnn.SubMConv3d(4, 8, 3), pnn.SparseConv3d(8, 8, 2, stride=2, indice_key="d"), pnn.SparseInverseConv3d(8, 3, 2, indice_key="d")]
    y = x
    for module in net:
        y = module.to(device)(y)
    assert y.features.shape == (0, 3) and y.spatial_shape == (6, 6, 6)
    y.features.sum().backward()
    assert net[0].weight.grad is not None and not net[0].weight.grad.any()


def test_layer_bad_input(device):
    x = _scene(device)
    with pytest.raises(ValueError, match="expected 4 input channels"):
        pnn.SubMConv3d(4, 2, 3).to(device)(x)
    with pytest.raises(ValueError, match="kernel_size entries must be >= 1"):
        pnn.SubMConv3d(5, 2, 0)
    with pytest.raises(ValueError, match="SubMConv3d needs odd kernel_size"):
        pnn.SubMConv3d(5, 2, 2)
    with pytest.raises(ValueError, match="SparseInverseConv3d requires the indice_key"):
        pnn.SparseInverseConv3d(5, 2, 3, indice_key=None)
    with pytest.raises(KeyError, match="no SparseConv3d with indice_key='missing'"):
        pnn.SparseInverseConv3d(5, 2, 3, indice_key="missing").to(device)(x)
    with pytest.raises(TypeError, match="expects a ppt.sparse.SparseTensor"):
        pnn.SubMConv3d(5, 2, 3)(x.features)
    duplicate = SparseTensor(torch.zeros(2, 5, device=device), torch.zeros(2, 4, dtype=torch.int32, device=device), [2, 2, 2], 1)
    with pytest.raises(RuntimeError, match="duplicate site"):
        pnn.SubMConv3d(5, 2, 3).to(device)(duplicate)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: pnn.SubMConv3d(5, 2, 2.5), TypeError, "SubMConv3d: kernel_size must be an int or 3 ints"),
        (lambda: pnn.SubMConv3d(5, 2, (3, 3.0, 3)), TypeError, "SubMConv3d: kernel_size must be an int, got float 3.0"),
        (lambda: pnn.SubMConv3d(5, 2, True), TypeError, "SubMConv3d: kernel_size must be an int or 3 ints"),
        (lambda: pnn.SparseConv3d(5, 2, 3, stride=1.5), TypeError, "SparseConv3d: stride must be an int or 3 ints"),
        (lambda: pnn.SparseConv3d(5, 2, 3, stride=0), ValueError, r"SparseConv3d: stride entries must be >= 1"),
        (lambda: pnn.SparseConv3d(5, 2, 3, padding=-1), ValueError, r"SparseConv3d: padding entries must be >= 0"),
        (lambda: pnn.SparseConv3d(5, 2, 3, padding=0.5), TypeError, "SparseConv3d: padding must be an int or 3 ints"),
        (lambda: pnn.SparseConv3d(5, 2, 3, dilation=(1, 1)), ValueError, r"SparseConv3d: dilation must be an int or 3 ints"),
        (lambda: pnn.SparseConv3d(5, 2, 3, dilation="1"), TypeError, "SparseConv3d: dilation must be an int or 3 ints"),
        (lambda: pnn.SubMConv3d(5.0, 2, 3), TypeError, "SubMConv3d: in_channels must be an int, got float 5.0"),
        (lambda: pnn.SubMConv3d(5, -2, 3), ValueError, "SubMConv3d: out_channels must be >= 1, got -2"),
        (lambda: pnn.SubMConv3d(5, 2, 3, bias=1), TypeError, "SubMConv3d: bias must be a bool, got int 1"),
        (lambda: pnn.SparseInverseConv3d(5, 2, 2.0, indice_key="d"), TypeError, "SparseInverseConv3d: kernel_size"),
        (lambda: pnn.SparseMaxPool3d(2.0), TypeError, "SparseMaxPool3d: kernel_size must be an int or 3 ints"),
        (lambda: pnn.SparseAvgPool3d(2, stride=-1), ValueError, r"SparseAvgPool3d: stride entries must be >= 1"),
        (lambda: pnn.SparseMaxPool3d(2, dilation=1.0), TypeError, "SparseMaxPool3d: dilation must be an int or 3 ints"),
    ],
)
def test_layer_constructors_reject_non_integer_geometry(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_spconv_layout_state_dict_loads_and_matches_dense(device):
    # A state_dict in spconv 2.x layout: weight (out, kx, ky, kz, in), bias (out,).
    torch.manual_seed(3)
    state = {"weight": torch.randn(6, 3, 3, 3, 5, dtype=torch.float64), "bias": torch.randn(6, dtype=torch.float64)}
    conv = pnn.SubMConv3d(5, 6, 3, indice_key="stem").double()
    conv.load_state_dict(state)
    conv.to(device)
    x = _scene(device, dtype=torch.float64)
    y = conv(x)
    dense = torch.nn.functional.conv3d(x.dense(), state["weight"].to(device).permute(0, 4, 1, 2, 3), state["bias"].to(device), padding=1)
    i = x.indices.long()
    torch.testing.assert_close(y.features, dense[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]])


class _SpUNetBlock(torch.nn.Module):
    """SubM stem, residual SubM pair, k2s2 down, SubM, inverse up with skip: SpUNet's building blocks."""

    def __init__(self):
        super().__init__()
        self.stem = pnn.SubMConv3d(4, 16, 5, bias=False, indice_key="stem")
        self.res1 = pnn.SubMConv3d(16, 16, 3, indice_key="subm1")
        self.res2 = pnn.SubMConv3d(16, 16, 3, indice_key="subm1")
        self.down = pnn.SparseConv3d(16, 32, 2, stride=2, bias=False, indice_key="spconv1")
        self.mid = pnn.SubMConv3d(32, 32, 3, indice_key="subm2")
        self.up = pnn.SparseInverseConv3d(32, 16, 2, indice_key="spconv1", bias=False)
        self.head = torch.nn.Linear(32, 3)

    def forward(self, features, indices):
        x = SparseTensor(features, indices, [16, 16, 16], 2)
        x = self.stem(x)
        x = x.replace_feature(x.features.relu())
        y = self.res2(self.res1(x).replace_feature(self.res1(x).features.relu()))
        x = x.replace_feature(x.features + y.features)
        coarse = self.mid(self.down(x))
        up = self.up(coarse.replace_feature(coarse.features.relu()))
        return self.head(torch.cat([up.features, x.features], 1))


def test_torch_compile_spunet_block(device):
    torch.manual_seed(0)
    block = _SpUNetBlock().to(device)
    coords = torch.unique(torch.cat([torch.randint(0, 2, (900, 1)), torch.randint(0, 16, (900, 3))], 1), dim=0).int().to(device)
    features = torch.randn(len(coords), 4, device=device, requires_grad=True)
    eager = block(features, coords)
    eager.square().sum().backward()
    eager_grads = [p.grad.clone() for p in block.parameters()] + [features.grad.clone()]
    block.zero_grad()
    features.grad = None
    compiled = torch.compile(block, dynamic=True)
    out = compiled(features, coords)
    out.square().sum().backward()
    torch.testing.assert_close(out, eager)
    for a, b in zip([p.grad for p in block.parameters()] + [features.grad], eager_grads):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# spconv 2.x as the oracle (CPU wheel; optional)


def _spconv():
    import spconv.pytorch as spconv_torch
    from spconv.pytorch import ops as spconv_ops

    # spconv 2.3.8's CPU backward asks for a CUDA stream; with a CPU-only torch it must get 0.
    spconv_ops.get_current_stream = lambda: 0
    return spconv_torch


SPCONV_LAYERS = {
    "subm_k3": lambda m: m.SubMConv3d(5, 7, 3, indice_key="a"),
    "subm_k5": lambda m: m.SubMConv3d(5, 7, 5),
    "subm_k3_dilated": lambda m: m.SubMConv3d(5, 7, 3, dilation=2),
    "conv_k2s2": lambda m: m.SparseConv3d(5, 7, 2, stride=2),
    "conv_k3s2p1": lambda m: m.SparseConv3d(5, 7, 3, stride=2, padding=1),
    # kernel volume 1: spconv computes features @ weight.view(in, out) (its issue #450)
    "subm_k1": lambda m: m.SubMConv3d(5, 7, 1),
    "subm_k1_no_bias": lambda m: m.SubMConv3d(5, 7, 1, bias=False),
    "conv_k1s1": lambda m: m.SparseConv3d(5, 7, 1),
    # ... but kernel volume 1 with a stride takes spconv's ordinary path and layout
    "conv_k1s2": lambda m: m.SparseConv3d(5, 7, 1, stride=2),
}


@needs_spconv
@pytest.mark.parametrize("layer", list(SPCONV_LAYERS))
def test_layers_equal_spconv_cpu(layer):
    spconv_torch = _spconv()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv 2.3.8's CPU path races with more than one thread
    try:
        theirs = SPCONV_LAYERS[layer](spconv_torch)
        ours = SPCONV_LAYERS[layer](pnn)
        ours.load_state_dict(theirs.state_dict())
        x = _scene("cpu")
        features_theirs = x.features.clone().requires_grad_()
        features_ours = x.features.clone().requires_grad_()
        y_theirs = theirs(spconv_torch.SparseConvTensor(features_theirs, x.indices, list(x.spatial_shape), x.batch_size))
        y_ours = ours(x.replace_feature(features_ours))
        assert list(y_theirs.spatial_shape) == list(y_ours.spatial_shape)
        their_indices, their_features = _sorted(y_theirs.indices, y_theirs.features)
        our_indices, our_features = _sorted(y_ours.indices, y_ours.features)
        torch.testing.assert_close(our_indices, their_indices, rtol=0, atol=0)
        torch.testing.assert_close(our_features, their_features, rtol=1e-5, atol=1e-5)
        # Same upstream gradient per site (matched through the sorted order) on both sides.
        grad_sorted = torch.randn_like(our_features)
        _, order_theirs = _sorted(y_theirs.indices, torch.arange(len(y_theirs.indices)))
        _, order_ours = _sorted(y_ours.indices, torch.arange(len(y_ours.indices)))
        grad_theirs, grad_ours = torch.empty_like(grad_sorted), torch.empty_like(grad_sorted)
        grad_theirs[order_theirs], grad_ours[order_ours] = grad_sorted, grad_sorted
        y_theirs.features.backward(grad_theirs)
        y_ours.features.backward(grad_ours)
        torch.testing.assert_close(features_ours.grad, features_theirs.grad, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(threads)


@needs_spconv
def test_inverse_conv_equals_spconv_cpu():
    spconv_torch = _spconv()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = _scene("cpu")
        modules = {}
        for name, lib in (("theirs", spconv_torch), ("ours", pnn)):
            modules[name] = (lib.SparseConv3d(5, 6, 3, stride=2, padding=1, indice_key="d"),
                             lib.SparseInverseConv3d(6, 4, 3, indice_key="d"))
        for ours, theirs in zip(modules["ours"], modules["theirs"]):
            ours.load_state_dict(theirs.state_dict())
        down, up = modules["theirs"]
        y_theirs = up(down(spconv_torch.SparseConvTensor(x.features, x.indices, list(x.spatial_shape), x.batch_size)))
        down, up = modules["ours"]
        y_ours = up(down(x))
        torch.testing.assert_close(y_ours.indices, y_theirs.indices, rtol=0, atol=0)
        torch.testing.assert_close(y_ours.features, y_theirs.features, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(threads)


def test_cache_keys_on_geometry_without_indice_key_and_rebuilds_for_new_sites(device):
    x = _scene(device)
    cache = x.cache
    args = (x.indices, x.spatial_shape, x.batch_size)
    plain = cache.get_or_build(None, *args, (3, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1), True)
    assert cache.get_or_build(None, *args, (3, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1), True) is plain
    dilated = cache.get_or_build(None, *args, (3, 3, 3), (1, 1, 1), (0, 0, 0), (2, 2, 2), True)
    assert dilated is not plain and dilated.dilation == (2, 2, 2) and plain.dilation == (1, 1, 1)
    # Same indice_key on different sites: the stale map must not be reused.
    keyed = cache.get_or_build("k", *args, (3, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1), True)
    fewer = x.indices[: len(x.indices) // 2].clone()
    rebuilt = cache.get_or_build("k", fewer, x.spatial_shape, x.batch_size, (3, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1), True)
    assert rebuilt is not keyed and rebuilt.in_indices is fewer
    assert int(rebuilt.pairs.max()) < len(fewer)
