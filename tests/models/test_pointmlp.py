"""PointMLP, PointMLP-elite and PointMLP part segmentation: parameter counts of the official models,
the grouping and its normalisation on hand-computed cases, fixed anchor counts, shapes, bad input,
and the official checkpoints (key names written out from the official module structure)."""

import math

import pytest
import torch

from ppt.models import PointMLP, PointMLPPartSeg, load_weights, pointmlp_elite
from ppt.models.pointmlp import LocalGrouper

TINY = dict(points=64, embed_dim=8, dim_expansion=(2, 2), pre_blocks=(1, 1), pos_blocks=(1, 1), k_neighbors=(8, 8),
            reducers=(2, 2))


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_equal_the_official_models():
    assert _count(PointMLP()) == 13_238_504
    assert _count(pointmlp_elite()) == 716_232
    assert _count(PointMLPPartSeg()) == 16_755_594


# A line of four points and one feature channel: farthest point sampling from index 0 picks x=0,
# then x=7; each anchor's two nearest neighbours are itself and the next point inward.
LINE = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [7, 0, 0]]])
FEATURES = torch.tensor([[[1.0], [2.0], [4.0], [8.0]]])


def _assert_group(got, expected):
    """A group's rows ``(k, C)`` equal ``expected`` in some order (the order inside a group does not
    matter: it is max-pooled later)."""
    rows = sorted(got.tolist())
    torch.testing.assert_close(torch.tensor(rows), torch.tensor(sorted(expected)), rtol=1e-5, atol=1e-6)


def _unbiased_std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_anchor_normalisation_by_hand():
    grouper = LocalGrouper(1, groups=2, k_neighbors=2, use_xyz=False, normalize="anchor")
    anchors, grouped = grouper(LINE, FEATURES)
    assert torch.equal(anchors, LINE[:, [0, 3]])
    # groups {0, 1} and {3, 2}: offsets from the anchors' features 1 and 8
    offsets = [[0.0, 1.0], [0.0, -4.0]]
    std = _unbiased_std([v for row in offsets for v in row])  # one std over the whole cloud
    assert grouped.shape == (1, 2, 2, 2)
    s = std + 1e-5
    # [normalised offset, the anchor's own feature]
    _assert_group(grouped[0, 0], [[0.0, 1.0], [1 / s, 1.0]])
    _assert_group(grouped[0, 1], [[-4 / s, 8.0], [0.0, 8.0]])


def test_anchor_normalisation_with_xyz_and_affine_by_hand():
    grouper = LocalGrouper(1, groups=2, k_neighbors=2, use_xyz=True, normalize="anchor")
    with torch.no_grad():
        grouper.affine_alpha.fill_(2.0)
        grouper.affine_beta.fill_(0.5)
    _, grouped = grouper(LINE, FEATURES)
    assert grouped.shape == (1, 2, 2, 4 + 1)  # [feature, x, y, z] normalised, then the anchor's feature
    # offsets [feature, x, y, z]: neighbour 1 of anchor 0 is +1 in both; neighbour 2 of anchor 3 is -4, -4
    values = [1.0, 1.0, -4.0, -4.0] + [0.0] * 12
    std = _unbiased_std(values)
    scaled = 2 / (std + 1e-5)  # alpha 2 times the normalised offset 1 (or -4), plus beta 0.5
    _assert_group(grouped[0, 0], [[0.5, 0.5, 0.5, 0.5, 1.0],  # the anchor itself: zero offset
                                  [scaled + 0.5, scaled + 0.5, 0.5, 0.5, 1.0]])
    _assert_group(grouped[0, 1], [[0.5, 0.5, 0.5, 0.5, 8.0], [-4 * scaled + 0.5, -4 * scaled + 0.5, 0.5, 0.5, 8.0]])


def test_center_normalisation_by_hand():
    grouper = LocalGrouper(1, groups=2, k_neighbors=2, use_xyz=False, normalize="center")
    _, grouped = grouper(LINE, FEATURES)
    std = _unbiased_std([-0.5, 0.5, 2.0, -2.0])  # groups {1, 2} and {8, 4} about their means 1.5 and 6
    assert sorted(grouped[0, 0, :, 0].tolist()) == pytest.approx([-0.5 / (std + 1e-5), 0.5 / (std + 1e-5)])
    assert sorted(grouped[0, 1, :, 0].tolist()) == pytest.approx([-2 / (std + 1e-5), 2 / (std + 1e-5)])


def test_the_anchor_is_its_own_nearest_neighbour_and_anchor_counts_follow_points():
    torch.manual_seed(0)
    model = PointMLP(5, **TINY).eval()
    seen = []
    for grouper in model.local_grouper_list:
        grouper.register_forward_hook(lambda module, args, out: seen.append((args[0], out[0])))
    for n in (64, 100):  # more input points than `points`: the anchor counts stay 32 and 16
        seen.clear()
        model(torch.rand(2, n, 3))
        assert [anchors.shape[1] for _, anchors in seen] == [32, 16]
    grouper = model.local_grouper_list[0]
    xyz = torch.rand(2, 100, 3)
    anchor_index = grouper.sample(xyz, grouper.groups)
    neighbours = grouper.neighbours(xyz.gather(1, anchor_index[..., None].expand(-1, -1, 3)), xyz, 8)
    assert torch.equal(neighbours[..., 0], anchor_index)


def test_shapes_and_bad_input():
    torch.manual_seed(0)
    classifier = PointMLP(7, **TINY)
    assert classifier(torch.rand(3, 80, 3)).shape == (3, 7)
    assert PointMLP(0, **TINY)(torch.rand(2, 64, 3)).shape == (2, 32)  # no head: pooled features
    assert pointmlp_elite(4, points=64, k_neighbors=(4, 4, 4, 4))(torch.rand(2, 64, 3)).shape == (2, 4)
    with pytest.raises(ValueError, match="xyz has 20 points per cloud.*at least 32"):
        classifier(torch.rand(2, 20, 3))
    with pytest.raises(ValueError, match=r"xyz must be a floating point \(B, N, 3\)"):
        classifier(torch.rand(2, 64, 4))
    with pytest.raises(ValueError, match="activation must be one of"):
        PointMLP(activation="swish")
    with pytest.raises(ValueError, match="normalize must be one of"):
        PointMLP(normalize="mean")
    with pytest.raises(ValueError, match="k_neighbors must hold 4"):
        PointMLP(k_neighbors=(24, 24))
    with pytest.raises(ValueError, match="stage 3 of points=128 has 16 points .* k_neighbors=24"):
        PointMLP(points=128)
    segmenter = PointMLPPartSeg(6, categories=3, de_dims=(16, 16), de_blocks=(1, 1), gmp_dim=8, cls_dim=8, **TINY)
    xyz, normals = torch.rand(2, 64, 3), torch.rand(2, 64, 3)
    out = segmenter(xyz, normals, torch.tensor([0, 2]))
    assert out.shape == (2, 64, 6)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 64), atol=1e-5)  # log-probabilities
    with pytest.raises(ValueError, match=r"cls_label must lie in \[0, 3\)"):
        segmenter(xyz, normals, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="normals must have the shape of xyz"):
        segmenter(xyz, None, torch.tensor([0, 1]))
    xyz_only = PointMLPPartSeg(6, categories=3, de_dims=(16, 16), de_blocks=(1, 1), normals=False, **TINY)
    assert xyz_only(xyz, None, torch.tensor([1, 1])).shape == (2, 64, 6)


def _official_block_keys(prefix, groups=1):
    """A ConvBNReLURes1D's keys as the official module builds them (net1 = Conv, BN, act; net2 =
    Conv, BN, or with groups > 1 Conv, BN, act, Conv, BN)."""
    keys = [f"{prefix}.net1.0.weight", *_bn(f"{prefix}.net1.1"), f"{prefix}.net2.0.weight", *_bn(f"{prefix}.net2.1")]
    if groups > 1:
        keys += [f"{prefix}.net2.3.weight", *_bn(f"{prefix}.net2.4")]
    return keys


def _bn(prefix):
    return [f"{prefix}.{name}" for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def _official_classifier_keys(stages=2, blocks=1):
    keys = ["embedding.net.0.weight", *_bn("embedding.net.1")]
    for s in range(stages):
        keys += [f"local_grouper_list.{s}.affine_alpha", f"local_grouper_list.{s}.affine_beta",
                 f"pre_blocks_list.{s}.transfer.net.0.weight", *_bn(f"pre_blocks_list.{s}.transfer.net.1")]
        for b in range(blocks):
            keys += _official_block_keys(f"pre_blocks_list.{s}.operation.{b}")
            keys += _official_block_keys(f"pos_blocks_list.{s}.operation.{b}")
    for layer in (0, 4, 8):
        keys += [f"classifier.{layer}.weight", f"classifier.{layer}.bias"]
    return keys + _bn("classifier.1") + _bn("classifier.5")


def test_classifier_keys_are_the_official_ones_and_an_official_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    model = PointMLP(5, **TINY)
    assert sorted(model.state_dict()) == sorted(_official_classifier_keys())
    source = PointMLP(5, **TINY)  # other random weights, saved as pointMLP-pytorch's main.py does
    state = {f"module.{key}": value for key, value in source.state_dict().items()}  # nn.DataParallel
    path = tmp_path / "best_checkpoint.pth"
    torch.save({"net": state, "epoch": 299, "acc": 94.1, "optimizer": {"state": {}, "param_groups": []}}, path)
    report = load_weights(model, path, format="pointmlp")
    assert (report.missing, report.unexpected, report.ignored) == ((), (), ())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())
    assert load_weights(PointMLP(5, **TINY), path).format == "pointmlp"  # auto-detected

    # a ModelNet40 head on a 3-class model: the last layer is ignored, the rest loads
    other = PointMLP(3, **TINY)
    report = load_weights(other, path, format="pointmlp")
    assert report.ignored == ("classifier.8.weight", "classifier.8.bias")
    assert report.missing == ("classifier.8.weight", "classifier.8.bias") and report.unexpected == ()
    assert "ignored (not used by this model): classifier.*" in str(report)


def test_part_segmentation_keys_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    settings = dict(categories=3, de_dims=(16, 16), de_blocks=(1, 1), gmp_dim=8, cls_dim=8, **TINY)
    model = PointMLPPartSeg(6, **settings)
    expected = [k for k in _official_classifier_keys() if not k.startswith("classifier.")]
    for i in range(2):  # decoder: fuse (ConvBNReLU1D) then extraction (PosExtraction) per level
        expected += [f"decode_list.{i}.fuse.net.0.weight", f"decode_list.{i}.fuse.net.0.bias",
                     *_bn(f"decode_list.{i}.fuse.net.1"),
                     *_official_block_keys(f"decode_list.{i}.extraction.operation.0")]
    for prefix in ("cls_map.0", "cls_map.1", "gmp_map_list.0", "gmp_map_list.1", "gmp_map_list.2", "gmp_map_end"):
        expected += [f"{prefix}.net.0.weight", f"{prefix}.net.0.bias", *_bn(f"{prefix}.net.1")]
    expected += ["classifier.0.weight", "classifier.0.bias", *_bn("classifier.1"), "classifier.3.weight",
                 "classifier.3.bias"]
    # bias=True in the part-seg model: every conv of the encoder and the decoder has a bias too
    conv_biases = [k.replace(".weight", ".bias") for k in expected
                   if k.endswith(".weight") and (".net.0." in k or ".net1.0." in k or ".net2.0." in k)
                   and k.replace(".weight", ".bias") not in expected]
    assert sorted(model.state_dict()) == sorted(expected + conv_biases)

    source = PointMLPPartSeg(6, **settings)
    path = tmp_path / "best_insiou_model.pth"
    torch.save({"model": source.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "epoch": 3,
                "test_instance_iou": 0.85}, path)
    report = load_weights(model, path, format="pointmlp")
    assert (report.missing, report.unexpected) == ((), ())
    model.eval(), source.eval()
    xyz, normals = torch.rand(2, 64, 3), torch.rand(2, 64, 3)
    assert torch.equal(model(xyz, normals, torch.tensor([1, 2])), source(xyz, normals, torch.tensor([1, 2])))
