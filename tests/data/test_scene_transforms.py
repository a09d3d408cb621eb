"""Scene transforms: one hand-checkable expectation per transform, determinism, bad parameters."""

import pytest
import torch

from ppt.data import SceneSample
from ppt.data.scenes import transforms as T
from ppt.data.scenes.rooms import synthesize_room
from ppt.data.scenes.transforms import _box_blur, _trilinear

pytestmark = pytest.mark.usefixtures("single_thread")


def _sample(coord, color=None, normal=None, segment=None) -> SceneSample:
    coord = torch.as_tensor(coord, dtype=torch.float32)
    n = coord.shape[0]
    return SceneSample(
        coord=coord,
        color=torch.zeros(n, 3) if color is None else torch.as_tensor(color, dtype=torch.float32),
        normal=torch.nn.functional.normalize(torch.ones(n, 3), dim=1) if normal is None else torch.as_tensor(normal, dtype=torch.float32),
        segment=torch.arange(n) if segment is None else torch.as_tensor(segment),
        instance=torch.full((n,), -1), name="hand", condition="ScanNet")


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_center_shift():
    sample = _sample([[0, 0, 1], [2, 4, 3]])
    assert T.CenterShift(apply_z=True)(sample, _g()).coord.tolist() == [[-1, -2, 0], [1, 2, 2]]
    assert T.CenterShift(apply_z=False)(sample, _g()).coord.tolist() == [[-1, -2, 1], [1, 2, 3]]


def test_random_dropout():
    sample = _sample(torch.arange(24.0).reshape(8, 3))
    out = T.RandomDropout(dropout_ratio=0.25, application_ratio=1.0)(sample, _g())
    assert out.num_points == 6
    rows = out.segment  # segment holds the original row numbers
    assert rows.unique().numel() == 6 and torch.equal(rows, rows.sort().values)
    assert torch.equal(out.coord, sample.coord[rows])
    assert T.RandomDropout(application_ratio=0.0)(sample, _g()) is sample


@pytest.mark.parametrize("axis, point, expected", [
    ("z", [1, 0, 0], [0, 1, 0]), ("x", [0, 1, 0], [0, 0, 1]), ("y", [0, 0, 1], [1, 0, 0])])
def test_random_rotate_quarter_turn(axis, point, expected):
    sample = _sample([point], normal=[point])
    out = T.RandomRotate(angle=(0.5, 0.5), axis=axis, center=(0, 0, 0), p=1.0)(sample, _g())
    torch.testing.assert_close(out.coord, torch.tensor([expected], dtype=torch.float32), atol=1e-7, rtol=0)
    torch.testing.assert_close(out.normal, torch.tensor([expected], dtype=torch.float32), atol=1e-7, rtol=0)


def test_random_rotate_about_the_box_centre_and_probability():
    sample = _sample([[0, 0, 0], [2, 0, 0]])
    out = T.RandomRotate(angle=(1, 1), axis="z", p=1.0)(sample, _g())  # half turn about (1, 0, 0)
    torch.testing.assert_close(out.coord, torch.tensor([[2.0, 0, 0], [0, 0, 0]]), atol=1e-6, rtol=0)
    assert T.RandomRotate(p=0.0)(sample, _g()) is sample
    turned = T.RandomRotateTargetAngle(angles=(1.0,), center=(0, 0, 0), p=1.0)(_sample([[1, 2, 3]]), _g())
    torch.testing.assert_close(turned.coord, torch.tensor([[-1.0, -2, 3]]), atol=1e-6, rtol=0)


def test_random_scale():
    sample = _sample([[1, 2, 3], [-1, 0, 2]])
    assert T.RandomScale(scale=(2, 2))(sample, _g()).coord.tolist() == [[2, 4, 6], [-2, 0, 4]]
    out = T.RandomScale(scale=(1, 3), anisotropic=True)(_sample([[1, 1, 1]]), _g(3))
    factors = out.coord[0]
    assert ((factors >= 1) & (factors <= 3)).all() and factors.unique().numel() == 3


def test_random_flip():
    sample = _sample([[1, 2, 3]], normal=[[0.6, 0.8, 0]])
    out = T.RandomFlip(p=1.0)(sample, _g())
    assert out.coord.tolist() == [[-1, -2, 3]]
    torch.testing.assert_close(out.normal, torch.tensor([[-0.6, -0.8, 0.0]]))
    assert torch.equal(T.RandomFlip(p=0.0)(sample, _g()).coord, sample.coord)


def test_random_jitter_is_clipped():
    sample = _sample(torch.zeros(1000, 3))
    out = T.RandomJitter(sigma=1.0, clip=0.05)(sample, _g())
    assert out.coord.abs().max() <= 0.05 and (out.coord.abs() == 0.05).float().mean() > 0.9
    small = T.RandomJitter(sigma=0.001, clip=0.05)(sample, _g())
    assert 0.0008 < small.coord.std() < 0.0012


def test_box_blur_of_a_delta_twice_is_the_triangle():
    noise = torch.zeros(7, 7, 7, 1)
    noise[3, 3, 3] = 1
    blurred = _box_blur(_box_blur(noise))
    profile = torch.tensor([0, 1, 2, 3, 2, 1, 0]) / 9  # [1, 1, 1]/3 convolved with itself
    expected = profile[:, None, None] * profile[None, :, None] * profile[None, None, :]
    torch.testing.assert_close(blurred[..., 0], expected.float())


def test_trilinear_reproduces_a_linear_field():
    grid = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(5.0), torch.arange(3.0), indexing="ij"), -1)
    values = (grid @ torch.tensor([1.0, -2.0, 0.5]) + 3)[..., None].double()
    position = torch.rand(50, 3, generator=_g(), dtype=torch.float64) * torch.tensor([3.0, 4.0, 2.0])
    expected = position @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 3
    torch.testing.assert_close(_trilinear(values, position)[:, 0], expected)


def test_elastic_distortion_is_a_smooth_bounded_field():
    base = torch.rand(2000, 3, generator=_g(), dtype=torch.float64) * 4
    near = base + 1e-3
    coord = torch.cat([base, base[:5], near])
    sample = _sample(coord.float())
    out = T.ElasticDistortion(distortion_params=((0.2, 0.4),), p=1.0)(sample, _g(1))
    displacement = (out.coord - sample.coord).double()
    assert displacement.abs().max() > 0.01  # it moves points ...
    assert displacement.abs().max() < 0.4 * 4  # ... by at most magnitude x max |noise| (blurred noise < 4)
    torch.testing.assert_close(displacement[2000:2005], displacement[:5])  # same point, same shift
    # Lipschitz: the blurred grid field has slope <= max |noise| / granularity per axis.
    step = (displacement[2005:] - displacement[:2000]).abs().max()
    assert step < 0.4 * 4 / 0.2 * 3e-3
    assert T.ElasticDistortion(distortion_params=((0.2, 0.0),), p=1.0)(sample, _g()).coord.equal(sample.coord)
    again = T.ElasticDistortion(distortion_params=((0.2, 0.4),), p=1.0)(sample, _g(1))
    assert torch.equal(again.coord, out.coord)


def test_chromatic_auto_contrast():
    color = [[50, 10, 0], [100, 20, 0], [150, 30, 0]]
    out = T.ChromaticAutoContrast(p=1.0, blend_factor=1.0)(_sample(torch.zeros(3, 3), color=color), _g())
    torch.testing.assert_close(out.color, torch.tensor([[0, 0, 0], [127.5, 127.5, 0], [255, 255, 0]]))
    half = T.ChromaticAutoContrast(p=1.0, blend_factor=0.5)(_sample(torch.zeros(3, 3), color=color), _g())
    torch.testing.assert_close(half.color[:, 0], torch.tensor([25.0, 113.75, 202.5]))
    flat = _sample(torch.zeros(2, 3), color=[[7, 7, 7], [7, 7, 7]])
    assert T.ChromaticAutoContrast(p=1.0)(flat, _g()) is flat


def test_chromatic_translation_and_jitter():
    color = torch.full((4000, 3), 128.0)
    color[0] = 255
    out = T.ChromaticTranslation(p=1.0, ratio=0.05)(_sample(torch.zeros(4000, 3), color=color), _g())
    offset = out.color[1] - 128
    assert (offset.abs() <= 0.05 * 255).all() and torch.equal(out.color[1:], (color[1:] + offset))
    assert out.color.max() <= 255
    jittered = T.ChromaticJitter(p=1.0, std=0.05)(_sample(torch.zeros(4000, 3), color=color), _g())
    noise = jittered.color[1:] - 128
    assert abs(noise.std() - 0.05 * 255) < 0.5 and abs(noise.mean()) < 0.5
    assert T.ChromaticJitter(p=0.0)(_sample(torch.zeros(1, 3)), _g()).color.equal(torch.zeros(1, 3))


def _voxel_scene():
    # voxels of edge 1: (0,0,0) holds rows 0, 1, 3; (1,0,0) holds row 2; (3,2,0) holds row 4
    return _sample([[0.1, 0.1, 0.1], [0.9, 0.2, 0.3], [1.5, 0.1, 0.1], [0.5, 0.5, 0.5], [3.2, 2.5, 0.5]],
                   segment=[5, 6, 7, 8, 9])


def test_grid_sample_keeps_one_random_point_per_voxel():
    sample = _voxel_scene()
    picked = set()
    for seed in range(20):
        out = T.GridSample(grid_size=1.0, return_inverse=True)(sample, _g(seed))
        assert out.grid_coord.tolist() == [[0, 0, 0], [1, 0, 0], [3, 2, 0]]
        assert out.segment[1:].tolist() == [7, 9] and out.segment[0].item() in (5, 6, 8)
        assert out.inverse.tolist() == [0, 0, 1, 0, 2] and out.origin_segment.tolist() == [5, 6, 7, 8, 9]
        picked.add(out.segment[0].item())
    assert picked == {5, 6, 8}
    # Grid starts at the scene's minimum voxel (negative coordinates too).
    shifted = T.GridSample(grid_size=1.0)(_sample([[-0.5, -3.5, 0], [0.5, 0, 0]]), _g())
    assert shifted.grid_coord.tolist() == [[0, 0, 0], [1, 4, 0]]  # floor(-3.5) = -4


def test_inverse_survives_shuffle_and_crop():
    sample = _voxel_scene()
    out = T.ShufflePoint()(T.GridSample(grid_size=1.0, return_inverse=True)(sample, _g()), _g(3))
    assert torch.equal(out.grid_coord[out.inverse], torch.tensor([[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [3, 2, 0]],
                                                                  dtype=torch.int32))
    cropped = T.SphereCrop(point_max=2, mode="center")(T.GridSample(grid_size=1.0, return_inverse=True)(sample, _g()), _g())
    # centre = row 1 (voxel (1,0,0)); the far voxel (3,2,0) is dropped: its points map to -1
    assert cropped.inverse.tolist() == [0, 0, 1, 0, -1]


def test_grid_fragments_cover_every_point():
    sample = _voxel_scene()
    fragments = T.GridFragments(grid_size=1.0)(sample)
    assert len(fragments) == 3  # the fullest voxel has three points
    assert [f.index.tolist() for f in fragments] == [[0, 2, 4], [1, 2, 4], [3, 2, 4]]
    for fragment in fragments:
        assert fragment.grid_coord.tolist() == [[0, 0, 0], [1, 0, 0], [3, 2, 0]]
        assert torch.equal(fragment.segment, sample.segment[fragment.index])


def test_sphere_crop():
    line = _sample([[float(i), 0, 0] for i in range(10)])
    assert T.SphereCrop(point_max=3, mode="center")(line, _g()).segment.tolist() == [4, 5, 6]
    assert T.SphereCrop(sample_rate=0.5, mode="center")(line, _g()).num_points == 5
    for seed in range(5):
        rows = T.SphereCrop(point_max=4)(line, _g(seed)).segment
        assert rows.max() - rows.min() <= 4  # a ball of 4 points on a line spans at most 5 units
    assert T.SphereCrop(point_max=10)(line, _g()) is line


def test_normalize_color_and_shuffle():
    sample = _sample(torch.arange(30.0).reshape(10, 3), color=torch.full((10, 3), 255.0))
    assert torch.equal(T.NormalizeColor()(sample, _g()).color, torch.ones(10, 3))
    shuffled = T.ShufflePoint()(sample, _g(1))
    assert sorted(shuffled.segment.tolist()) == list(range(10)) and shuffled.segment.tolist() != list(range(10))
    assert torch.equal(shuffled.coord, sample.coord[shuffled.segment])
    assert torch.equal(T.ShufflePoint()(sample, _g(1)).segment, shuffled.segment)


def _pointcept_chain():
    return T.Compose([
        T.CenterShift(apply_z=True), T.RandomDropout(0.2, 0.2),
        T.RandomRotate(angle=(-1, 1), axis="z", center=(0, 0, 0), p=0.5),
        T.RandomRotate(angle=(-1 / 64, 1 / 64), axis="x"), T.RandomRotate(angle=(-1 / 64, 1 / 64), axis="y"),
        T.RandomScale(scale=(0.9, 1.1)), T.RandomFlip(), T.RandomJitter(sigma=0.005, clip=0.02), T.ElasticDistortion(),
        T.ChromaticAutoContrast(), T.ChromaticTranslation(), T.ChromaticJitter(std=0.05), T.GridSample(grid_size=0.05),
        T.SphereCrop(point_max=3000), T.CenterShift(apply_z=False), T.NormalizeColor(), T.ShufflePoint()])


def test_chain_is_deterministic_per_seed():
    room = synthesize_room("scannet", 0, density=0.05)
    sample = SceneSample(torch.from_numpy(room.coord), torch.from_numpy(room.color).float(), torch.from_numpy(room.normal),
                         torch.from_numpy(room.segment), torch.from_numpy(room.instance), "room", "ScanNet")
    chain = _pointcept_chain()
    a, b, c = chain(sample, _g(7)), chain(sample, _g(7)), chain(sample, _g(8))
    assert a.num_points <= 3000 and a.grid_coord is not None
    assert torch.equal(a.coord, b.coord) and torch.equal(a.color, b.color) and torch.equal(a.segment, b.segment)
    assert a.num_points != c.num_points or not torch.equal(a.coord, c.coord)
    assert 0 <= a.color.min() and a.color.max() <= 1
    torch.testing.assert_close(a.normal.norm(dim=1), torch.ones(a.num_points))
    # CenterShift(apply_z=False) last: the xy box is centred
    torch.testing.assert_close((a.coord[:, :2].amin(0) + a.coord[:, :2].amax(0)) / 2, torch.zeros(2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("make, message", [
    (lambda: T.RandomRotate(axis="w"), "axis"), (lambda: T.RandomRotate(angle=(1, -1)), "low <= high"),
    (lambda: T.RandomDropout(dropout_ratio=1.0), "dropout_ratio"), (lambda: T.RandomFlip(p=2), "p must be"),
    (lambda: T.GridSample(grid_size=0), "grid_size"), (lambda: T.SphereCrop(mode="edge"), "mode"),
    (lambda: T.RandomJitter(clip=0), "clip"), (lambda: T.ElasticDistortion(distortion_params=((0, 1),)), "granularity")])
def test_bad_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sample_rejects_mismatched_fields():
    with pytest.raises(ValueError, match="segment must be torch.int64 of shape"):
        SceneSample(torch.zeros(3, 3), torch.zeros(3, 3), None, torch.zeros(2, dtype=torch.long),
                    torch.zeros(3, dtype=torch.long), "bad", "ScanNet")
