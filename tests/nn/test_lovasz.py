"""The Lovász-softmax loss (:func:`ppt.nn.lovasz_softmax`) against hand-checked values, its
gradient, the ignore index, the class selections, per-scene averaging and bad input."""

import pytest
import torch

from ppt.nn import lovasz_softmax

# three points, two classes: the worked example of test_worked_three_point_example
PROBABILITIES = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7]], dtype=torch.float64)
TARGET = torch.tensor([0, 0, 1])


def test_perfect_prediction_is_zero():
    target = torch.tensor([0, 2, 1, 2, 0])
    one_hot = torch.nn.functional.one_hot(target, 4).double()
    assert lovasz_softmax(one_hot, target).item() == 0.0
    assert lovasz_softmax(one_hot, target, classes="all").item() == 0.0  # absent class 3: every p is 0
    # an absent class counts its largest probability: class 2 of the worked example's points, 0
    with_absent = torch.cat([PROBABILITIES * 0.5, torch.full((3, 1), 0.5, dtype=torch.float64)], 1)
    present = lovasz_softmax(with_absent, TARGET)
    assert lovasz_softmax(with_absent, TARGET, classes="all").item() == pytest.approx((2 * present.item() + 0.5) / 3)


def test_worked_three_point_example():
    """Points p0 = (0.8, 0.2) label 0, p1 = (0.4, 0.6) label 0, p2 = (0.3, 0.7) label 1.

    Class 0: foreground (1, 1, 0), errors |fg - p| = (0.2, 0.6, 0.3). Sorted decreasingly: 0.6 (p1,
    fg), 0.3 (p2, bg), 0.2 (p0, fg). With 2 foreground points, after taking i points the
    intersection is 2 - (fg so far) = 1, 1, 0 and the union 2 + (bg so far) = 2, 3, 3, so the
    Jaccard loss is 1/2, 2/3, 1 and its increments 1/2, 1/6, 1/3:
    loss_0 = 0.6/2 + 0.3/6 + 0.2/3 = 5/12.

    Class 1: foreground (0, 0, 1), errors (0.2, 0.6, 0.3). Sorted: 0.6 (p1, bg), 0.3 (p2, fg),
    0.2 (p0, bg). Intersection 1, 0, 0; union 2, 2, 3; Jaccard 1/2, 1, 1; increments 1/2, 1/2, 0:
    loss_1 = 0.6/2 + 0.3/2 = 9/20.

    The loss is the mean over the present classes: (5/12 + 9/20) / 2 = 13/30.
    """
    assert lovasz_softmax(PROBABILITIES, TARGET).item() == pytest.approx(13 / 30, abs=1e-12)
    assert lovasz_softmax(PROBABILITIES, TARGET, classes=[0]).item() == pytest.approx(5 / 12, abs=1e-12)
    assert lovasz_softmax(PROBABILITIES, TARGET, classes=[1]).item() == pytest.approx(9 / 20, abs=1e-12)


def test_gradient_matches_finite_differences_in_float64():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.randint(0, 4, (12,), generator=generator)
    target[3] = -1
    scene = torch.tensor([0] * 6 + [1] * 6)
    # piecewise linear in the probabilities: random logits keep every error away from a tie
    assert torch.autograd.gradcheck(lambda x: lovasz_softmax(x.softmax(1), target), (logits,))
    assert torch.autograd.gradcheck(lambda x: lovasz_softmax(x.softmax(1), target, classes="all", scene=scene),
                                    (logits,))


def test_ignored_points_change_nothing_and_get_no_gradient():
    probabilities = torch.cat([PROBABILITIES, torch.tensor([[0.1, 0.9], [0.5, 0.5]], dtype=torch.float64)])
    probabilities.requires_grad_(True)
    target = torch.cat([TARGET, torch.tensor([-1, -1])])
    loss = lovasz_softmax(probabilities, target)
    assert loss.item() == pytest.approx(13 / 30, abs=1e-12)
    loss.backward()
    assert torch.all(probabilities.grad[3:] == 0) and torch.any(probabilities.grad[:3] != 0)
    other_index = lovasz_softmax(probabilities, torch.cat([TARGET, torch.tensor([255, 255])]), ignore_index=255)
    assert other_index.item() == pytest.approx(13 / 30, abs=1e-12)
    nothing = lovasz_softmax(probabilities, torch.full((5,), -1))
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_per_scene_is_the_mean_of_each_scenes_loss():
    generator = torch.Generator().manual_seed(1)
    probabilities = torch.rand(10, 3, dtype=torch.float64, generator=generator).softmax(1)
    target = torch.randint(0, 3, (10,), generator=generator)
    target[7:] = -1  # scene 2 (rows 7..9) has no labelled point: left out of the mean
    scene = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    expected = (lovasz_softmax(probabilities[:4], target[:4]) + lovasz_softmax(probabilities[4:7], target[4:7])) / 2
    torch.testing.assert_close(lovasz_softmax(probabilities, target, scene=scene), expected)
    batch = lovasz_softmax(probabilities, target)
    assert not torch.allclose(batch, expected)  # one batch loss is not the mean of the scenes'


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="probabilities must be a floating"):
        lovasz_softmax(torch.zeros(3, 2, dtype=torch.int64), TARGET)
    with pytest.raises(ValueError, match="probabilities must be a floating"):
        lovasz_softmax(torch.zeros(3), TARGET)
    with pytest.raises(ValueError, match=r"target must be an int64 tensor of shape \(3,\)"):
        lovasz_softmax(PROBABILITIES, TARGET.int())
    with pytest.raises(ValueError, match=r"target must hold classes in \[0, 2\)"):
        lovasz_softmax(PROBABILITIES, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="classes must be one of"):
        lovasz_softmax(PROBABILITIES, TARGET, classes="some")
    with pytest.raises(ValueError, match=r"classes must be a non-empty sequence of indices in \[0, 2\)"):
        lovasz_softmax(PROBABILITIES, TARGET, classes=[0, 5])
    with pytest.raises(ValueError, match=r"scene must be None or an int64 tensor of shape \(3,\)"):
        lovasz_softmax(PROBABILITIES, TARGET, scene=torch.zeros(2, dtype=torch.int64))
