"""UniPre3D scene level data: ScanNet frame layout, camera conventions, frame choice, synthetic frames."""

import shutil

import numpy as np
import pytest
import torch

from ppt.cli import main
from ppt.data import ScanNetFrames, collate_frames, write_synthetic_frames
from ppt.data.frames.scannet_frames import OFFICIAL_INTRINSICS_160x120, read_pose, resize_intrinsics, select_frames
from ppt.models.unipre3d_scene import backproject_depth
from ppt.ops import knn, rasterize_gaussians

pytestmark = pytest.mark.usefixtures("single_thread")

# ScanNet scene0000_00's colour camera (intrinsic_color.txt) at 1296 x 968.
SCANNET_COLOR = np.array([[1169.621094, 0.0, 646.295044], [0.0, 1167.105103, 489.927032], [0.0, 0.0, 1.0]])


def _pixel_of(point, K, width, height):
    """Row and column of the brightest pixel when a tiny Gaussian at ``point`` (camera frame) is rendered."""
    images, _, _ = rasterize_gaussians(
        torch.tensor([point], dtype=torch.float32), torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.full((1, 3), 1e-4),
        torch.ones(1), torch.ones(1, 1), torch.eye(4)[None], K[None], width, height)
    return divmod(int(images[0, ..., 0].argmax()), width)


def test_a_known_point_lands_on_the_expected_pixel_after_resizing_to_160x120():
    # A point that ScanNet's camera sees at the centre of pixel (column 1000, row 150) of the 1296 x 968 frame.
    depth = 2.0
    point = [(1000 - SCANNET_COLOR[0, 2]) / SCANNET_COLOR[0, 0] * depth,
             (150 - SCANNET_COLOR[1, 2]) / SCANNET_COLOR[1, 1] * depth, depth]
    K = resize_intrinsics(SCANNET_COLOR, (1296, 968), (160, 120))
    # The pixel centre (1000.5, 150.5) in ppt's convention scales by 160/1296 and 120/968: (123.5, 18.7).
    assert _pixel_of(point, K, 160, 120) == (18, 123)
    assert K[1, 1] == pytest.approx(1167.105103 * 120 / 968)
    # The official renderer's single 57.95 degree field of view gives a vertical focal length of
    # 108.3 px at 160 x 120 (instead of ~144.5): the same point lands 11 rows lower.
    broken = K.clone()
    broken[1, 1] = 120 / (2 * np.tan(np.radians(57.9516132895 / 2)))
    assert _pixel_of(point, broken, 160, 120)[0] == 29


def test_official_intrinsics_are_converted_to_ppt_pixel_centres():
    K = resize_intrinsics(OFFICIAL_INTRINSICS_160x120, (160, 120), (160, 120))
    assert torch.allclose(K, torch.tensor([[144.46765125, 0, 80.0], [0, 144.46765125, 60.0], [0, 0, 1]]))


def test_select_frames_spreads_targets_and_keeps_references_near():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        targets, references = select_frames(100, 8, 5, generator)
        bounds = [0, 12, 25, 38, 50, 62, 75, 88, 100]  # 8 runs of 12 or 13 frames
        assert all(bounds[b] <= t < bounds[b + 1] for b, t in enumerate(targets))
        assert all(0 < abs(t - r) <= 5 and 0 <= r < 100 for t, r in zip(targets, references))
    assert select_frames(16, 8, 5, None) == ([0, 2, 4, 6, 8, 10, 12, 14], [1, 3, 5, 7, 9, 11, 13, 15])
    with pytest.raises(ValueError, match="1 frames with a valid pose, need at least 2"):
        select_frames(1, 1, 5, None)


def test_invalid_poses_are_recognised(tmp_path):
    path = tmp_path / "0.txt"
    np.savetxt(path, np.full((4, 4), -np.inf))
    assert read_pose(path) is None
    np.savetxt(path, np.eye(4))
    assert np.array_equal(read_pose(path), np.eye(4))
    np.savetxt(path, np.eye(3))
    with pytest.raises(ValueError, match="expected a 4 x 4 camera-to-world matrix"):
        read_pose(path)


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny renders: as the single_thread fixture, which a module fixture cannot use
    write_synthetic_frames(root, 1, frames=14, size=(48, 36), depth_size=(24, 18), density=0.1, seed=3)
    torch.set_num_threads(threads)
    return root


def test_synthetic_frames_layout(frames_root):
    scene = next((frames_root / "train").iterdir()).name
    assert sorted(p.name for p in (frames_root / "2D").iterdir()) == ["color", "depth", "intrinsic", "pose"]
    from PIL import Image

    depth = np.asarray(Image.open(frames_root / "2D" / "depth" / scene / "5.png"))
    assert depth.dtype == np.uint16 and depth.shape == (18, 24)
    assert (depth > 0).mean() > 0.9 and 300 < np.median(depth[depth > 0]) < 8000  # millimetres
    assert Image.open(frames_root / "2D" / "color" / scene / "5.jpg").size == (48, 36)
    intrinsic = np.loadtxt(frames_root / "2D" / "intrinsic" / scene / "intrinsic_depth.txt")
    assert intrinsic.shape == (4, 4) and intrinsic[0, 2] == pytest.approx(11.5)


def test_loader_on_synthetic_frames(frames_root, tmp_path):
    dataset = ScanNetFrames(frames_root, "train", targets=4, size=(40, 30))
    sample = dataset[0]
    assert sample.images.shape == (4, 30, 40, 3) and sample.reference_depths.shape == (4, 30, 40)
    assert 0 <= float(sample.images.min()) and float(sample.images.max()) <= 1
    assert all(0 < abs(t - r) <= 5 for t, r in zip(sample.frames, sample.reference_frames))
    assert sample.points.grid_coord is not None and float(sample.points.color.max()) <= 1
    # The cloud is centred and the cameras moved with it: the reference depths back-project onto the cloud.
    assert torch.allclose(sample.points.coord.mean(0), torch.zeros(3), atol=0.2)
    world = backproject_depth(sample.reference_depths, sample.reference_viewmats, sample.depth_Ks)
    valid = sample.reference_depths > 0.05
    dist2, _ = knn(world[valid][None], sample.points.coord[None], 1)
    # Within the sparse cloud's spacing (~8 cm at this density), and far closer than with another frame's camera.
    assert float(dist2.sqrt().median()) < 0.1
    shuffled = backproject_depth(sample.reference_depths, sample.reference_viewmats.roll(1, 0), sample.depth_Ks)
    wrong, _ = knn(shuffled[valid][None], sample.points.coord[None], 1)
    assert float(dist2.sqrt().median()) < 0.5 * float(wrong.sqrt().median())
    # Every target frame sees the cloud where its image shows something.
    camera = sample.points.coord @ sample.viewmats[:, :3, :3].transpose(1, 2) + sample.viewmats[:, None, :3, 3]
    assert ((camera[..., 2] > 0.1).float().mean(1) > 0.2).all()
    # Same item, same frames; the next epoch draws others.
    assert dataset[0].frames == sample.frames
    dataset.set_epoch(1)
    assert dataset[0].frames != sample.frames
    batch = collate_frames([sample, dataset[0]])
    assert batch.images.shape == (2, 4, 30, 40, 3) and batch.points.batch_size == 2
    assert batch.points.feat.shape[1] == 6


def test_loader_skips_invalid_poses_and_falls_back_to_official_intrinsics(frames_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(frames_root, root)
    scene = next((root / "train").iterdir()).name
    np.savetxt(root / "2D" / "pose" / scene / "2.txt", np.full((4, 4), -np.inf))
    shutil.rmtree(root / "2D" / "intrinsic")
    dataset = ScanNetFrames(root, "train", targets=13, random_frames=False)
    sample = dataset[0]
    assert 2 not in sample.frames + sample.reference_frames
    assert torch.isfinite(sample.viewmats).all() and torch.isfinite(sample.reference_viewmats).all()
    assert len(dataset.scene_frames(scene).numbers) == 13
    assert torch.allclose(sample.Ks[0], resize_intrinsics(OFFICIAL_INTRINSICS_160x120, (160, 120), (160, 120)))
    with pytest.raises(ValueError, match="13 frames with a valid pose, need at least 14"):
        ScanNetFrames(root, "train", targets=14)[0]


def test_loader_bad_layouts(frames_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="frames_root"):
        ScanNetFrames(frames_root, "train", frames_root=tmp_path)
    root = tmp_path / "copy"
    shutil.copytree(frames_root, root)
    scene = next((root / "train").iterdir()).name
    (root / "2D" / "depth" / scene / "7.png").unlink()
    with pytest.raises(ValueError, match="every frame needs all three"):
        ScanNetFrames(root, "train", targets=4)[0]


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data", "synth-frames", "--out", str(tmp_path), "--scenes", "1", "--frames", "3", "--size", "16x12",
              "--depth-size", "8x6", "--density", "0.05"])
    assert stop.value.code == 0
    assert "wrote 1 rooms x 3 RGB-D frames" in capsys.readouterr().out
    assert len(list((tmp_path / "2D" / "pose").glob("*/*.txt"))) == 3
