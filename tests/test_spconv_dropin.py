"""``ppt.spconv`` as a drop-in for ``spconv.pytorch``: one spconv-style UNet file, built on either
library from one state_dict, gives the same logits and gradients (float64, spconv 2.3.8 CPU)."""

import importlib.util
from collections import OrderedDict

import pytest
import torch
from torch import nn

import ppt.spconv
from ppt.bench.spconv_reference import import_spconv

needs_spconv = pytest.mark.skipif(importlib.util.find_spec("spconv") is None,
                                  reason="spconv (CPU wheel, in the `test` extra) is not installed")


def build_unet(spconv, in_channels=4, num_classes=5, enc_mode=False):
    """A Pointcept-SpUNet-style network written once against the spconv API."""

    class BasicBlock(spconv.SparseModule):
        def __init__(self, cin, cout, indice_key):
            super().__init__()
            self.proj = (spconv.SparseSequential(nn.Identity()) if cin == cout else
                         spconv.SparseSequential(spconv.SubMConv3d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout)))
            self.conv1 = spconv.SubMConv3d(cin, cout, 3, padding=1, bias=False, indice_key=indice_key)
            self.bn1 = nn.BatchNorm1d(cout)
            self.conv2 = spconv.SubMConv3d(cout, cout, 3, padding=1, bias=False, indice_key=indice_key)
            self.bn2 = nn.BatchNorm1d(cout)

        def forward(self, x):
            out = self.conv1(x)
            out = out.replace_feature(torch.relu(self.bn1(out.features)))
            out = self.conv2(out)
            out = out.replace_feature(self.bn2(out.features))
            return out.replace_feature(torch.relu(out.features + self.proj(x).features))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = spconv.SparseSequential(
                spconv.SubMConv3d(in_channels, 8, 5, padding=1, bias=False, indice_key="stem"),
                nn.BatchNorm1d(8), nn.ReLU())
            self.down = spconv.SparseSequential(
                spconv.SparseConv3d(8, 16, 2, stride=2, bias=False, indice_key="spconv1"), nn.BatchNorm1d(16), nn.ReLU())
            self.enc = spconv.SparseSequential(OrderedDict(
                [("block0", BasicBlock(16, 16, "subm1")), ("block1", BasicBlock(16, 16, "subm1"))]))
            self.up = spconv.SparseSequential(
                spconv.SparseInverseConv3d(16, 8, 2, indice_key="spconv1", bias=False), nn.BatchNorm1d(8), nn.ReLU())
            self.dec = spconv.SparseSequential(BasicBlock(16, 8, "subm0"))
            self.final = spconv.SubMConv3d(16 if enc_mode else 8, num_classes, 1, padding=1, bias=True)

        def forward(self, features, indices):
            x = spconv.SparseConvTensor(features, indices, [14, 14, 14], 2)
            skip = self.stem(x)
            x = self.enc(self.down(skip))
            if not enc_mode:
                x = self.up(x)
                x = x.replace_feature(torch.cat([x.features, skip.features], 1))
                x = self.dec(x)
            x = self.final(x)
            if enc_mode:  # one row per scene, carried by the sparse tensor as Pointcept's encoder mode does
                scenes = x.indices[:, 0].long()
                pooled = torch.zeros(2, x.features.shape[1], dtype=x.features.dtype).index_add_(0, scenes, x.features)
                x = x.replace_feature(pooled / torch.bincount(scenes, minlength=2)[:, None])
            return x.features

    return UNet()


@needs_spconv
@pytest.mark.parametrize("enc_mode", [False, True])
def test_spconv_style_unet_equals_spconv(enc_mode, single_thread):  # spconv's CPU path races on more threads
    spconv_torch = import_spconv()
    torch.manual_seed(0)
    theirs = build_unet(spconv_torch, enc_mode=enc_mode).double()
    ours = build_unet(ppt.spconv, enc_mode=enc_mode).double()
    ours.load_state_dict(theirs.state_dict())
    coords = torch.cat([torch.randint(0, 2, (600, 1)), torch.randint(0, 14, (600, 3))], 1)
    indices = torch.unique(coords, dim=0).int()  # sorted: spconv's inverse conv returns its input order
    features = torch.randn(len(indices), 4, dtype=torch.float64)
    results = []
    for model in (theirs, ours):
        inputs = features.clone().requires_grad_()
        logits = model(inputs, indices)
        logits.backward(torch.linspace(-1, 1, logits.numel(), dtype=torch.float64).view_as(logits))
        results.append((logits, inputs.grad, {n: p.grad for n, p in model.named_parameters()}))
    (want, want_grad, want_params), (got, got_grad, got_params) = results
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-9, atol=1e-9)
    for name in want_params:
        torch.testing.assert_close(got_params[name], want_params[name], rtol=1e-9, atol=1e-9, msg=name)


def test_sparse_sequential_routes_and_checks_rows():
    x = ppt.spconv.SparseConvTensor(torch.randn(3, 2), torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]],
                                                                    dtype=torch.int32))
    block = ppt.spconv.SparseSequential(ppt.spconv.SubMConv3d(2, 4, 3), nn.ReLU(), ppt.spconv.SparseIdentity())
    y = block(x)
    assert isinstance(y, ppt.spconv.SparseConvTensor) and y.shape == (3, 4) and bool((y.features >= 0).all())
    pooled = y.replace_feature(y.features[:2])  # accepted, as spconv does
    with pytest.raises(ValueError, match="SubMConv3d: the SparseTensor has 2 feature rows but 3 sites"):
        ppt.spconv.SubMConv3d(4, 4, 3)(pooled)
    with pytest.raises(ValueError, match="groups must be 1"):
        ppt.spconv.SubMConv3d(4, 4, 3, groups=2)
    dense = torch.zeros(1, 3, 3, 3, 2)
    dense[0, 1, 2, 0] = torch.tensor([1.0, 0.0])
    sparse = ppt.spconv.SparseConvTensor.from_dense(dense)
    assert sparse.indices.tolist() == [[0, 1, 2, 0]] and sparse.features.tolist() == [[1.0, 0.0]]
    assert torch.equal(sparse.dense(channels_first=False), dense)


# ---------------------------------------------------------------------------------------------
# the rest of spconv's surface: 1-/2-D layers, transposed conv, global pools, algo, grid, tables


def _sites(ndim, n, extent, batch_size=2):
    coords = torch.cat([torch.randint(0, batch_size, (n, 1)), torch.randint(0, extent, (n, ndim))], 1)
    return torch.unique(coords, dim=0).int()


def build_bev_net(spconv):
    """A BEV-detection-style 2-D backbone (SubM, strided, pooled and transposed stages, a table join)."""
    return spconv.SparseSequential(
        # first, on the positive inputs: spconv's CPU max pool starts at 0 and splits ties (docs/spconv.md)
        spconv.SparseMaxPool2d(3, 2, padding=1, indice_key="pool"),
        spconv.SubMConv2d(3, 8, 3, indice_key="subm0", bias=False, algo=spconv.ConvAlgo.Native), nn.BatchNorm1d(8),
        nn.ReLU(),
        spconv.SparseConv2d(8, 16, 3, 2, padding=1, indice_key="down", algo=spconv.ConvAlgo.Native),
        spconv.SubMConv2d(16, 16, 3, indice_key="subm1"),
        spconv.SparseConvTranspose2d(16, 8, 2, 2, bias=True),
        spconv.SparseConv2d(8, 4, 3, padding=1),
    )


@needs_spconv
def test_2d_backbone_and_transposed_conv_equal_spconv(single_thread):  # spconv's CPU path races on more threads
    spconv_torch = import_spconv()
    theirs = build_bev_net(spconv_torch).double()
    ours = build_bev_net(ppt.spconv).double()
    ours.load_state_dict(theirs.state_dict())
    indices = _sites(2, 500, 30)
    features = torch.rand(len(indices), 3, dtype=torch.float64) + 0.1
    results = []
    for library, model in ((spconv_torch, theirs), (ppt.spconv, ours)):
        inputs = features.clone().requires_grad_()
        out = model(library.SparseConvTensor(inputs, indices, [30, 30], 2)).dense()  # strided rows differ in order
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out))
        results.append((out, inputs.grad, {n: p.grad for n, p in model.named_parameters()}))
    (want, want_grad, want_params), (got, got_grad, got_params) = results
    assert got.shape == want.shape == (2, 4, 16, 16)  # 30 -> 15 (pool) -> 8 (stride 2) -> 16 (transposed)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-9, atol=1e-9)
    for name in want_params:
        torch.testing.assert_close(got_params[name], want_params[name], rtol=1e-9, atol=1e-9, msg=name)
    # 3-D transposed convolution with padding, and a 1-D strided one
    for make, ndim, extent in ((lambda lib: lib.SparseConvTranspose3d(3, 4, 3, 2, padding=1), 3, 10),
                               (lambda lib: lib.SparseConv1d(3, 4, 3, 2), 1, 60)):
        theirs, ours = make(spconv_torch).double(), make(ppt.spconv).double()
        ours.load_state_dict(theirs.state_dict())
        indices = _sites(ndim, 300, extent)
        features = torch.randn(len(indices), 3, dtype=torch.float64)
        want = theirs(spconv_torch.SparseConvTensor(features, indices, [extent] * ndim, 2))
        got = ours(ppt.spconv.SparseConvTensor(features, indices, [extent] * ndim, 2))
        assert tuple(got.spatial_shape) == tuple(want.spatial_shape)
        torch.testing.assert_close(got.dense(), want.dense(), rtol=1e-12, atol=1e-12)


def test_conv_algo_and_the_algo_keyword():
    algos = list(ppt.spconv.ConvAlgo)
    assert [a.name for a in algos] == ["Native", "MaskImplicitGemm", "MaskSplitImplicitGemm"]
    layers = [lambda algo: ppt.spconv.SubMConv2d(2, 3, 3, algo=algo),
              lambda algo: ppt.spconv.SparseConv3d(2, 3, 2, 2, algo=algo),
              lambda algo: ppt.spconv.SparseConvTranspose3d(2, 3, 2, 2, algo=algo),
              lambda algo: ppt.spconv.SparseInverseConv3d(3, 2, 2, "down", algo=algo),
              lambda algo: ppt.spconv.SparseMaxPool3d(2, algo=algo),
              lambda algo: ppt.spconv.SparseAvgPool2d(2, algo=algo)]
    for make in layers:
        assert make(None).algo is ppt.spconv.ConvAlgo.Native
        for algo in algos:
            assert make(algo).algo is algo
        with pytest.raises(TypeError, match=r"algo must be None or a ConvAlgo \(Native, MaskImplicitGemm, "
                                            r"MaskSplitImplicitGemm\), got str 'Native'"):
            make("Native")
    # the algorithm does not change the result
    indices = _sites(3, 40, 6)
    x = ppt.spconv.SparseConvTensor(torch.randn(len(indices), 2), indices, [6, 6, 6], 2)
    outputs = []
    for algo in algos:
        torch.manual_seed(0)
        outputs.append(ppt.spconv.SparseConv3d(2, 3, 3, 2, algo=algo)(x).features)
    assert all(torch.equal(out, outputs[0]) for out in outputs[1:])


@needs_spconv
def test_algo_accepts_spconvs_own_enum():
    from spconv.core import ConvAlgo

    layer = ppt.spconv.SubMConv3d(2, 3, 3, algo=ConvAlgo.MaskSplitImplicitGemm)
    assert layer.algo is ppt.spconv.ConvAlgo.MaskSplitImplicitGemm


def test_fifth_argument_grid_and_remove_grid():
    grid = torch.full((3, 6, 6, 6), -1, dtype=torch.int32)
    indices = _sites(3, 30, 6)
    x = ppt.spconv.SparseConvTensor(torch.randn(len(indices), 2), indices, [6, 6, 6], 2, grid)
    assert x.grid is grid
    y = ppt.spconv.SparseSequential(ppt.spconv.SparseConv3d(2, 4, 2, 2), nn.ReLU())(x)
    assert y.grid is grid  # carried through layers and replace_feature, as spconv does
    z = ppt.spconv.RemoveGrid()(y)
    assert z is y and z.grid is None
    assert ppt.spconv.SparseConvTensor(torch.randn(1, 2), torch.zeros(1, 4, dtype=torch.int32), [1, 1, 1], 1).grid is None


def test_tables_branch_and_join():
    indices = _sites(3, 50, 8)
    x = ppt.spconv.SparseConvTensor(torch.randn(len(indices), 4), indices, [8, 8, 8], 2)
    branches = ppt.spconv.ConcatTable().add(ppt.spconv.SubMConv3d(4, 3, 3, indice_key="a")).add(
        ppt.spconv.SubMConv3d(4, 5, 1))
    assert len(branches) == 2
    outputs = branches(x)
    assert [o.features.shape[1] for o in outputs] == [3, 5]
    joined = ppt.spconv.JoinTable()(outputs)
    assert torch.equal(joined.features, torch.cat([outputs[0].features, outputs[1].features], 1))
    assert joined.indices is x.indices and joined.cache is x.cache
    pair = ppt.spconv.ConcatTable(ppt.spconv.SubMConv3d(4, 3, 3), ppt.spconv.SubMConv3d(4, 3, 3))(x)
    added = ppt.spconv.AddTable()(pair)
    torch.testing.assert_close(added.features, pair[0].features + pair[1].features)
    # the same sites given as a different but equal tensor join too
    copy = pair[1].replace_feature(pair[1].features)
    copy.indices = pair[1].indices.clone()
    torch.testing.assert_close(ppt.spconv.AddTable()([pair[0], copy]).features, added.features)
    down = ppt.spconv.SparseConv3d(4, 3, 2, 2)(x)
    with pytest.raises(ValueError, match="AddTable: input 1 is on other sites than input 0"):
        ppt.spconv.AddTable()([pair[0], down])
    with pytest.raises(TypeError, match="JoinTable expects a non-empty list of SparseTensors, got SparseTensor"):
        ppt.spconv.JoinTable()(x)
    with pytest.raises(TypeError, match="JoinTable: input 1 is a Tensor, not a SparseTensor"):
        ppt.spconv.JoinTable()([x, x.features])


def test_4d_layers_raise_at_construction():
    for make in (lambda: ppt.spconv.SubMConv4d(2, 3, 3), lambda: ppt.spconv.SparseConv4d(2, 3, 3),
                 lambda: ppt.spconv.SparseConvTranspose4d(2, 3, 3), lambda: ppt.spconv.SparseInverseConv4d(2, 3, 3, "k"),
                 lambda: ppt.spconv.SparseMaxPool4d(2)):
        with pytest.raises(ValueError, match=r"4d: ppt's sparse layers support 1, 2 and 3 spatial dimensions, not 4"):
            make()


def test_2d_tensor_dense_and_from_dense():
    dense = torch.zeros(2, 4, 5, 3)
    dense[1, 3, 2] = torch.tensor([1.0, 0.0, 2.0])
    x = ppt.spconv.SparseConvTensor.from_dense(dense)
    assert x.indices.tolist() == [[1, 3, 2]] and x.spatial_shape == (4, 5) and x.spatial_size == 20
    assert torch.equal(x.dense(channels_first=False), dense)
    assert x.dense().shape == (2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------
# spconv.pytorch.utils: PointToVoxel


def _cloud(n=4000, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    scale = torch.tensor([12.0, 10.0, 4.0, 1.0], dtype=dtype)
    return torch.rand(n, 4, generator=generator, dtype=dtype) * scale - torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=dtype)


VOXEL_ARGS = ([0.5, 0.4, 0.3], [0.0, 0.0, 0.0, 10.0, 8.0, 3.0], 4, 300, 5)


@needs_spconv
def test_point_to_voxel_equals_spconv():
    from spconv.pytorch.utils import PointToVoxel as SpconvPointToVoxel

    theirs, ours = SpconvPointToVoxel(*VOXEL_ARGS), ppt.spconv.utils.PointToVoxel(*VOXEL_ARGS)
    assert (ours.vsize, ours.grid_size, ours.coors_range) == (theirs.vsize, theirs.grid_size, theirs.coors_range)
    for seed, max_voxels in ((0, 300), (1, 5000)):  # truncated to max_num_voxels, and not
        theirs = SpconvPointToVoxel(*VOXEL_ARGS[:3], max_voxels, VOXEL_ARGS[4])
        ours = ppt.spconv.utils.PointToVoxel(*VOXEL_ARGS[:3], max_voxels, VOXEL_ARGS[4])
        cloud = _cloud(seed=seed)
        for want, got in zip(theirs.generate_voxel_with_id(cloud), ours.generate_voxel_with_id(cloud)):
            assert got.dtype == want.dtype and torch.equal(got, want)
        assert all(torch.equal(a, b) for a, b in zip(theirs(cloud), ours(cloud)))


def test_point_to_voxel_by_hand():
    generator = ppt.spconv.utils.PointToVoxel([1.0, 1.0, 1.0], [0, 0, 0, 4, 3, 2], 4, max_num_voxels=2,
                                              max_num_points_per_voxel=2)
    assert generator.grid_size == [2, 3, 4] and generator.vsize == [1.0, 1.0, 1.0]
    assert generator.coors_range == [0.0, 0.0, 0.0, 2.0, 3.0, 4.0]
    cloud = torch.tensor([[3.5, 0.5, 0.5, 1.0],   # voxel (x, y, z) = (3, 0, 0): first seen, id 0
                          [9.0, 0.5, 0.5, 2.0],   # outside the box
                          [0.2, 2.9, 1.9, 3.0],   # (0, 2, 1): id 1
                          [3.1, 0.1, 0.9, 4.0],   # id 0 again
                          [3.9, 0.9, 0.1, 5.0],   # id 0, beyond max_num_points_per_voxel: dropped, keeps the id
                          [1.5, 1.5, 1.5, 6.0],   # a third voxel, beyond max_num_voxels
                          [0.5, 2.5, 1.5, 7.0]])  # id 1
    voxels, indices, counts, ids = generator.generate_voxel_with_id(cloud)
    assert indices.tolist() == [[0, 0, 3], [1, 2, 0]]  # (z, y, x)
    assert counts.tolist() == [2, 2] and ids.tolist() == [0, -1, 1, 0, 0, -1, 1]
    assert voxels[:, :, 3].tolist() == [[1.0, 4.0], [3.0, 7.0]]
    lone = torch.tensor([[0.5, 0.5, 0.5, 1.0], [0.25, 0.5, 0.5, 3.0]])
    voxels, _, counts = ppt.spconv.utils.PointToVoxel([1.0] * 3, [0, 0, 0, 1, 1, 1], 4, 1, 3)(lone, empty_mean=True)
    assert counts.tolist() == [2] and voxels[0, 2].tolist() == [0.375, 0.5, 0.5, 2.0]  # the voxel's mean point
    empty = ppt.spconv.utils.PointToVoxel([1.0] * 3, [0, 0, 0, 1, 1, 1], 4, 1, 3)(torch.full((2, 4), 5.0))
    assert [t.shape for t in empty] == [(0, 3, 4), (0, 3), (0,)]


def test_point_to_voxel_bad_input():
    PointToVoxel = ppt.spconv.utils.PointToVoxel
    with pytest.raises(ValueError, match="vsize_xyz must be 3 voxel sizes"):
        PointToVoxel([0.1, 0.1], [0, 0, 0, 1, 1, 1], 4, 10, 5)
    with pytest.raises(ValueError, match="coors_range_xyz must be 6 numbers"):
        PointToVoxel([0.1] * 3, [0, 0, 1, 1], 4, 10, 5)
    with pytest.raises(ValueError, match="vsize_xyz must be a positive finite number"):
        PointToVoxel([0.1, 0.0, 0.1], [0, 0, 0, 1, 1, 1], 4, 10, 5)
    with pytest.raises(ValueError, match="holds no voxel"):
        PointToVoxel([0.1] * 3, [0, 0, 0, 1, 0, 1], 4, 10, 5)
    with pytest.raises(ValueError, match="max_num_voxels must be >= 1"):
        PointToVoxel([0.1] * 3, [0, 0, 0, 1, 1, 1], 4, 0, 5)
    generator = PointToVoxel([0.1] * 3, [0, 0, 0, 1, 1, 1], 4, 10, 5)
    with pytest.raises(ValueError, match=r"pc must be \(N, num_point_features=4\), got \(3, 3\)"):
        generator(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="pc must be floating point"):
        generator(torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="pc is on meta but this generator was made for cpu"):
        generator(torch.zeros(3, 4, device="meta"))


def test_gather_features_by_pc_voxel_id():
    from ppt.spconv.utils import gather_features_by_pc_voxel_id

    per_voxel = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    got = gather_features_by_pc_voxel_id(per_voxel, torch.tensor([1, -1, 0]), invalid_value=-5)
    assert got.tolist() == [[3.0, 4.0], [-5.0, -5.0], [1.0, 2.0]]
