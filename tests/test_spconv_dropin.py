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
def test_spconv_style_unet_equals_spconv(enc_mode):
    spconv_torch = import_spconv()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # spconv 2.3.8's CPU path races with more than one thread
    try:
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
    finally:
        torch.set_num_threads(threads)


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
