"""UniPre3D scene level: depth back-projection, point fusion, padded batched rendering, the model (tiny sizes)."""

import math

import pytest
import torch

from ppt.data import SceneSample, collate_scenes
from ppt.data.frames.scannet_frames import FrameBatch
from ppt.models import PointTransformerV3, UniPre3DScene
from ppt.models.unipre3d import GaussianHead
from ppt.models.unipre3d_scene import DepthPointFusion, backproject_depth, pad_scenes
from ppt.nn import GaussianRenderer
from ppt.ops import voxelize
from ppt.sparse import SparseTensor

pytestmark = pytest.mark.usefixtures("single_thread")


def _look_from(position, target):
    """World -> camera matrix (OpenCV axes, world z up) of a camera at ``position`` looking at ``target``."""
    position, target = torch.as_tensor(position, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)
    forward = (target - position) / (target - position).norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0]))
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward])
    viewmat = torch.eye(4)
    viewmat[:3, :3], viewmat[:3, 3] = rotation, -rotation @ position
    return viewmat


def _K(fx, fy, width, height):
    return torch.tensor([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])


def test_backprojection_round_trips():
    generator = torch.Generator().manual_seed(0)
    depths = 0.5 + 3 * torch.rand(2, 3, 6, 8, generator=generator, dtype=torch.float64)
    viewmats = torch.stack([torch.stack([_look_from([math.cos(a), math.sin(a), 1.2], [0.1, 0.2, 0.8]).double()
                                         for a in (0.3 * v + b for v in range(3))]) for b in range(2)])
    Ks = _K(7.0, 5.5, 8, 6).double().expand(2, 3, 3, 3)
    world = backproject_depth(depths, viewmats, Ks)
    camera = (viewmats[..., None, None, :3, :3] @ world.unsqueeze(-1)).squeeze(-1) + viewmats[..., None, None, :3, 3]
    projected = (Ks[..., None, None, :, :] @ camera.unsqueeze(-1)).squeeze(-1)
    u, v = projected[..., 0] / projected[..., 2], projected[..., 1] / projected[..., 2]
    assert torch.allclose(camera[..., 2], depths)
    assert torch.allclose(u, torch.arange(8, dtype=torch.float64) + 0.5)
    assert torch.allclose(v, (torch.arange(6, dtype=torch.float64) + 0.5)[:, None].expand(6, 8))
    with pytest.raises(ValueError, match="must share"):
        backproject_depth(depths, viewmats[:, :2], Ks)


def _scenes(counts=(300, 200), seed=0, extra=None):
    """Grid-sampled clouds in [0, 2] x [0, 2] x [0, 1] (offset per scene, plus the ``extra[b]``
    points), colours and normals."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for index, count in enumerate(counts):
        coord = torch.rand(count, 3, generator=generator) * torch.tensor([2.0, 2.0, 1.0]) + 0.37 * index
        if extra is not None:
            coord = torch.cat([coord, extra[index]])
        count = coord.shape[0]
        grid, inverse, _ = voxelize(coord, 0.02)
        first = torch.full((grid.shape[0],), count, dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(count), "amin")
        coord = coord[first]
        samples.append(SceneSample(
            coord=coord, color=torch.rand(len(coord), 3, generator=generator),
            normal=torch.nn.functional.normalize(torch.randn(len(coord), 3, generator=generator), dim=1),
            segment=torch.full((len(coord),), -1), instance=torch.full((len(coord),), -1), name=f"s{index}",
            condition="ScanNet", grid_coord=grid[:, 1:].contiguous()))
    return collate_scenes(samples)


def test_fusion_voxels_are_appended_on_the_cloud_grid():
    batch_size, views, height, width = 2, 2, 5, 7
    low = torch.stack([torch.zeros(3), torch.full((3,), 0.37)])  # the boxes' corners
    viewmats = torch.stack([torch.stack([_look_from(low[b] + torch.tensor([1.0, -1.5 - v, 0.5]),
                                                    low[b] + torch.tensor([1.0, 1.0, 0.5])) for v in range(views)])
                            for b in range(batch_size)])
    Ks = _K(4.0, 4.0, width, height).expand(batch_size, views, 3, 3)
    generator = torch.Generator().manual_seed(1)
    depths = 1.5 + 2.5 * torch.rand(batch_size, views, height, width, generator=generator)
    depths[0, 0, 0, :3] = 0.04  # no measurement
    depths[1, 1, 4, 5] = 40.0  # far outside the cloud's box
    # Three pixels per scene land on cloud points (their voxels are occupied already).
    world = backproject_depth(depths, viewmats, Ks)
    points = _scenes(extra=[world[b, 0, 2, 2:5] for b in range(batch_size)])
    channels = 4
    features = torch.randn(batch_size, views, channels, height, width, generator=generator)
    x = SparseTensor(torch.randn(points.coord.shape[0], channels, generator=generator),
                     points.sparse_tensor().indices, [200, 200, 200], batch_size)
    fusion = DepthPointFusion(channels)
    sites, voxel_features, anchors = fusion.voxels(x, points.coord, features, depths, viewmats, Ks)

    # Brute force: every kept pixel's voxel on the cloud grid (grid_coord = floor(coord / 0.02) - its minimum).
    expected: dict[tuple, list] = {}
    for b in range(batch_size):
        cloud = points.coord[points.batch == b]
        lowest = torch.floor(cloud.double() / 0.02).amin(0)
        for v in range(views):
            for row in range(height):
                for col in range(width):
                    p = world[b, v, row, col]
                    inside = bool(((p >= cloud.amin(0)) & (p <= cloud.amax(0))).all())
                    if depths[b, v, row, col] > 0.05 and inside:
                        cell = (torch.floor(p.double() / 0.02) - lowest).long().tolist()
                        expected.setdefault((b, *cell), []).append((features[b, v, :, row, col], p))
    assert depths[0, 0, 0, 0] <= 0.05 and len(expected) > 10
    got = {tuple(site.tolist()): i for i, site in enumerate(sites)}
    assert set(got) == set(expected)
    for key, members in expected.items():
        assert torch.allclose(voxel_features[got[key]], torch.stack([f for f, _ in members]).mean(0), atol=1e-5)
        assert torch.allclose(anchors[got[key]], torch.stack([p for _, p in members]).mean(0), atol=1e-5)

    fusion.eval()
    mixed, fused = fusion(x, points.coord, features, depths, viewmats, Ks)
    cloud_sites = {tuple(site.tolist()): row for row, site in enumerate(x.indices)}
    new = [key for key in got if key not in cloud_sites]
    occupied = [key for key in got if key in cloud_sites]
    assert len(occupied) >= 2 * 3
    rows = x.indices.shape[0]
    assert mixed.features.shape == (rows + len(new), channels)
    assert torch.equal(mixed.indices[:rows], x.indices)
    assert {tuple(site.tolist()) for site in mixed.indices[rows:]} == set(new)
    # Before the SubM mixing: occupied sites add the voxel feature, new sites carry it.
    fusion.mix = torch.nn.Identity()
    merged, _ = fusion(x, points.coord, features, depths, viewmats, Ks)
    for key in occupied:
        row = cloud_sites[key]
        assert torch.allclose(merged.features[row], x.features[row] + voxel_features[got[key]], atol=1e-5)
    for row, site in enumerate(merged.indices[rows:].tolist(), start=rows):
        assert torch.allclose(merged.features[row], voxel_features[got[tuple(site)]])
    assert fused.batch.tolist() == mixed.indices[rows:, 0].tolist()
    assert fused.anchors.shape == (len(new), 3)
    assert sorted(set(fused.batch.tolist())) == [0, 1]
    with pytest.raises(ValueError, match="coord must be"):
        fusion(x, points.coord[:-1], features, depths, viewmats, Ks)
    with pytest.raises(ValueError, match="pixel_features must have shape"):
        fusion(x, points.coord, features[:, :, :2], depths, viewmats, Ks)


def test_padded_scenes_render_as_separate_calls():
    generator = torch.Generator().manual_seed(2)
    head = GaussianHead(5, 8, offset_scale=0.2)
    batch = torch.tensor([1, 0, 1, 1, 0, 1, 1])
    anchors = torch.randn(7, 3, generator=generator) * 0.3
    gaussians = head(torch.randn(7, 5, generator=generator), anchors)
    viewmats = torch.stack([torch.stack([_look_from([2.0 * math.cos(a), 2.0 * math.sin(a), 0.5], [0.0, 0.0, 0.0])
                                         for a in (0.0, 1.5)]) for _ in range(2)])
    Ks = _K(12.0, 12.0, 16, 12).expand(2, 2, 3, 3)
    renderer = GaussianRenderer(16, 12, sh_degree=1, background=(1.0, 1.0, 1.0))
    together, _, _ = renderer(*pad_scenes(gaussians, batch, 2), viewmats, Ks)
    for b in range(2):
        alone, _, _ = renderer(*(field[batch == b] for field in gaussians), viewmats[b], Ks[b])
        assert torch.allclose(together[b], alone, atol=1e-6)


def _frame_batch(points, views=2, width=16, height=12, seed=3):
    generator = torch.Generator().manual_seed(seed)
    batch_size = points.batch_size
    low = torch.stack([points.coord[points.batch == b].amin(0) for b in range(batch_size)])

    def cameras(shift):
        return torch.stack([torch.stack([_look_from(low[b] + torch.tensor([1.0 + shift, -1.5 - 0.2 * v, 0.6]),
                                                    low[b] + torch.tensor([1.0, 1.0, 0.5])) for v in range(views)])
                            for b in range(batch_size)])

    K = _K(10.0, 10.0, width, height).expand(batch_size, views, 3, 3)
    return FrameBatch(points, torch.rand(batch_size, views, height, width, 3, generator=generator), cameras(0.0), K,
                      torch.rand(batch_size, views, height, width, 3, generator=generator),
                      1.5 + 2 * torch.rand(batch_size, views, height, width, generator=generator), cameras(0.1), K, K)


@pytest.mark.parametrize("image_encoder", ["conv", None])
def test_scene_model_forward_and_backward(image_encoder):
    points = _scenes((150, 120))
    batch = _frame_batch(points)
    model = UniPre3DScene(base_channels=8, channels=(8, 8, 8, 8), layers=(1, 1, 1, 1), head_hidden=8,
                          image_size=(16, 12), image_encoder=image_encoder)
    renders = model(batch)
    assert renders.shape == (2, 2, 12, 16, 3) and torch.isfinite(renders).all()
    loss = model.loss(renders, batch.images)
    loss.backward()
    trained = [model.backbone.conv_input.conv.weight, model.backbone.dec[0].block0.conv1.weight, model.head.mlp[0].weight]
    if image_encoder is not None:
        trained += [model.adapter[1].weight, model.fusion.mix.conv.weight]
        assert all(p.grad is None for p in model.image_encoder.parameters())
        gaussians, scene = model.predict(batch)
        assert gaussians.means.shape[0] > points.coord.shape[0] and scene.max() == 1  # fused voxels became Gaussians
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    with pytest.raises(ValueError, match="but the model renders 16x12"):
        model(batch._replace(images=batch.images[:, :, :6]))


def test_spunet_after_stem_hook():
    points = _scenes((120, 90))
    model = UniPre3DScene(base_channels=8, channels=(8, 8, 8, 8), layers=(1, 1, 1, 1), image_encoder=None).backbone.eval()
    seen = []

    def record(x):
        seen.append(x.features.shape)
        return x

    plain = model(points.sparse_tensor())
    hooked = model(points.sparse_tensor(), after_stem=record)
    assert seen == [(points.coord.shape[0], 8)] and torch.allclose(plain, hooked)


TINY_PTV3 = dict(stride=(2, 2), enc_depths=(1, 1, 1), enc_channels=(8, 16, 16), enc_num_head=(1, 2, 2),
                 enc_patch_size=(32, 32, 32), dec_depths=(1, 1), dec_channels=(12, 16), dec_num_head=(2, 2),
                 dec_patch_size=(32, 32), drop_path=0.0)


def test_scene_model_on_ptv3_fuses_after_the_embedding():
    points = _scenes((150, 120))
    batch = _frame_batch(points)
    model = UniPre3DScene(backbone="ptv3", backbone_kwargs=TINY_PTV3, head_hidden=8, image_size=(16, 12))
    backbone = model.backbone
    assert isinstance(backbone, PointTransformerV3) and backbone.order == ("z", "z-trans")  # UniPre3D's PTv3
    assert model.fusion.channels == 8 and model.head.mlp[0].in_features == 12  # stem width; decoder's last stage
    stem_rows, encoder_rows = [], []
    hooks = [backbone.embedding.stem.conv.register_forward_pre_hook(
                 lambda module, args: stem_rows.append(args[0].features.shape[0])),
             backbone.enc.enc0.block0.register_forward_pre_hook(
                 lambda module, args: encoder_rows.append(args[0].feat.shape[0])),
             model.fusion.register_forward_hook(lambda module, args, out: encoder_rows.append(len(out[0].indices)))]
    gaussians, scene = model.predict(batch)
    for hook in hooks:
        hook.remove()
    cloud = points.coord.shape[0]
    # the stem sees the cloud, the fusion's output (cloud + new voxels) is what the encoder serializes
    assert stem_rows == [cloud] and encoder_rows[0] == encoder_rows[1] > cloud
    # a Gaussian per row of the decoder's output: the cloud's points, then the fused voxels of both scenes
    assert gaussians.means.shape[0] == encoder_rows[0]
    assert torch.equal(scene[:cloud], points.batch) and set(scene[cloud:].tolist()) == {0, 1}
    renders = model(batch)
    assert renders.shape == (2, 2, 12, 16, 3) and torch.isfinite(renders).all()
    model.loss(renders, batch.images).backward()
    trained = [backbone.embedding.stem.conv.weight, backbone.enc.enc0.block0.attn.qkv.weight,
               backbone.dec.dec0.block0.mlp[0].fc2.weight, model.head.mlp[0].weight, model.adapter[1].weight,
               model.fusion.mix.conv.weight]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    assert all(p.grad is None for p in model.image_encoder.parameters())


def test_scene_model_backbone_arguments():
    with pytest.raises(ValueError, match=r"backbone must be one of \('spunet', 'ptv3'\), got 'pointnet'"):
        UniPre3DScene(backbone="pointnet")
    with pytest.raises(ValueError, match="backbone_kwargs are PointTransformerV3 arguments"):
        UniPre3DScene(backbone_kwargs={"enc_channels": (8, 16)})
    with pytest.raises(ValueError, match="the Gaussians come from the PTv3 decoder; enc_mode must be False"):
        UniPre3DScene(backbone="ptv3", backbone_kwargs={**TINY_PTV3, "enc_mode": True})
    plain = UniPre3DScene(backbone="ptv3", backbone_kwargs=TINY_PTV3, image_encoder=None)
    assert not hasattr(plain, "fusion") and plain.head.mlp[0].in_features == 12
