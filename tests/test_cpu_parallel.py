"""How ppt's CPU kernels share work (csrc/include/ppt/cpu_parallel.h): results that do not depend
on the thread count, errors from inside a parallel loop, torch's thread setting left as it was,
concurrent callers. Speed under a busy machine is measured by ``ppt bench contention``
(tests/bench/test_contention.py), never asserted here."""

import threading

import pytest
import torch

from ppt.data.synthetic import indoor_room, object_clouds
from ppt.ops import _reference as ref
from ppt.ops import farthest_point_sample, knn, segment_batch_norm, sparse_conv, sparse_kernel_map, voxelize

THREADS = max(2, torch.get_num_threads())


@pytest.fixture
def threads():
    """Runs the test with torch's thread count restored afterwards; yields a setter."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _scene(points=60_000, scenes=3):
    coord = torch.cat([indoor_room(points // scenes, seed=s) for s in range(scenes)])
    return coord, torch.arange(scenes).repeat_interleave(points // scenes)


def _conv_inputs():
    sites = voxelize(indoor_room(8_000, seed=1), 0.02)[0]
    shape = (sites[:, 1:].amax(0) + 1).tolist()
    _, pairs, offsets = sparse_kernel_map(sites, 1, shape, 3, submanifold=True)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(sites.shape[0], 24, generator=generator)
    weight = torch.randn(40, 27, 24, generator=generator)
    return features, weight, pairs, offsets, sites.shape[0]


def test_segment_norm_statistics_are_identical_for_any_thread_count(threads):
    # the row parts are fixed by the sizes, not by the threads: bit-for-bit the same sums
    x = torch.randn(70_000, 20) * 3 + 1
    segment = torch.randint(0, 3, (70_000,))
    results = []
    for count in (1, THREADS, 3):
        threads(count)
        results.append([*torch.ops.ppt.segment_bn_stats(x, segment, 3),
                        *torch.ops.ppt.segment_bn_backward_reduce(x.flip(0), x, segment, x[:3].clone(),
                                                                  torch.ones(3, 20))])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_kernels_give_the_same_bits_with_one_and_several_threads(threads):
    coord, batch = _scene()
    clouds = object_clouds(3, 40_000)  # fewer clouds than threads and large ones: FPS splits each cloud
    conv = _conv_inputs()
    outputs = []
    for count in (1, THREADS):
        threads(count)
        outputs.append([*voxelize(coord, 0.02, batch), farthest_point_sample(clouds[:1], 64),
                        *knn(clouds[:, :50], clouds, 8), sparse_conv(*conv)])
    for a, b in zip(*outputs):
        assert torch.equal(a, b)
    expected = ref.voxelize(coord, 0.02, batch)
    for a, b in zip(outputs[1][:3], expected):
        assert torch.equal(a, b)


def test_an_error_inside_a_parallel_loop_reaches_the_caller(threads):
    threads(THREADS)
    query, points = torch.rand(4, 300, 3), torch.rand(4, 500, 3)
    index = torch.zeros(4, 300, 2, dtype=torch.long)
    index[3, 299, 1] = 500  # out of range, in the last cloud: raised by whichever thread runs it
    with pytest.raises(RuntimeError, match=r"index entries must be in \[0, N\) with N=500, got 500"):
        torch.ops.ppt.knn_backward(torch.ones(4, 300, 2), query, points, index)
    # the loop machinery is usable again afterwards
    assert torch.equal(knn(query, points, 2)[1], ref.knn(query, points, 2)[1])


def test_torch_thread_count_is_left_as_it_was(threads):
    threads(THREADS)
    coord, batch = _scene(20_000)
    voxelize(coord, 0.02, batch)
    assert torch.get_num_threads() == THREADS
    with pytest.raises(RuntimeError):
        voxelize(torch.full((10, 3), float("nan")), 0.02)
    assert torch.get_num_threads() == THREADS
    threads(1)
    voxelize(coord, 0.02, batch)
    assert torch.get_num_threads() == 1


def test_concurrent_callers_get_their_own_results(threads):
    threads(THREADS)
    conv = _conv_inputs()
    expected_conv = sparse_conv(*conv)
    coord, batch = _scene(30_000)
    expected_voxels = voxelize(coord, 0.02, batch)
    x = torch.randn(50_000, 16)
    segment = torch.randint(0, 2, (50_000,))
    expected_norm = segment_batch_norm(x, segment, 2)
    failures = []

    def work(kind):
        try:
            for _ in range(5):
                if kind == 0:
                    assert torch.equal(sparse_conv(*conv), expected_conv)
                elif kind == 1:
                    assert all(torch.equal(a, b) for a, b in zip(voxelize(coord, 0.02, batch), expected_voxels))
                else:
                    assert torch.equal(segment_batch_norm(x, segment, 2), expected_norm)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    workers = [threading.Thread(target=work, args=(i % 3,)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert not any(worker.is_alive() for worker in workers), "a concurrent call did not finish"
    assert not failures, failures
