"""The PointMLP cases of ``ppt bench models``, smoke-sized: the train step on ppt's point ops against
the official model file's pure-torch FPS / kNN (same weights, same anchors, same logits), and the
point ops alone."""

import pytest
import torch

from ppt.bench import pointmlp
from ppt.bench.harness import measure
from ppt.models import PointMLP
from ppt.models.pointmlp import use_point_ops
from ppt.ops import farthest_point_sample, knn

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
SMALL = dict(embed_dim=8, pre_blocks=(1, 1, 1, 1), pos_blocks=(1, 1, 1, 1))


def _clouds(batch=2, points=256):
    return torch.rand(batch, points, 3, generator=torch.Generator().manual_seed(0))


def test_official_torch_ops_match_ppt_ops():
    xyz = _clouds()
    assert torch.equal(pointmlp.official_farthest_point_sample(xyz, 64), farthest_point_sample(xyz, 64))
    query = xyz[:, :32]
    ours = knn(query, xyz, 8)[1].sort(dim=-1).values
    assert torch.equal(pointmlp.official_knn_point(query, xyz, 8).sort(dim=-1).values, ours)


def test_train_step_case_gates_on_the_same_logits():
    points, labels = _clouds(), torch.tensor([0, 3])
    result = measure(pointmlp.pointmlp_case(points, labels, repeats=1, warmup=0, **SMALL), "models", CPU)
    baseline = result.baselines[0]
    assert result.status == "ok" and baseline.checked and baseline.target == 2.0
    assert result.params["parameters"] == sum(p.numel() for p in PointMLP(40, points=256, **SMALL).parameters())

    # the gate notices a baseline that groups other neighbours
    model = PointMLP(40, points=256, **SMALL)
    shifted = use_point_ops(PointMLP(40, points=256, **SMALL), pointmlp.official_farthest_point_sample,
                            lambda q, p, k: knn(q, p, k + 1)[1][..., 1:])  # leaves the anchor out
    shifted.load_state_dict(model.state_dict())
    got = pointmlp._train_step(model, points, labels)()
    with pytest.raises(AssertionError):
        pointmlp._check_same(got, pointmlp._train_step(shifted, points, labels)())


def test_grouping_case_gates_on_the_same_samples_and_neighbourhoods():
    result = measure(pointmlp.grouping_case(_clouds(), repeats=1, warmup=0), "models", CPU)
    assert result.status == "ok" and result.baselines[0].checked
    assert result.params["stages"] == [[128, 24], [64, 24], [32, 24], [16, 24]]
