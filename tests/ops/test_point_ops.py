"""Point ops (voxelize, farthest_point_sample, knn) against the pure-PyTorch references."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppt.ops import _reference as ref
from ppt.ops import farthest_point_sample, knn, voxelize

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _cloud(batches, n, dtype, device, scale=1.0):
    return (torch.randn(batches, n, 3, dtype=torch.float64) * scale).to(dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------------
# voxelize


def _voxelize_case(case, dtype, device):
    """(coord, voxel_size, batch) for a named case."""
    if case == "empty":
        return torch.empty(0, 3, dtype=dtype, device=device), 0.1, None
    if case == "single":
        return torch.tensor([[0.31, -2.7, 5.0]], dtype=dtype, device=device), 0.1, None
    if case == "duplicates":
        return torch.tensor([[1.0, 2.0, 3.0]] * 7 + [[-1.0, 0.0, 0.5]] * 3, dtype=dtype, device=device), 0.25, None
    if case == "on_boundaries":  # exact multiples of the voxel size land in the upper voxel
        values = torch.arange(-8, 9, dtype=torch.float64) * 0.5
        return torch.stack([values, values.flip(0), values * 0], 1).to(dtype=dtype, device=device), 0.5, None
    if case == "scene":
        return (torch.rand(5000, 3, dtype=torch.float64) * torch.tensor([6.0, 4.0, 3.0]) - 1).to(dtype=dtype, device=device), 0.05, None
    if case == "batched":
        coord = (torch.randn(4000, 3, dtype=torch.float64) * 2).to(dtype=dtype, device=device)
        batch = torch.randint(0, 5, (4000,), device=device)
        batch[batch == 2] = 3  # scene 2 has no points
        return coord, 0.1, batch
    if case == "non_contiguous":
        coord = (torch.randn(3, 3000, dtype=torch.float64) * 3).to(dtype=dtype, device=device).t()
        batch = torch.arange(6000, device=device).remainder(2)[::2]  # strided view, all zeros
        return coord, 0.2, batch
    raise ValueError(case)


VOXELIZE_CASES = ["empty", "single", "duplicates", "on_boundaries", "scene", "batched", "non_contiguous"]


@pytest.mark.parametrize("case", VOXELIZE_CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_voxelize_matches_reference(case, dtype, device):
    coord, voxel_size, batch = _voxelize_case(case, dtype, device)
    voxels, inverse, counts = voxelize(coord, voxel_size, batch)
    expected = ref.voxelize(coord, voxel_size, batch)
    assert voxels.dtype == torch.int32 and inverse.dtype == torch.int64 and counts.dtype == torch.int64
    for got, want in zip((voxels, inverse, counts), expected):
        assert got.device == coord.device
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 400),
    scenes=st.integers(1, 4),
    voxel_size=st.floats(1e-2, 5.0),
    scale=st.floats(1e-2, 1e2),
    offset=st.floats(-1e4, 1e4),
    seed=st.integers(0, 2**31 - 1),
)
def test_voxelize_random_clouds(n, scenes, voxel_size, scale, offset, seed):
    generator = torch.Generator().manual_seed(seed)
    coord = torch.randn(n, 3, generator=generator, dtype=torch.float64) * scale + offset
    coord = coord.float()
    batch = torch.randint(0, scenes, (n,), generator=generator)
    for got, want in zip(voxelize(coord, voxel_size, batch), ref.voxelize(coord, voxel_size, batch)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    batches=st.integers(1, 3),
    m=st.integers(1, 40),
    n=st.integers(1, 300),
    k_fraction=st.floats(0, 1),
    grid=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_knn_random_clouds(batches, m, n, k_fraction, grid, seed):
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(batches, n, 3, generator=generator)
    query = torch.randn(batches, m, 3, generator=generator)
    if grid:  # integer lattice coordinates: many exactly tied distances
        points, query = (points * 2).round(), (query * 2).round()
    k = round(k_fraction * n)
    _assert_knn_close(knn(query, points, k), ref.knn(query, points, k), torch.float32)


def test_voxelize_hand_checked():
    coord = torch.tensor([[0.05, 0.0, 0.0], [0.15, 0.0, 0.0], [0.12, 0.01, 0.0], [-0.05, 0.0, 0.0]])
    batch = torch.tensor([1, 1, 1, 0])
    voxels, inverse, counts = voxelize(coord, 0.1, batch)
    # scene 0: one voxel at its own minimum; scene 1: x voxels 0 and 1 after subtracting its min.
    assert voxels.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert inverse.tolist() == [1, 2, 2, 0]
    assert counts.tolist() == [1, 1, 2]


def test_voxelize_grid_is_world_aligned():
    # Pointcept GridSample: floor(coord / size) before subtracting the minimum, so a cloud starting
    # mid-voxel keeps world voxel boundaries (0.09 and 0.11 straddle the boundary at 0.1).
    coord = torch.tensor([[0.09, 0.0, 0.0], [0.11, 0.0, 0.0]])
    voxels, _, _ = voxelize(coord, 0.1)
    assert voxels[:, 1].tolist() == [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(coord=torch.zeros(5, 2), voxel_size=0.1), r"coord must have shape \(N, 3\)"),
        (dict(coord=torch.zeros(5, 3, dtype=torch.long), voxel_size=0.1), "coord must be a floating-point tensor"),
        (dict(coord=torch.zeros(5, 3), voxel_size=0.0), "voxel_size must be a positive finite number"),
        (dict(coord=torch.zeros(5, 3), voxel_size=float("nan")), "voxel_size must be a positive finite number"),
        (dict(coord=torch.zeros(5, 3), voxel_size=0.1, batch=torch.zeros(4, dtype=torch.long)), r"batch must have shape \(N,\)"),
        (dict(coord=torch.zeros(5, 3), voxel_size=0.1, batch=torch.zeros(5, dtype=torch.int32)), "batch must have dtype Long"),
        (dict(coord=torch.zeros(2, 3), voxel_size=0.1, batch=torch.tensor([0, -1])), "batch ids must be >= 0"),
        (dict(coord=torch.tensor([[0.0, float("nan"), 0.0]]), voxel_size=0.1), r"coord\[0\] .* is not finite"),
        (dict(coord=torch.tensor([[0.0, 0.0, 0.0], [0.0, float("inf"), 0.0]]), voxel_size=0.1), r"coord\[1\]"),
        (dict(coord=torch.tensor([[0.0, 0.0, 0.0], [3e9, 0.0, 0.0]]), voxel_size=1.0), "more than the int32 voxel_coords can hold"),
        (dict(coord=torch.tensor([[0.0, 0.0, 0.0], [2e9, 2e9, 2e9]]), voxel_size=1.0), "63-bit voxel key packing"),
    ],
)
def test_voxelize_bad_input(kwargs, message, device):
    kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    with pytest.raises(RuntimeError, match=message):
        voxelize(**kwargs)


@pytest.mark.parametrize(
    "voxel_size, error, message",
    [
        ("0.1", TypeError, "voxelize: voxel_size must be a real number, got str '0.1'"),
        (True, TypeError, "voxelize: voxel_size must be a real number, got bool True"),
        (None, TypeError, "voxelize: voxel_size must be a real number, got NoneType"),
        (float("inf"), RuntimeError, "voxel_size must be a positive finite number, got inf"),
        (-0.5, RuntimeError, "voxel_size must be a positive finite number, got -0.5"),
    ],
)
def test_voxelize_voxel_size_must_be_a_positive_number(voxel_size, error, message):
    with pytest.raises(error, match=message):
        voxelize(torch.zeros(5, 3), voxel_size)


def test_voxelize_device_mismatch():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU to build a mixed-device input")
    with pytest.raises(RuntimeError, match="coord and batch must be on the same device"):
        voxelize(torch.zeros(3, 3, device="cuda"), 0.1, torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# farthest point sampling

FPS_CASES = [  # (batches, n, num_samples, start_index)
    (1, 1, 1, 0),
    (2, 5, 0, 0),
    (0, 7, 3, 0),
    (3, 100, 100, 0),
    (4, 2048, 128, 0),
    (2, 600, 37, 599),
]


@pytest.mark.parametrize("batches, n, num_samples, start_index", FPS_CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fps_matches_reference(batches, n, num_samples, start_index, dtype, device):
    xyz = _cloud(batches, n, dtype, device)
    got = farthest_point_sample(xyz, num_samples, start_index)
    assert got.shape == (batches, num_samples) and got.dtype == torch.int64
    torch.testing.assert_close(got, ref.farthest_point_sample(xyz, num_samples, start_index), rtol=0, atol=0)


def test_fps_large_single_cloud_splits_work(device):
    # One cloud and many points takes the path that splits the distance update across threads.
    xyz = _cloud(1, 40000, torch.float32, device)
    torch.testing.assert_close(farthest_point_sample(xyz, 64, 5), ref.farthest_point_sample(xyz, 64, 5), rtol=0, atol=0)


def test_fps_ties_go_to_lower_index(device):
    # Points 1 and 3 are equally far from point 0; after them every remaining distance ties at 0.
    xyz = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 0, 0], [-1, 0, 0], [0, 0, 0]]], device=device)
    assert farthest_point_sample(xyz, 4).tolist() == [[0, 1, 3, 0]]


def test_fps_non_contiguous(device):
    xyz = _cloud(6, 300, torch.float32, device)[::2]
    xyz_t = xyz.transpose(1, 2).contiguous().transpose(1, 2)
    assert not xyz_t.is_contiguous()
    torch.testing.assert_close(farthest_point_sample(xyz_t, 20), ref.farthest_point_sample(xyz, 20), rtol=0, atol=0)


@pytest.mark.parametrize(
    "xyz, num_samples, start_index, message",
    [
        (torch.zeros(10, 3), 2, 0, r"xyz must have shape \(B, N, 3\)"),
        (torch.zeros(1, 10, 2), 2, 0, r"xyz must have shape \(B, N, 3\)"),
        (torch.zeros(1, 10, 3, dtype=torch.int32), 2, 0, "xyz must be a floating-point tensor"),
        (torch.zeros(1, 10, 3), 11, 0, r"num_samples must be in \[0, N\] with N=10"),
        (torch.zeros(1, 10, 3), -1, 0, r"num_samples must be in \[0, N\]"),
        (torch.zeros(1, 10, 3), 2, 10, r"start_index must be in \[0, N\)"),
        (torch.tensor([[[0.0, 0, 0], [float("nan"), 0, 0]]]), 2, 0, "xyz contains NaN or Inf"),
    ],
)
def test_fps_bad_input(xyz, num_samples, start_index, message, device):
    with pytest.raises(RuntimeError, match=message):
        farthest_point_sample(xyz.to(device), num_samples, start_index)


@pytest.mark.parametrize(
    "num_samples, start_index, message",
    [
        (5.7, 0, "farthest_point_sample: num_samples must be an int, got float 5.7"),
        (5.0, 0, "farthest_point_sample: num_samples must be an int, got float 5.0"),
        (True, 0, "farthest_point_sample: num_samples must be an int, got bool True"),
        ("5", 0, "farthest_point_sample: num_samples must be an int, got str '5'"),
        (torch.tensor(5.0), 0, "farthest_point_sample: num_samples must be an int, got Tensor"),
        (5, 1.0, "farthest_point_sample: start_index must be an int, got float 1.0"),
    ],
)
def test_fps_counts_must_be_integers(num_samples, start_index, message):
    with pytest.raises(TypeError, match=message):
        farthest_point_sample(torch.zeros(1, 10, 3), num_samples, start_index)


def test_fps_accepts_integer_like_counts():
    xyz = _cloud(1, 10, torch.float32, "cpu")
    want = farthest_point_sample(xyz, 5, 2)
    for num_samples in (np.int64(5), torch.tensor(5)):
        assert torch.equal(farthest_point_sample(xyz, num_samples, np.int32(2)), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fps_rejects_coordinates_whose_squared_distances_overflow(dtype, device):
    # Beyond 1e18, float32 squared distances overflow to Inf, every candidate ties and FPS would
    # return 0, 1, 2, ... (float16 cannot hold such values, only Inf).
    xyz = torch.tensor([[[1e20, 0, 0], [0, 0, 0], [-1e20, 0, 0]]], device=device)
    message = (r"xyz has a coordinate of magnitude [0-9.]+e\+(19|20); coordinates must be at most 1e\+18"
               if dtype != torch.float16
               else "xyz contains NaN or Inf")
    with pytest.raises(RuntimeError, match=message):
        farthest_point_sample(xyz.to(dtype), 2)
    # float64 accumulates in float64: the same cloud is fine.
    assert farthest_point_sample(xyz.double(), 3).tolist() == [[0, 2, 1]]


# ---------------------------------------------------------------------------------------------
# kNN

KNN_CASES = [  # (batches, m, n, k)
    (1, 1, 1, 1),
    (2, 3, 5, 0),
    (0, 4, 6, 2),
    (2, 0, 6, 2),
    (3, 17, 40, 40),
    (2, 128, 2048, 32),
    (2, 64, 700, 100),
]


def _assert_knn_close(got, expected, dtype):
    (dist, index), (ref_dist, ref_index) = got, expected
    torch.testing.assert_close(index, ref_index, rtol=0, atol=0)
    torch.testing.assert_close(dist, ref_dist, rtol=0, atol=0)
    assert dist.dtype == dtype and index.dtype == torch.int64


@pytest.mark.parametrize("batches, m, n, k", KNN_CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_knn_matches_reference(batches, m, n, k, dtype, device):
    query, points = _cloud(batches, m, dtype, device), _cloud(batches, n, dtype, device)
    _assert_knn_close(knn(query, points, k), ref.knn(query, points, k), dtype)


def test_knn_duplicates_tie_to_lower_index(device):
    points = torch.tensor([[[1.0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]]], device=device)
    query = torch.zeros(1, 1, 3, device=device)
    dist, index = knn(query, points, 4)
    assert index.tolist() == [[[1, 3, 0, 2]]]
    assert dist.tolist() == [[[0.0, 0.0, 1.0, 1.0]]]


def test_knn_more_clouds_than_a_cuda_grid_dimension(device):
    # The CUDA kernel puts clouds on grid.y (at most 65535 blocks): found by the emulated launch check.
    query, points = _cloud(65537, 2, torch.float32, device), _cloud(65537, 3, torch.float32, device)
    dist, index = knn(query, points, 2)
    expected_dist, expected_index = ref.knn(query, points, 2)
    assert torch.equal(index, expected_index)
    torch.testing.assert_close(dist, expected_dist)


def test_knn_non_contiguous(device):
    query = _cloud(4, 50, torch.float32, device)[::2]
    points = _cloud(2, 300, torch.float32, device).transpose(1, 2).contiguous().transpose(1, 2)
    assert not query.is_contiguous() and not points.is_contiguous()
    _assert_knn_close(knn(query, points, 9), ref.knn(query, points, 9), torch.float32)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_knn_gradients_match_reference(dtype, device):
    query = _cloud(2, 30, dtype, device).requires_grad_()
    points = _cloud(2, 50, dtype, device).requires_grad_()
    weight = torch.randn(2, 30, 6, dtype=torch.float64).to(dtype=dtype, device=device)
    (knn(query, points, 6)[0] * weight).sum().backward()
    got = query.grad, points.grad
    query.grad = points.grad = None
    (ref.knn(query, points, 6)[0] * weight).sum().backward()
    tol = dict(float16=1e-2, bfloat16=5e-2).get(str(dtype).split(".")[1], 1e-5)
    torch.testing.assert_close(got[0], query.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(got[1], points.grad, rtol=tol, atol=tol)


def test_knn_gradcheck(device):
    query = _cloud(2, 5, torch.float64, device).requires_grad_()
    points = _cloud(2, 9, torch.float64, device).requires_grad_()
    assert torch.autograd.gradcheck(lambda q, p: knn(q, p, 4)[0], (query, points))


@pytest.mark.parametrize(
    "query, points, k, message",
    [
        (torch.zeros(5, 3), torch.zeros(1, 5, 3), 1, r"query must have shape \(B, M, 3\)"),
        (torch.zeros(1, 5, 3), torch.zeros(1, 5, 4), 1, r"points must have shape \(B, N, 3\)"),
        (torch.zeros(1, 5, 3), torch.zeros(1, 5, 3, dtype=torch.float64), 1, "query and points must have the same dtype"),
        (torch.zeros(2, 5, 3), torch.zeros(1, 5, 3), 1, "same batch size B"),
        (torch.zeros(1, 5, 3), torch.zeros(1, 5, 3), 6, r"k must be in \[0, N\] with N=5"),
        (torch.zeros(1, 5, 3), torch.zeros(1, 5, 3), -1, r"k must be in \[0, N\]"),
        (torch.full((1, 1, 3), float("inf")), torch.zeros(1, 5, 3), 1, "query contains NaN or Inf"),
        (torch.zeros(1, 1, 3, dtype=torch.long), torch.zeros(1, 5, 3, dtype=torch.long), 1, "query must be a floating-point"),
    ],
)
def test_knn_bad_input(query, points, k, message, device):
    with pytest.raises(RuntimeError, match=message):
        knn(query.to(device), points.to(device), k)


@pytest.mark.parametrize("k, message", [(2.0, "knn: k must be an int, got float 2.0"),
                                        (False, "knn: k must be an int, got bool False")])
def test_knn_k_must_be_an_int(k, message):
    with pytest.raises(TypeError, match=message):
        knn(torch.zeros(1, 1, 3), torch.zeros(1, 5, 3), k)


def test_knn_rejects_coordinates_whose_squared_distances_overflow(device):
    # Finite float32 inputs whose squared distances overflow float32 used to return uninitialised
    # indices; they are rejected, naming the argument and the bound.
    query = torch.zeros(1, 1, 3, device=device)
    points = torch.tensor([[[1.0, 0, 0], [3e19, 0, 0], [4e19, 0, 0]]], device=device)
    with pytest.raises(RuntimeError, match=r"knn: points has a coordinate of magnitude 4e\+19; coordinates must be at "
                                           r"most 1e\+18 in magnitude so that squared distances fit float32"):
        knn(query, points, 3)
    with pytest.raises(RuntimeError, match=r"knn: query has a coordinate of magnitude 3e\+19"):
        knn(points[:, 1:2], query.expand(1, 3, 3), 1)
    # float64 holds these squared distances exactly enough to order them.
    dist, index = knn(query.double(), points.double(), 3)
    assert index.tolist() == [[[0, 1, 2]]]
    torch.testing.assert_close(dist[0, 0].cpu(), torch.tensor([1.0, 9e38, 1.6e39], dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"coordinates must be at most 1e\+153 in magnitude so that squared distances "
                                           "fit float64"):
        knn(query.double(), torch.full((1, 2, 3), 1e200, dtype=torch.float64, device=device), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_knn_at_the_coordinate_bound_gives_finite_ordered_distances(dtype, device):
    # The largest squared distance allowed, 3 * (2e18)^2 = 1.2e37, is finite in float32.
    query = torch.full((1, 1, 3), -1e18, device=device)
    points = torch.tensor([[[1e18] * 3, [0.0] * 3, [-1e18] * 3]], device=device)
    dist, index = knn(query.to(dtype), points.to(dtype), 3)
    assert index.tolist() == [[[2, 1, 0]]]
    assert torch.isfinite(dist.float()).all() and dist.float()[0, 0, 2] > 1e37


# ---------------------------------------------------------------------------------------------
# registration: opcheck and torch.compile


def test_opcheck_point_ops(device):
    xyz = _cloud(2, 64, torch.float32, device)
    coord = xyz.reshape(-1, 3)
    batch = torch.arange(2, device=device).repeat_interleave(64)
    torch.library.opcheck(torch.ops.ppt.voxelize.default, (coord, 0.3, batch))
    torch.library.opcheck(torch.ops.ppt.voxelize.default, (coord, 0.3, None))
    torch.library.opcheck(torch.ops.ppt.farthest_point_sample.default, (xyz, 16, 3))
    query = _cloud(2, 10, torch.float32, device).requires_grad_()
    torch.library.opcheck(torch.ops.ppt.knn.default, (query, xyz.clone().requires_grad_(), 5))
    _, index = knn(query, xyz, 5)
    grad = torch.randn(2, 10, 5, device=device)
    torch.library.opcheck(torch.ops.ppt.knn_backward.default, (grad, query.detach(), xyz, index))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_point_pipeline(device, backend):
    """Point-MAE grouping (FPS centres + kNN patches) and voxelization under torch.compile."""

    def group(xyz, batch_coord, batch):
        centres_index = farthest_point_sample(xyz, 16)
        centres = torch.gather(xyz, 1, centres_index[..., None].expand(-1, -1, 3))
        dist2, neighbours = knn(centres, xyz, 8)
        voxels, inverse, counts = voxelize(batch_coord, 0.25, batch)
        return dist2.sum(), neighbours, voxels, inverse, counts

    xyz = _cloud(3, 256, torch.float32, device).requires_grad_()
    coord = _cloud(1, 500, torch.float32, device)[0]
    batch = torch.randint(0, 3, (500,), device=device)
    torch._dynamo.reset()
    compiled = torch.compile(group, fullgraph=True, backend=backend)
    got, expected = compiled(xyz, coord, batch), group(xyz, coord, batch)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    (grad_compiled,) = torch.autograd.grad(got[0], xyz)
    (grad_eager,) = torch.autograd.grad(expected[0], xyz)
    torch.testing.assert_close(grad_compiled, grad_eager)
