"""ShapeNetRenders (UniPre3D's object renders), its collate, and the synthetic renders writer."""

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from ppt.cli import main
from ppt.data import (NormalizeWithCameras, RenderBatch, RenderSample, RotateWithCameras, ShapeNetRenders,
                      collate_renders, normalize_unit_sphere, write_synthetic_renders)
from ppt.data.renders.shapenet_renders import focal_from_fov, from_camera_frame, to_camera_frame
from ppt.ops import rasterize_gaussians
from ppt.ops._reference import quat_to_rotmat

pytestmark = pytest.mark.usefixtures("single_thread")


def _write_object(root, synset, model, camera_to_world, cloud, size=128):
    folder = root / synset / model
    (folder / "easy").mkdir(parents=True)
    (folder / "pts").mkdir()
    np.save(folder / "pts" / f"{synset}-{model}.npy", cloud.astype(np.float32))
    for view, matrix in enumerate(camera_to_world):
        rgba = np.full((size, size, 4), 10 * view, dtype=np.uint8)
        rgba[..., 3] = 255
        Image.fromarray(rgba).save(folder / "easy" / f"{view:02d}.png")
        np.savetxt(folder / "easy" / f"{view:02d}.txt", matrix)
    (folder / "easy" / "rendering_metadata.txt").write_text("ignored\n")
    return folder


def _turn_about_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def test_focal_length_from_the_renders_field_of_view():
    assert focal_from_fov(49.13434264120263, 128) == pytest.approx(140.0, abs=1e-3)


def test_a_known_gaussian_lands_on_the_expected_pixel(tmp_path):
    # Camera 0 at (0, 0, -2) looking along +z; camera 1 the same turned 90 degrees about y (at (-2, 0, 0)).
    first = np.eye(4)
    first[2, 3] = -2.0
    second = np.eye(4)
    second[:3, :3] = _turn_about_y(math.pi / 2)
    second[:3, 3] = second[:3, :3] @ np.array([0.0, 0.0, -2.0])
    _write_object(tmp_path, "02691156", "a", [first, second], np.random.default_rng(0).normal(size=(32, 3)))
    sample = ShapeNetRenders(tmp_path, split="test", views=None, num_points=32)[0]
    focal = 128 / (2 * math.tan(math.radians(49.13434264120263 / 2)))
    # p: 2 units in front of camera 0, projecting to the centre of pixel (u 70, v 40).
    p = [(70.5 - 64) * 2 / focal, (40.5 - 64) * 2 / focal, 0.0]
    # q: 1.5 units in front of camera 1 (right = world -z, down = world +y, forward = world +x) at pixel (20, 100).
    x_cam, y_cam = (20.5 - 64) * 1.5 / focal, (100.5 - 64) * 1.5 / focal
    q = [-2.0 + 1.5, y_cam, -x_cam]
    images, _, _ = rasterize_gaussians(
        torch.tensor([p, q]), torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2), torch.full((2, 3), 1e-3), torch.ones(2),
        torch.eye(2), sample.viewmats, sample.Ks, 128, 128)
    assert divmod(int(images[0, ..., 0].argmax()), 128) == (40, 70)
    assert divmod(int(images[1, ..., 1].argmax()), 128) == (100, 20)


def test_points_are_centred_subsampled_and_turned_into_the_camera_frame(tmp_path):
    cloud = np.random.default_rng(1).normal(size=(50, 3)) + np.array([3.0, -1.0, 0.5])
    _write_object(tmp_path, "s", "m", [np.eye(4)], cloud)
    full = ShapeNetRenders(tmp_path, split="test", num_points=50, views=1)[0].points
    expected = to_camera_frame(cloud - cloud.mean(axis=0))
    np.testing.assert_allclose(np.sort(full.numpy(), axis=0), np.sort(expected, axis=0), atol=1e-5)
    np.testing.assert_allclose(expected[:, 0], -(cloud[:, 2] - cloud[:, 2].mean()), atol=1e-12)  # x = -z
    sub = ShapeNetRenders(tmp_path, split="test", num_points=10, views=1)[0].points
    assert sub.shape == (10, 3)
    np.testing.assert_allclose(sub[0].numpy(), expected[0], atol=1e-5)  # FPS starts at the first point
    # the second FPS point is the farthest from the first
    farthest = expected[np.argmax(((expected - expected[0]) ** 2).sum(axis=1))]
    np.testing.assert_allclose(sub[1].numpy(), farthest, atol=1e-5)


def test_images_views_and_splits(tmp_path):
    cameras = [np.eye(4)] * 6
    names = [f"{synset}/{model}" for synset in ("b", "a") for model in ("x", "y", "z", "w")]
    for name in names:
        _write_object(tmp_path, *name.split("/"), cameras, np.random.default_rng(2).normal(size=(16, 3)), size=64)
    splits = {split: ShapeNetRenders(tmp_path, split=split, num_points=8, image_size=32) for split in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 1, 1]
    expected_order = sorted(names)
    random.Random(43).shuffle(expected_order)  # the official split: seed general.random_seed + 1
    assert splits["train"].objects + splits["val"].objects + splits["test"].objects == expected_order

    train = splits["train"]
    sample = train[0]
    assert sample.images.shape == (4, 32, 32, 3) and sample.viewmats.shape == (4, 4, 4) and sample.Ks.shape == (4, 3, 3)
    assert sample.points.shape == (8, 3) and sample.images.dtype == torch.float32
    assert 0.0 <= sample.images.min() and sample.images.max() <= 1.0
    # the stored images are the view index times 10 (alpha dropped): the drawn views are distinct
    views = (sample.images[:, 0, 0, 0] * 255 / 10).round().long().tolist()
    assert len(set(views)) == 4 and all(0 <= v < 6 for v in views)
    torch.testing.assert_close(sample.Ks[0], torch.tensor([[35.0, 0.0, 16.0], [0.0, 35.0, 16.0], [0.0, 0.0, 1.0]]),
                               atol=1e-3, rtol=0)
    assert torch.equal(train[0].images, sample.images)  # an item is the same within an epoch
    draws = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        draws.add(tuple((train[0].images[:, 0, 0, 0] * 255 / 10).round().long().tolist()))
    assert len(draws) > 1  # and new views each epoch
    evaluation = ShapeNetRenders(tmp_path, split="val", views=3, num_points=8, image_size=32)[0]
    assert (evaluation.images[:, 0, 0, 0] * 255 / 10).round().long().tolist() == [0, 1, 2]

    batch = collate_renders([train[0], train[1]])
    assert isinstance(batch, RenderBatch)
    assert batch.points.shape == (2, 8, 3) and batch.images.shape == (2, 4, 32, 32, 3)
    assert batch.viewmats.shape == (2, 4, 4, 4) and batch.Ks.shape == (2, 4, 3, 3)


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no <synset>/<model id> folders"):
        ShapeNetRenders(tmp_path)
    folder = _write_object(tmp_path, "s", "m", [np.eye(4)] * 2, np.zeros((8, 3)))
    with pytest.raises(ValueError, match="split must be"):
        ShapeNetRenders(tmp_path, split="training")
    with pytest.raises(ValueError, match="3 views requested, the object has 2"):
        ShapeNetRenders(tmp_path, split="test", views=3, num_points=4)[0]
    with pytest.raises(ValueError, match="fewer than num_points=9"):
        ShapeNetRenders(tmp_path, split="test", views=1, num_points=9)[0]
    (folder / "easy" / "01.txt").write_text("1 0 0\n")
    with pytest.raises(ValueError, match="16 finite numbers"):
        ShapeNetRenders(tmp_path, split="test", views=None, num_points=4)[0]
    (folder / "easy" / "01.txt").unlink()
    with pytest.raises(FileNotFoundError, match="without a camera file"):
        ShapeNetRenders(tmp_path, split="test", views=1, num_points=4)[0]
    a = RenderSample(torch.zeros(4, 3), torch.zeros(1, 2, 2, 3), torch.zeros(1, 4, 4), torch.zeros(1, 3, 3), "a")
    b = RenderSample(torch.zeros(5, 3), torch.zeros(1, 2, 2, 3), torch.zeros(1, 4, 4), torch.zeros(1, 3, 3), "b")
    with pytest.raises(ValueError, match="different points shapes"):
        collate_renders([a, b])
    with pytest.raises(ValueError, match="viewmats must be float32"):
        RenderSample(torch.zeros(4, 3), torch.zeros(2, 2, 2, 3), torch.zeros(1, 4, 4), torch.zeros(2, 3, 3), "c")


def test_synthetic_renders_load_and_agree_with_their_clouds(tmp_path):
    folders = write_synthetic_renders(tmp_path, per_class=1, views=3, num_points=256, gaussians=3000, image_size=32)
    assert len(folders) == 15
    assert sorted(p.name for p in (folders[0] / "easy").iterdir())[:2] == ["00.png", "00.txt"]
    dataset = ShapeNetRenders(tmp_path, split="train", views=3, num_points=128, image_size=32)
    assert len(dataset) == 11
    moved = ShapeNetRenders(tmp_path, split="train", views=3, num_points=128, image_size=32,
                            transform=NormalizeWithCameras())
    for sample in [*(dataset[i] for i in range(len(dataset))), *(moved[i] for i in range(len(moved)))]:
        assert sample.images.shape == (3, 32, 32, 3)
        foreground = sample.images.amax(dim=-1) > 0.02
        assert 0.03 < foreground.float().mean() < 0.8  # an object on a black background
        # the loader's points project onto the object in every view
        camera = sample.points @ sample.viewmats[:, :3, :3].transpose(1, 2) + sample.viewmats[:, None, :3, 3]
        projected = camera @ sample.Ks.transpose(1, 2)
        u = (projected[..., 0] / projected[..., 2]).floor().long().clamp(0, 31)
        v = (projected[..., 1] / projected[..., 2]).floor().long().clamp(0, 31)
        hits = foreground[torch.arange(3)[:, None], v, u]
        assert hits.float().mean() > 0.95, sample.name
    # in the object datasets' frame: the stored (y-up) cloud on the unit sphere
    stored = torch.from_numpy(from_camera_frame(dataset[0].points.double().numpy()))
    torch.testing.assert_close(moved[0].points, normalize_unit_sphere(stored).float(), atol=1e-5, rtol=1e-5)


def _pixels_and_depths(sample):
    camera = sample.points @ sample.viewmats[:, :3, :3].transpose(1, 2) + sample.viewmats[:, None, :3, 3]
    projected = camera @ sample.Ks.transpose(1, 2)
    return projected[..., :2] / projected[..., 2:], camera[..., 2]


def _rotation_to_quat(rotation):
    """wxyz quaternion of a rotation matrix whose trace exceeds -1."""
    w = math.sqrt(1.0 + float(rotation.trace())) / 2
    return torch.tensor([w, (rotation[2, 1] - rotation[1, 2]) / (4 * w), (rotation[0, 2] - rotation[2, 0]) / (4 * w),
                         (rotation[1, 0] - rotation[0, 1]) / (4 * w)])


def _quat_product(a, b):
    w1, x1, y1, z1 = a.unbind(-1)
    w2, x2, y2, z2 = b.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], dim=-1)


def test_normalize_with_cameras_moves_cloud_and_cameras_and_renders_the_same(tmp_path):
    cameras = [np.eye(4), np.eye(4)]
    cameras[0][:3, 3] = [0.1, 0.0, -2.5]
    cameras[1][:3, :3] = _turn_about_y(0.9)
    cameras[1][:3, 3] = cameras[1][:3, :3] @ np.array([0.0, 0.2, -2.2])
    rng = np.random.default_rng(4)
    cloud = 0.3 * rng.normal(size=(60, 3)) + np.array([0.2, -0.1, 0.05])
    _write_object(tmp_path, "s", "m", cameras, cloud)
    sample = ShapeNetRenders(tmp_path, split="test", views=None, num_points=60)[0]
    moved = NormalizeWithCameras()(sample)

    # the stored cloud's frame (y up), centred on the unit sphere
    np.testing.assert_allclose(np.sort(moved.points.numpy(), axis=0),
                               np.sort(normalize_unit_sphere(torch.from_numpy(cloud)).numpy(), axis=0), atol=1e-5)
    np.testing.assert_allclose(from_camera_frame(to_camera_frame(cloud)), cloud)
    rotations = moved.viewmats[:, :3, :3]
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6, rtol=0)
    # every point keeps its pixel, its depth scales with the cloud
    scale, rotation, centre = NormalizeWithCameras().similarity(sample.points)
    (pixels, depths), (moved_pixels, moved_depths) = _pixels_and_depths(sample), _pixels_and_depths(moved)
    torch.testing.assert_close(moved_pixels, pixels, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(moved_depths, scale * depths, atol=1e-5, rtol=1e-5)
    # Gaussians in the old frame and their images under the similarity render the same images
    count = 40
    generator = torch.Generator().manual_seed(0)
    means = sample.points[:count]
    quats = torch.nn.functional.normalize(torch.randn(count, 4, generator=generator), dim=-1)
    scales = 0.01 + 0.05 * torch.rand(count, 3, generator=generator)
    opacities = 0.3 + 0.6 * torch.rand(count, generator=generator)
    colours = torch.rand(count, 3, generator=generator)
    turn = _rotation_to_quat(rotation)
    torch.testing.assert_close(quat_to_rotmat(turn[None].double())[0], rotation)
    images, alphas, _ = rasterize_gaussians(means, quats, scales, opacities, colours, sample.viewmats, sample.Ks,
                                            128, 128)
    moved_images, moved_alphas, _ = rasterize_gaussians(
        (scale * (means.double() - centre) @ rotation.T).float(), _quat_product(turn.float(), quats), scale * scales,
        opacities, colours, moved.viewmats, moved.Ks, 128, 128)
    assert float(alphas.amax()) > 0.5
    torch.testing.assert_close(moved_images, images, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(moved_alphas, alphas, atol=1e-4, rtol=1e-4)
    # only the scale, no turn
    kept_axes = NormalizeWithCameras(radius=0.5, stored_axes=False)(sample)
    torch.testing.assert_close(kept_axes.points, 0.5 * normalize_unit_sphere(sample.points), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="radius must be > 0"):
        NormalizeWithCameras(radius=0.0)
    flat = RenderSample(torch.zeros(5, 3), sample.images, sample.viewmats, sample.Ks, "flat")
    with pytest.raises(ValueError, match="no scale to normalise"):
        NormalizeWithCameras()(flat)


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data", "synth-renders", "--out", str(tmp_path), "--per-class", "1", "--views", "2", "--points", "64",
              "--gaussians", "300", "--image-size", "16", "--seed", "5"])
    assert stop.value.code == 0
    assert "wrote 15 objects x 2 views" in capsys.readouterr().out
    image = np.asarray(Image.open(tmp_path / "chair" / "0000" / "easy" / "01.png"))
    assert image.shape == (16, 16, 3)
    cloud = np.load(tmp_path / "chair" / "0000" / "pts" / "chair-0000.npy")
    assert cloud.shape == (64, 3) and cloud.dtype == np.float32


def test_rotate_with_cameras_keeps_every_point_on_its_pixels(tmp_path):
    cameras = [np.eye(4), np.eye(4)]
    cameras[0][2, 3] = 2.0
    cameras[1][:3, :3] = _turn_about_y(0.7)
    cameras[1][:3, 3] = [0.3, -0.2, 1.8]
    _write_object(tmp_path, "s", "m", cameras, np.random.default_rng(3).normal(size=(40, 3)))
    sample = ShapeNetRenders(tmp_path, split="test", views=None, num_points=40)[0]

    def pixels(s):
        camera = s.points @ s.viewmats[:, :3, :3].transpose(1, 2) + s.viewmats[:, None, :3, 3]
        projected = camera @ s.Ks.transpose(1, 2)
        return projected[..., :2] / projected[..., 2:]

    turned = RotateWithCameras()(sample, torch.Generator().manual_seed(0))
    assert not torch.allclose(turned.points, sample.points, atol=1e-3)
    torch.testing.assert_close(pixels(turned), pixels(sample), atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(turned.points.norm(dim=1), sample.points.norm(dim=1), atol=1e-5, rtol=1e-5)
    about_z = RotateWithCameras((0.0, 0.0, math.pi))(sample, torch.Generator().manual_seed(1))
    torch.testing.assert_close(about_z.points[:, 2], sample.points[:, 2])  # only the vertical axis turns
    with pytest.raises(ValueError, match="3 non-negative bounds"):
        RotateWithCameras((0.1, 0.1))
