"""Serialization (PTv3 space-filling curves): kernels against the pure-PyTorch reference and against
Pointcept's own encoders, round trips, and the curve properties PTv3 relies on."""

import pytest
import torch

from ppt.ops import _reference as ref
from ppt.ops import serialization_decode, serialization_encode, serialize
from ppt.ops.serialization import ORDERS, serialization_depth


def _cube(depth, device):
    """Every point of the [0, 2**depth)^3 grid."""
    axis = torch.arange(1 << depth)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3).to(device)


def _case(case, dtype, device):
    """(grid_coord, batch, depth) for a named case."""
    if case == "empty":
        return torch.empty(0, 3, dtype=dtype, device=device), None, 4
    if case == "single":
        return torch.tensor([[5, 0, 3]], dtype=dtype, device=device), None, 3
    if case == "depth_zero":
        return torch.zeros(3, 3, dtype=dtype, device=device), torch.tensor([0, 1, 7], device=device), 0
    if case == "scene":  # a room of 2 cm voxels: depth 9
        return torch.randint(0, 400, (3000, 3), dtype=dtype, device=device), None, 9
    if case == "batched":
        grid = torch.randint(0, 1000, (3000, 3), dtype=dtype, device=device)
        return grid, torch.randint(0, 6, (3000,), dtype=torch.int32, device=device), 10
    if case == "deepest":  # 21 bits per axis: 63 coordinate bits, no room for a batch
        grid = torch.randint(0, 1 << 21, (500, 3), dtype=torch.int64).to(dtype=dtype, device=device)
        grid[0] = (1 << 21) - 1
        return grid, torch.zeros(500, dtype=torch.long, device=device), 21
    if case == "non_contiguous":
        grid = torch.randint(0, 64, (3, 2000), dtype=dtype, device=device).t()
        return grid, torch.arange(4000, device=device)[::2] % 3, 6
    raise ValueError(case)


CASES = ["empty", "single", "depth_zero", "scene", "batched", "deepest", "non_contiguous"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_encode_decode_match_reference(order, case, dtype, device):
    if case == "deepest" and dtype == torch.int32:
        pytest.skip("21-bit coordinates fit int32, but the case is about int64 codes; covered by int64")
    grid, batch, depth = _case(case, dtype, device)
    code = serialization_encode(grid, batch, depth, order)
    assert code.dtype == torch.long and code.shape == (len(grid),) and code.device == grid.device
    torch.testing.assert_close(code, ref.serialization_encode(grid, batch, depth, order), rtol=0, atol=0)
    grid_back, batch_back = serialization_decode(code, depth, order)
    want_grid, want_batch = ref.serialization_decode(code, depth, order)
    torch.testing.assert_close(grid_back, want_grid, rtol=0, atol=0)
    torch.testing.assert_close(batch_back, want_batch, rtol=0, atol=0)
    # round trip
    torch.testing.assert_close(grid_back, grid.long(), rtol=0, atol=0)
    torch.testing.assert_close(batch_back, torch.zeros_like(code) if batch is None else batch.long(), rtol=0, atol=0)


@pytest.mark.parametrize("order", ORDERS)
def test_codes_of_a_full_cube_are_a_permutation(order, device):
    # Encoding is a bijection of the 2^d cube onto [0, 8^d); decoding every code gives the cube back.
    for depth in (1, 2, 4):
        cube = _cube(depth, device)
        code = serialization_encode(cube, None, depth, order)
        assert torch.equal(code.sort().values, torch.arange(8**depth, device=device))
        all_codes = torch.arange(8**depth, device=device)
        grid, _ = serialization_decode(all_codes, depth, order)
        assert torch.equal(serialization_encode(grid, None, depth, order), all_codes)


@pytest.mark.parametrize("order", ["hilbert", "hilbert-trans"])
def test_hilbert_neighbours_in_code_are_neighbours_in_space(order, device):
    # The defining locality of the Hilbert curve: consecutive indices are face-adjacent cells.
    for depth in (1, 2, 3, 4):
        grid, _ = serialization_decode(torch.arange(8**depth, device=device), depth, order)
        steps = (grid[1:] - grid[:-1]).abs().sum(1)
        assert torch.all(steps == 1), f"depth {depth}"
    # It starts at the origin, as Pointcept's curve does.
    assert serialization_encode(torch.zeros(1, 3, dtype=torch.long, device=device), None, 5, order).item() == 0


@pytest.mark.parametrize("order", ORDERS)
def test_coarser_code_is_the_code_of_the_coarser_grid(order, device):
    # What PTv3's pooling relies on: code >> 3k is the code of grid >> k at depth - k, so the points of
    # one coarse cell are contiguous in every order (z and Hilbert curves are both octree-recursive).
    grid = torch.randint(0, 1 << 7, (4000, 3), device=device)
    batch = torch.randint(0, 3, (4000,), device=device)
    code = serialization_encode(grid, batch, 7, order)
    for k in (1, 2, 3, 7):
        coarse = serialization_encode(grid >> k, batch, 7 - k, order)
        assert torch.equal(code >> (3 * k), coarse), f"k={k}"


def test_trans_orders_swap_x_and_y(device):
    grid = torch.randint(0, 100, (500, 3), device=device)
    for curve in ("z", "hilbert"):
        assert torch.equal(serialization_encode(grid, None, 7, f"{curve}-trans"),
                           serialization_encode(grid[:, [1, 0, 2]], None, 7, curve))


def test_z_order_hand_checked(device):
    # x bit i -> 3i+2, y -> 3i+1, z -> 3i; the batch above 3*depth bits.
    grid = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [3, 3, 3]], device=device)
    code = serialization_encode(grid, torch.tensor([0, 0, 0, 0, 2], device=device), 2, "z")
    assert code.tolist() == [4, 2, 1, 32, (2 << 6) | 63]
    # Hilbert at depth 1 visits the unit cube's corners in Gray-code order of (x, y, z) bits.
    corners = _cube(1, device)
    order = serialization_encode(corners, None, 1, "hilbert").argsort()
    assert corners[order].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0],
                                       [1, 1, 0], [1, 1, 1], [1, 0, 1], [1, 0, 0]]


# ---- Pointcept's encoders, transcribed as the oracle (pointcept/models/utils/serialization,
# Pointcept d74c646): OCNN's lookup-table z-order and the bit-array Hilbert code after
# numpy-hilbert-curve. Only the tests use them.


def _pointcept_z_order(grid, depth):
    def key(x, y, z, bits):  # KeyLUT.xyz2key
        out = torch.zeros_like(x)
        for i in range(bits):
            mask = 1 << i
            out = out | ((x & mask) << (2 * i + 2)) | ((y & mask) << (2 * i + 1)) | ((z & mask) << (2 * i))
        return out

    r256, zero = torch.arange(256, device=grid.device), torch.zeros(256, dtype=torch.long, device=grid.device)
    ex, ey, ez = key(r256, zero, zero, 8), key(zero, r256, zero, 8), key(zero, zero, r256, 8)
    x, y, z = grid[:, 0].long(), grid[:, 1].long(), grid[:, 2].long()
    mask = 255 if depth > 8 else (1 << depth) - 1
    code = ex[x & mask] | ey[y & mask] | ez[z & mask]
    if depth > 8:
        mask = (1 << (depth - 8)) - 1
        code = (ex[(x >> 8) & mask] | ey[(y >> 8) & mask] | ez[(z >> 8) & mask]) << 24 | code
    return code


def _pointcept_hilbert(grid, depth):
    n = grid.shape[0]
    shifts = torch.arange(depth - 1, -1, -1, device=grid.device)
    gray = ((grid.long()[:, :, None] >> shifts) & 1).bool()  # (N, 3, depth), most significant bit first
    for bit in range(depth):
        for dim in range(3):
            mask = gray[:, dim, bit]
            gray[:, 0, bit + 1:] = torch.logical_xor(gray[:, 0, bit + 1:], mask[:, None])
            to_flip = torch.logical_and(torch.logical_not(mask[:, None]).repeat(1, depth - bit - 1),
                                        torch.logical_xor(gray[:, 0, bit + 1:], gray[:, dim, bit + 1:]))
            gray[:, dim, bit + 1:] = torch.logical_xor(gray[:, dim, bit + 1:], to_flip)
            gray[:, 0, bit + 1:] = torch.logical_xor(gray[:, 0, bit + 1:], to_flip)
    gray = gray.swapaxes(1, 2).reshape(n, 3 * depth)
    # gray2binary: Pointcept xors right shifts by 2^k, ..., 1 (a prefix XOR from the top bit)
    shift = 1 << max(0, (3 * depth - 1).bit_length() - 1)
    while shift > 0:
        if gray.shape[1] > shift:
            shifted = torch.nn.functional.pad(gray[:, :-shift], (shift, 0))
        else:
            shifted = torch.zeros_like(gray)
        gray = torch.logical_xor(gray, shifted)
        shift //= 2
    weights = 1 << torch.arange(3 * depth - 1, -1, -1, device=grid.device)
    return (gray.long() * weights).sum(1)


def _pointcept_encode(grid, batch, depth, order):
    if order.endswith("-trans"):
        grid = grid[:, [1, 0, 2]]
    code = _pointcept_z_order(grid, depth) if order.startswith("z") else _pointcept_hilbert(grid, depth)
    return batch.long() << depth * 3 | code


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("depth", [1, 3, 8, 9, 16])
def test_encode_equals_pointcept(order, depth, device):
    grid = torch.randint(0, 1 << depth, (2000, 3), device=device)
    grid[0] = (1 << depth) - 1
    batch = torch.randint(0, 4, (2000,), device=device)
    assert torch.equal(serialization_encode(grid, batch, depth, order), _pointcept_encode(grid, batch, depth, order))


def test_serialize_orders_and_inverses(device):
    grid = torch.unique(torch.randint(0, 50, (3000, 3), device=device), dim=0)
    batch = torch.randint(0, 3, (len(grid),), device=device)
    result = serialize(grid, batch)
    assert result.depth == serialization_depth(grid) == int(grid.max() + 1).bit_length()
    assert result.code.shape == result.order.shape == result.inverse.shape == (4, len(grid))
    positions = torch.arange(len(grid), device=device)
    for k, order in enumerate(ORDERS):
        assert torch.equal(result.code[k], serialization_encode(grid, batch, result.depth, order))
        sorted_code = result.code[k][result.order[k]]
        assert torch.all(sorted_code[1:] > sorted_code[:-1])  # distinct points: strictly increasing
        assert torch.equal(result.order[k][result.inverse[k]], positions)
        assert torch.equal(result.inverse[k][result.order[k]], positions)
        # scene by scene: the batch is the most significant key
        assert torch.all(batch[result.order[k]].diff() >= 0)


def test_serialize_keeps_the_input_order_of_duplicates(device):
    grid = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 1, 1], [1, 1, 1]], device=device)
    result = serialize(grid, None, ["z"])
    assert result.order[0].tolist() == [1, 0, 2, 3]


def test_opcheck(device):
    grid, batch, depth = _case("batched", torch.int32, device)
    torch.library.opcheck(torch.ops.ppt.serialization_encode.default, (grid, batch, depth, "hilbert"))
    torch.library.opcheck(torch.ops.ppt.serialization_encode.default, (grid, None, depth, "z-trans"))
    code = serialization_encode(grid, batch, depth, "z")
    torch.library.opcheck(torch.ops.ppt.serialization_decode.default, (code, depth, "z"))


def test_torch_compile(device):
    grid, batch, depth = _case("batched", torch.int64, device)

    def encode_decode(grid, batch):
        code = serialization_encode(grid, batch, depth, "hilbert")
        return code, serialization_decode(code, depth, "hilbert")[0]

    compiled = torch.compile(encode_decode, fullgraph=True, dynamic=True)
    got, want = compiled(grid, batch), encode_decode(grid, batch)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def _grid(device, **kwargs):
    return torch.tensor(kwargs.get("values", [[1, 2, 3], [4, 5, 6]]), dtype=kwargs.get("dtype", torch.int32),
                        device=device)


ENCODE_BAD_INPUT = [
    (dict(grid_coord=lambda d: _grid(d, dtype=torch.float32)), "grid_coord must have dtype Int or Long"),
    (dict(grid_coord=lambda d: _grid(d)[:, :2]), r"grid_coord must have shape \(N, 3\)"),
    (dict(grid_coord=lambda d: _grid(d)[0]), r"grid_coord must have shape \(N, 3\)"),
    (dict(grid_coord=lambda d: _grid(d, values=[[8, 0, 0]])),
     r"grid_coord must be in \[0, 8\).*got values in \[0, 8\]"),
    (dict(grid_coord=lambda d: _grid(d, values=[[-1, 0, 0]])), r"grid_coord must be in \[0, 8\)"),
    (dict(batch=lambda d: torch.zeros(3, dtype=torch.long, device=d)), r"batch must have shape \(N,\) with N=2"),
    (dict(batch=lambda d: torch.zeros(2, device=d)), "batch must have dtype Int or Long"),
    (dict(batch=lambda d: torch.tensor([0, 1 << 54], device=d)), r"batch must be in \[0, 18014398509481984\)"),
    (dict(batch=lambda d: torch.tensor([0, -1], device=d)), r"batch must be in \[0, "),
    (dict(depth=lambda d: 22), r"depth must be in \[0, 21\]"),
    (dict(depth=lambda d: -1), r"depth must be in \[0, 21\]"),
]


@pytest.mark.parametrize("change, message", ENCODE_BAD_INPUT)
def test_encode_bad_input(change, message, device):
    args = dict(grid_coord=_grid(device), batch=None, depth=3, order="z")
    args.update({name: make(device) for name, make in change.items()})
    with pytest.raises(RuntimeError, match=f"serialization_encode: {message}"):
        torch.ops.ppt.serialization_encode.default(*args.values())


def test_bad_order_and_decode_input(device):
    grid = _grid(device)
    with pytest.raises(ValueError, match="serialization_encode: order must be one of 'z', 'z-trans'"):
        serialization_encode(grid, None, 3, "morton")
    with pytest.raises(RuntimeError, match="serialization_encode: order must be one of"):
        torch.ops.ppt.serialization_encode.default(grid, None, 3, "morton")
    with pytest.raises(RuntimeError, match="serialization_decode: code must have dtype Long"):
        serialization_decode(grid[:, 0], 3, "z")
    with pytest.raises(RuntimeError, match=r"serialization_decode: code must have shape \(N,\)"):
        serialization_decode(grid.long(), 3, "z")
    with pytest.raises(RuntimeError, match="serialization_decode: code must be non-negative"):
        serialization_decode(torch.tensor([3, -5], device=device), 3, "z")
    with pytest.raises(TypeError, match="depth"):
        serialization_encode(grid, None, 2.5, "z")
    with pytest.raises(ValueError, match="serialize: orders must be a non-empty sequence"):
        serialize(grid, None, "z")


def test_encode_device_mismatch():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU to build a mixed-device input")
    with pytest.raises(RuntimeError, match="grid_coord and batch must be on the same device"):
        serialization_encode(torch.zeros(2, 3, dtype=torch.long, device="cuda"), torch.zeros(2, dtype=torch.long), 3)
