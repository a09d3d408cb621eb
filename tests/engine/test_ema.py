import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ppt.engine import load_recipe, read_train_state, train
from ppt.engine.ema import WeightAverage


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def _set(net, value):
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(value)
        net[1].running_mean.fill_(value)
        net[1].num_batches_tracked.fill_(int(value))


def test_weight_average_by_hand():
    net = _net()
    _set(net, 1.0)
    average = WeightAverage(net, 0.75, every=2, start=1)
    _set(net, 2.0)
    average.update(net, 1)  # within the first `start` steps: a copy
    assert average.state_dict()["0.weight"].eq(2.0).all()
    _set(net, 6.0)
    average.update(net, 2)  # (2 - start) % every != 0: skipped
    assert average.state_dict()["0.weight"].eq(2.0).all()
    average.update(net, 3)  # 0.75 * 2 + 0.25 * 6 = 3
    state = average.state_dict()
    assert state["0.weight"].eq(3.0).all() and state["1.bias"].eq(3.0).all() and state["1.running_mean"].eq(3.0).all()
    assert state["1.num_batches_tracked"] == 6  # integers are copied, not averaged
    _set(net, 10.0)
    average.update(net, 5)  # 0.75 * 3 + 0.25 * 10 = 4.75
    assert average.state_dict()["0.weight"].eq(4.75).all()
    with average.applied(net):
        assert net[0].weight.eq(4.75).all() and net[1].running_mean.eq(4.75).all()
    assert net[0].weight.eq(10.0).all() and net[1].running_mean.eq(10.0).all()
    with pytest.raises(ValueError, match=r"train.ema_decay must lie in \[0, 1\)"):
        WeightAverage(net, 1.0)
    with pytest.raises(ValueError, match="train.ema_every must be >= 1"):
        WeightAverage(net, 0.5, every=0)


def test_training_keeps_the_average_in_checkpoints_and_resumes_it(tmp_path, object_overrides):
    config = load_recipe("pointmae-finetune-scanobjectnn", [*object_overrides, "train.steps=3", "train.ema_decay=0.5",
                                                            "train.ema_start=1", "data.batch_size=4"])
    whole = train(config, tmp_path / "whole", progress=False)
    raw, averages, losses = [], [], []
    for step in range(3):  # one step per session: the checkpoints show every raw weight and average
        losses += train(config, tmp_path / "split", stop_after=1, resume=step > 0, progress=False).losses
        raw.append(read_train_state(tmp_path / "split" / "last.safetensors")["model"])
        averages.append(load_file(tmp_path / "split" / "last.safetensors"))
    assert losses == pytest.approx(whole.losses, rel=1e-6, abs=1e-7)  # resuming restores the raw weights
    expected = {key: value.clone() for key, value in raw[0].items()}  # step 1 <= ema_start: a copy
    for step in (1, 2):
        for key, value in expected.items():
            if value.is_floating_point():
                value.mul_(0.5).add_(0.5 * raw[step][key])
            else:
                value.copy_(raw[step][key])
    final = load_file(tmp_path / "whole" / "last.safetensors")
    moved = 0
    for key, value in expected.items():
        assert torch.allclose(averages[2][key].double(), value.double(), rtol=1e-5, atol=1e-7), key
        assert torch.allclose(final[key].double(), value.double(), rtol=1e-5, atol=1e-7), key
        moved += not torch.equal(value, raw[2][key])
    assert moved > 0  # the average differs from the last raw weights
