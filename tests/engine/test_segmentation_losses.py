"""``train.loss`` (:class:`ppt.engine.losses.SegmentationLoss`): Pointcept's criteria (cross-entropy
with class weights, Lovász-softmax), the labelled-point mask, restricted classes and mixed batches
of Point Prompt Training, and the recipe keys' checks."""

import pytest
import torch
import torch.nn.functional as F

from ppt.engine import create_task, load_recipe
from ppt.engine.config import ConfigError, LossConfig
from ppt.engine.losses import SegmentationLoss
from ppt.nn import lovasz_softmax

CE, LOVASZ = LossConfig(name="ce"), LossConfig(name="lovasz")


def _logits_and_target(rows=40, classes=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, classes, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.randint(0, classes, (rows,), generator=generator)
    target[::6] = -1
    return logits, target


def test_default_loss_is_the_mean_cross_entropy_over_labelled_points():
    logits, target = _logits_and_target()
    loss = SegmentationLoss([CE], 5)(logits, target)
    labelled = target >= 0
    torch.testing.assert_close(loss, F.cross_entropy(logits[labelled], target[labelled]))
    smoothed = SegmentationLoss([CE], 5, label_smoothing=0.1)(logits, target)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits[labelled], target[labelled], label_smoothing=0.1))
    nothing = SegmentationLoss([CE, LOVASZ], 5)(logits, torch.full_like(target, -1))
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_class_weights_give_torchs_weighted_mean_and_terms_add_with_their_weights():
    logits, target = _logits_and_target()
    weights = [3.0, 1.0, 0.5, 2.0, 1.0]
    weighted = SegmentationLoss([LossConfig(name="ce", class_weights=weights)], 5)(logits, target)
    labelled = target >= 0
    w = torch.tensor(weights, dtype=torch.float64)[target[labelled]]
    per_point = F.cross_entropy(logits[labelled], target[labelled], reduction="none")
    torch.testing.assert_close(weighted, (w * per_point).sum() / w.sum())  # Pointcept's CrossEntropyLoss(weight)
    both = SegmentationLoss([LossConfig(name="ce", weight=0.5), LossConfig(name="lovasz", weight=2.0)], 5)
    expected = 0.5 * F.cross_entropy(logits[labelled], target[labelled]) + 2.0 * lovasz_softmax(
        logits[labelled].softmax(1), target[labelled])
    torch.testing.assert_close(both(logits, target), expected)


def test_unlabelled_points_get_no_gradient_from_either_term():
    logits, target = _logits_and_target()
    SegmentationLoss([CE, LOVASZ], 5)(logits, target).backward()
    assert torch.all(logits.grad[target < 0] == 0) and torch.all(logits.grad[target >= 0].abs().sum(1) > 0)


def test_per_scene_lovasz_averages_the_scenes():
    logits, target = _logits_and_target()
    scene = torch.arange(40) // 20
    loss = SegmentationLoss([LossConfig(name="lovasz", per_scene=True)], 5)(logits, target, scene=scene)
    probabilities = logits.softmax(1)
    expected = (lovasz_softmax(probabilities[:20], target[:20]) + lovasz_softmax(probabilities[20:], target[20:])) / 2
    torch.testing.assert_close(loss, expected)


def test_restricted_classes_and_mixed_label_spaces():
    """Two datasets in one batch, 3 and 2 classes in 3 columns: a point's softmax runs over its own
    classes and the Lovász term averages over the (dataset, class) pairs present."""
    logits, _ = _logits_and_target(rows=30, classes=3, seed=1)
    dataset = (torch.arange(30) >= 18).long()
    generator = torch.Generator().manual_seed(2)
    target = torch.where(dataset == 0, torch.randint(0, 3, (30,), generator=generator),
                         torch.randint(0, 2, (30,), generator=generator))
    target[::7] = -1
    allowed = torch.tensor([[True, True, True], [True, True, False]])[dataset]
    masked = logits.masked_fill(~allowed, float("-inf"))
    loss = SegmentationLoss([LOVASZ], None)(masked, target, allowed=allowed, label_space=dataset)
    pairs = []
    for d, classes in ((0, 3), (1, 2)):
        rows = (dataset == d) & (target >= 0)
        probabilities = logits[rows, :classes].softmax(1)
        pairs += [lovasz_softmax(probabilities, target[rows], classes=[k]) for k in target[rows].unique().tolist()]
    torch.testing.assert_close(loss, torch.stack(pairs).mean())
    loss.backward()
    assert torch.all(logits.grad[~allowed] == 0)  # the padding column of dataset 1 learns nothing
    ce = SegmentationLoss([CE], None)(masked, target, allowed=allowed, label_space=dataset)
    labelled = target >= 0
    torch.testing.assert_close(ce, F.cross_entropy(masked[labelled], target[labelled]))
    with pytest.raises(ValueError, match="train.loss: a target class is not among its dataset's classes"):
        SegmentationLoss([LOVASZ], None)(masked, torch.where(dataset == 1, 2, target), allowed=allowed,
                                         label_space=dataset)


def test_bad_loss_settings_name_their_key():
    with pytest.raises(ValueError, match=r"train.loss\[0\].class_weights has 2 weights; expected one per class \(5\)"):
        SegmentationLoss([LossConfig(name="ce", class_weights=[1.0, 2.0])], 5)
    with pytest.raises(ValueError, match=r"train.loss\[1\].class_weights .* unset for a model of several datasets"):
        SegmentationLoss([LOVASZ, LossConfig(name="ce", class_weights=[1.0, 2.0])], None)
    for override, message in (
            ("train.loss=[{name: focal}]", r"train.loss\[0\].name must be one of \('ce', 'lovasz'\)"),
            ("train.loss=[{name: ce, weight: 0}]", r"train.loss\[0\].weight must be > 0"),
            ("train.loss=[{name: lovasz, class_weights: [1, 2]}]", r"train.loss\[0\].class_weights must be unset"),
            ("train.loss=[{name: ce, class_weights: [0, 0]}]", r"train.loss\[0\].class_weights must be unset"),
            ("train.loss=[{name: lovasz, classes: some}]", r"train.loss\[0\].classes must be one of"),
            ("train.loss=[{name: ce, per_scene: true}]", r"train.loss\[0\].per_scene must be false for a ce term"),
            ("train.loss=[]", "train.loss must be a non-empty list of terms")):
        with pytest.raises(ConfigError, match=message):
            load_recipe("spunet-waymo", [override])
    with pytest.raises(ConfigError, match="train.loss applies to the tasks"):
        load_recipe("pointmlp-modelnet40", ["train.loss=[{name: lovasz}]"])
    with pytest.raises(ValueError, match=r"train.loss\[0\].class_weights has 3 weights; expected one per class \(16\)"):
        create_task(load_recipe("spunet-nuscenes", ["train.loss=[{name: ce, class_weights: [1, 2, 3]}]"]))


def test_outdoor_recipes_use_pointcepts_criteria():
    kitti = load_recipe("spunet-semantickitti").train.loss
    assert [term.name for term in kitti] == ["ce"] and len(kitti[0].class_weights) == 19
    assert kitti[0].class_weights[:2] == [3.1557, 8.7029] and kitti[0].class_weights[-1] == 7.3929
    assert [term.name for term in load_recipe("spunet-nuscenes").train.loss] == ["ce"]
    for recipe in ("spunet-waymo", "ppt-joint-outdoor"):
        terms = load_recipe(recipe).train.loss
        assert [(t.name, t.weight, t.classes, t.per_scene) for t in terms] == [
            ("ce", 1.0, "present", False), ("lovasz", 1.0, "present", False)]
    assert load_recipe("spunet-scannet").train.loss == [LossConfig()]  # indoor recipes keep plain cross-entropy


def test_ppt_mixed_batch_lovasz_averages_each_datasets_classes(scene_overrides):
    """Through the ppt-segmentation task: a mixed batch's Lovász term is the mean over the (dataset,
    class) pairs present, so the class-count-weighted mean of each dataset's batch run apart (each
    Pointcept's loss over that dataset's classes)."""
    config = load_recipe("ppt-joint", [*scene_overrides, "model.ppt.context_channels=8", "model.ppt.zero_init=false",
                                       "train.loss=[{name: lovasz, weight: 2.0}]"])
    task = create_task(config)
    torch.manual_seed(0)
    model = task.build_model().train()
    samples = [task.dataset(source, "train", train=True)[0] for source in config.data.sources.values()]
    mixed = task.collate(samples)
    assert len(set(mixed.conditions)) == 3
    total, pairs = 0.0, 0
    for sample in samples:
        batch = task.collate([sample])
        present = len(batch.labelled_segment[batch.labelled_segment >= 0].unique())
        total, pairs = total + task.loss(model, batch) * present, pairs + present
    torch.testing.assert_close(task.loss(model, mixed), total / pairs, rtol=1e-5, atol=1e-6)


def test_ppt_class_weights_need_one_dataset():
    weights = "[" + ", ".join(["1.0"] * 20) + "]"
    single = create_task(load_recipe("single-scannet", [f"train.loss=[{{name: ce, class_weights: {weights}}}]"]))
    assert len(single.criterion.terms[0].class_weights) == 20  # ScanNet's classes are the logits' columns
    with pytest.raises(ValueError, match=r"class_weights has 20 weights; expected unset for a model of several"):
        create_task(load_recipe("ppt-joint", [f"train.loss=[{{name: ce, class_weights: {weights}}}]"]))
