"""torch.compile of the shipped models: SpUNet and the Point-MAE classifier each trace as one graph
(``fullgraph=True``), recompile at most once more as the input size varies (for dynamic shapes),
and give the eager logits and gradients.

The graphs go through AOTAutograd with the ``aot_eager`` backend (what dynamo captures and how
often it recompiles does not depend on the backend; inductor's code generation takes minutes on a
CPU and is exercised by the compiled cases of ``ppt bench models``)."""

import copy

import pytest
import torch

from ppt.models import PointMAE, SpUNet
from ppt.sparse import SparseTensor

SMALL_SPUNET = dict(in_channels=6, num_classes=5, base_channels=8, channels=(8, 16, 16, 8), layers=(1, 1, 1, 1))


class CountingBackend:
    """A torch.compile backend that counts the graphs it compiles (each one a compile or recompile)."""

    def __init__(self, backend: str = "aot_eager") -> None:
        self.backend, self.graphs = backend, 0

    def __call__(self, graph_module, example_inputs):
        self.graphs += 1
        return torch._dynamo.lookup_backend(self.backend)(graph_module, example_inputs)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _scene_batch(points: int, scenes: int, extent: int, seed: int) -> SparseTensor:
    generator = torch.Generator().manual_seed(seed)
    coords = torch.cat([torch.randint(0, scenes, (points, 1), generator=generator),
                        torch.randint(0, extent, (points, 3), generator=generator)], 1)
    indices = torch.unique(coords, dim=0).int()
    features = torch.randn(len(indices), 6, dtype=torch.float64, generator=generator)
    return SparseTensor(features, indices, batch_size=scenes)


def _assert_same_step(eager, compiled, model, twin):
    """Same logits, and the same gradient for every parameter relative to the largest gradient."""
    torch.testing.assert_close(compiled, eager, rtol=1e-9, atol=1e-9)
    scale = max(p.grad.abs().max() for p in model.parameters() if p.grad is not None)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-9 * scale, msg=name)


def test_spunet_compiles_as_one_graph_without_recompile_storm(single_thread):
    model = SpUNet(**SMALL_SPUNET).double().train()
    twin = copy.deepcopy(model)
    backend = CountingBackend()
    compiled = torch.compile(twin, fullgraph=True, backend=backend)  # fullgraph: a graph break would raise
    # scenes of varying size; the last one is twice as wide, which doubles the power-of-two grid
    for points, extent, seed in ((2500, 24, 0), (2900, 24, 1), (2200, 24, 2), (2600, 24, 3), (3000, 48, 4)):
        x = _scene_batch(points, 2, extent, seed)
        eager = model(x)
        eager.square().mean().backward()
        got = compiled(SparseTensor(x.features, x.indices, x.spatial_shape, x.batch_size))
        got.square().mean().backward()
        _assert_same_step(eager, got, model, twin)
        model.zero_grad()
        twin.zero_grad()
    # one graph for the first size, one dynamic graph for the others, one for the larger grid
    assert backend.graphs <= 3, f"{backend.graphs} compilations for 5 training batches"
    with torch.no_grad():
        x = _scene_batch(2700, 2, 24, 5)
        torch.testing.assert_close(compiled.eval()(x), model.eval()(x), rtol=1e-9, atol=1e-9)


def test_spunet_grid_is_a_power_of_two_holding_the_input():
    model = SpUNet(**SMALL_SPUNET)
    assert model.grid_shape((5, 9, 3)) == (16, 16, 16)  # at least 2**(stages + 2)
    assert model.grid_shape((200, 90, 31)) == (256, 256, 256)
    assert model.grid_shape((256, 1, 1)) == (256, 256, 256)


def test_point_mae_classifier_compiles_as_one_graph(single_thread):
    torch.manual_seed(0)
    model = PointMAE(num_classes=7, num_groups=16, group_size=8, depth=2, dim=48, heads=4).double()
    twin = copy.deepcopy(model)
    backend = CountingBackend()
    compiled = torch.compile(twin, fullgraph=True, backend=backend)
    # training steps: drop path and dropout draw from torch's generator in eager and compiled runs alike
    for points, seed in ((256, 0), (300, 1), (280, 2)):
        clouds = torch.randn(2, points, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)
        eager = model.train()(clouds)
        eager.square().mean().backward()
        torch.manual_seed(seed)
        got = compiled.train()(clouds)
        got.square().mean().backward()
        _assert_same_step(eager, got, model, twin)
        model.zero_grad()
        twin.zero_grad()
    with torch.no_grad():
        clouds = torch.randn(2, 320, 3, dtype=torch.float64)
        torch.testing.assert_close(compiled.eval()(clouds), model.eval()(clouds), rtol=1e-9, atol=1e-9)
    assert backend.graphs <= 3, f"{backend.graphs} compilations (train: static, then dynamic; eval)"
