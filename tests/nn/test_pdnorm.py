"""ppt.nn.PDNorm against a Pointcept-style PDBatchNorm built from torch.nn.BatchNorm1d."""

import pytest
import torch
from torch import nn

import ppt
from ppt.nn import PDNorm

CONDITIONS = ("ScanNet", "S3DIS", "Structured3D")


class ListOfBatchNorms(nn.Module):
    """The composition PDNorm replaces: one BatchNorm1d per condition, one condition per batch,
    then x * (1 + scale) + shift from SiLU -> Linear(context). Same parameter names as Pointcept."""

    def __init__(self, channels, context_channels, decouple=True, adaptive=True, affine=True):
        super().__init__()
        self.decouple, self.adaptive = decouple, adaptive
        if decouple:
            self.bns = nn.ModuleList(nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01, affine=affine) for _ in CONDITIONS)
        else:
            self.bn = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01, affine=affine)
        if adaptive:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(context_channels, 2 * channels))

    def forward(self, x, condition, context):
        y = (self.bns[condition] if self.decouple else self.bn)(x)
        if self.adaptive:
            shift, scale = self.modulation(context).chunk(2, dim=1)
            y = y * (1.0 + scale) + shift
        return y


def _randomize(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=gen) + 0.5 if "var" in name else torch.randn(tensor.shape, generator=gen) * 0.5
                tensor.copy_(values)
            else:
                tensor.copy_(torch.randint(0, 5, tensor.shape, generator=gen))


def _pair(decouple=True, adaptive=True, affine=True, channels=6, context_channels=5):
    reference = ListOfBatchNorms(channels, context_channels, decouple, adaptive, affine)
    _randomize(reference)
    ours = PDNorm(channels, CONDITIONS, context_channels, decouple=decouple, adaptive=adaptive, affine=affine,
                  zero_init=False)
    ours.load_state_dict(reference.state_dict())  # Pointcept keys
    return ours, reference


def _inputs(n=40, channels=6, context_channels=5, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, generator=gen) * 2 + 1
    contexts = torch.randn(len(CONDITIONS), context_channels, generator=gen)
    return x, contexts


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("decouple, adaptive, affine", [(True, True, True), (True, True, False), (True, False, True),
                                                        (False, True, True), (False, False, False)])
def test_single_condition_matches_list_of_batchnorms(decouple, adaptive, affine, training):
    ours, reference = _pair(decouple, adaptive, affine)
    ours.train(training), reference.train(training)
    x, contexts = _inputs()
    for condition in (2, 0):  # two steps: running stats and counters accumulate
        x_ours, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        context = contexts[condition:condition + 1]
        y = ours(x_ours, CONDITIONS[condition], context if adaptive else None)
        y_ref = reference(x_ref, condition, context)
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
        grad = torch.randn_like(y)
        y.backward(grad)
        y_ref.backward(grad)
        torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    # state converted back to Pointcept layout matches the reference's buffers and parameter grads
    for i in range(len(CONDITIONS) if decouple else 1):
        bn = reference.bns[i] if decouple else reference.bn
        torch.testing.assert_close(ours.running_mean[i], bn.running_mean)
        torch.testing.assert_close(ours.running_var[i], bn.running_var)
        assert int(ours.num_batches_tracked[i]) == int(bn.num_batches_tracked)
        if affine:
            for ours_param, bn_param in ((ours.weight, bn.weight), (ours.bias, bn.bias)):
                want = bn_param.grad if bn_param.grad is not None else torch.zeros_like(bn_param)
                torch.testing.assert_close(ours_param.grad[i], want, atol=1e-5, rtol=1e-5)
    if adaptive:
        for ours_param, ref_param in zip(ours.modulation.parameters(), reference.modulation.parameters()):
            torch.testing.assert_close(ours_param.grad, ref_param.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_mixed_batch_equals_per_condition_batches(training, device):
    ours, reference = _pair()
    ours.to(device).train(training), reference.to(device).train(training)
    x, contexts = (t.to(device) for t in _inputs(n=90))
    domain = torch.randint(0, 3, (90,), generator=torch.Generator().manual_seed(5)).to(device)
    x_ours = x.clone().requires_grad_(True)
    y = ours(x_ours, domain, contexts)
    y.square().sum().backward()
    x_ref = x.clone().requires_grad_(True)
    y_ref = torch.zeros_like(x)
    for condition in range(3):
        rows = torch.nonzero(domain == condition).squeeze(1)
        y_ref = y_ref.index_copy(0, rows, reference(x_ref[rows], condition, contexts[condition:condition + 1]))
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-4, rtol=1e-5)
    for i, bn in enumerate(reference.bns):
        torch.testing.assert_close(ours.running_mean[i], bn.running_mean)
        torch.testing.assert_close(ours.running_var[i], bn.running_var)
        torch.testing.assert_close(ours.weight.grad[i], bn.weight.grad, atol=1e-4, rtol=1e-5)
        assert int(ours.num_batches_tracked[i]) == int(bn.num_batches_tracked)


def test_absent_condition_keeps_its_statistics():
    norm = PDNorm(4, CONDITIONS, context_channels=3)
    domain = torch.tensor([0, 2, 0, 2, 2])
    norm(torch.randn(5, 4), domain, torch.randn(3, 3))
    assert norm.num_batches_tracked.tolist() == [1, 0, 1]
    assert torch.equal(norm.running_mean[1], torch.zeros(4)) and torch.equal(norm.running_var[1], torch.ones(4))
    assert not torch.equal(norm.running_mean[0], torch.zeros(4))


def test_zero_init_starts_as_batch_norm():
    norm = PDNorm(6, CONDITIONS, context_channels=5)
    assert torch.count_nonzero(norm.modulation[1].weight) == 0 and torch.count_nonzero(norm.modulation[1].bias) == 0
    x, contexts = _inputs()
    bn = nn.BatchNorm1d(6, eps=1e-3, momentum=0.01)
    torch.testing.assert_close(norm(x, 1, contexts), bn(x), atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip_and_pointcept_keys():
    ours, reference = _pair()
    keys = set(ours.state_dict())
    assert keys == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked", "modulation.1.weight",
                    "modulation.1.bias"}
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        expected = torch.stack([reference.state_dict()[f"bns.{i}.{name}"] for i in range(3)])
        assert torch.equal(ours.state_dict()[name], expected)
    copy = PDNorm(6, CONDITIONS, context_channels=5)
    copy.load_state_dict(ours.state_dict())
    for name, value in ours.state_dict().items():
        assert torch.equal(copy.state_dict()[name], value)


def test_pointcept_keys_load_inside_a_parent_module():
    reference = nn.Sequential(nn.Linear(6, 6), ListOfBatchNorms(6, 5))
    _randomize(reference)
    ours = nn.Sequential(nn.Linear(6, 6), PDNorm(6, CONDITIONS, context_channels=5))
    result = ours.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(ours[1].running_var[2], reference[1].bns[2].running_var, rtol=0, atol=0)


def test_incomplete_pointcept_keys_are_rejected():
    _, reference = _pair()
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("bns.2.")}
    with pytest.raises(ValueError, match=r"bns.\*.weight cover conditions \[0, 1\], expected 0..2"):
        PDNorm(6, CONDITIONS, context_channels=5).load_state_dict(state)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, c: m(x, 3, c), r"domain must be in \[0, 3\), got 3"),
        (lambda m, x, c: m(x, "KITTI", c), "unknown condition 'KITTI'"),
        (lambda m, x, c: m(x, 0, None), "adaptive=True needs the conditions' context"),
        (lambda m, x, c: m(x, torch.zeros(8, dtype=torch.long), c[:1]), r"context must have shape \(3, 5\), got \(1, 5\)"),
        (lambda m, x, c: m(x, 0, c[:, :4]), r"context must have shape \(3, 5\) or \(1, 5\)"),
        (lambda m, x, c: m(x[:, :4], 0, c), r"x must have shape \(N, 6\)"),
        (lambda m, x, c: m(x, torch.zeros(8, dtype=torch.int32), c), "a domain tensor must be int64 of shape"),
        (lambda m, x, c: m(x, torch.tensor([0, 0, 0, 5, 1, 1, 2, 2]), c), r"segment ids must be in \[0, num_segments\)"),
    ],
)
def test_bad_input(call, message):
    norm = PDNorm(6, CONDITIONS, context_channels=5)
    x, contexts = _inputs(n=8)
    with pytest.raises((ValueError, RuntimeError), match=message):
        call(norm, x, contexts)


def test_constructor_rejects_bad_conditions():
    with pytest.raises(ValueError, match="conditions must be a non-empty sequence"):
        PDNorm(4, "ScanNet")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(eps=0.0), ValueError, "PDNorm: eps must be a positive finite number, got 0.0"),
        (dict(eps=-1e-3), ValueError, "PDNorm: eps must be a positive finite number, got -0.001"),
        (dict(momentum=2.0), ValueError, r"PDNorm: momentum must be in \[0, 1\], got 2.0"),
        (dict(num_features=4.0), TypeError, "PDNorm: num_features must be an int, got float 4.0"),
        (dict(num_features=0), ValueError, "PDNorm: num_features must be >= 1, got 0"),
        (dict(context_channels=5.5), TypeError, "PDNorm: context_channels must be an int, got float 5.5"),
    ],
)
def test_constructor_rejects_bad_numbers(kwargs, error, message):
    with pytest.raises(error, match=message):
        PDNorm(**{"num_features": 4, "conditions": CONDITIONS, "context_channels": 5, **kwargs})


def test_eps_changed_after_construction_is_checked_at_forward():
    norm = PDNorm(6, CONDITIONS, context_channels=5)
    norm.eps = -1.0
    x, contexts = _inputs(n=8)
    with pytest.raises(ValueError, match="segment_batch_norm: eps must be a positive finite number, got -1.0"):
        norm(x, 0, contexts)


def test_exported_from_package():
    assert ppt.nn.PDNorm is PDNorm


def test_torch_compile(device):
    norm = PDNorm(6, CONDITIONS, context_channels=5, zero_init=False).to(device)
    x, contexts = (t.to(device) for t in _inputs())
    domain = (torch.arange(40, device=device) % 3)
    eager = PDNorm(6, CONDITIONS, context_channels=5, zero_init=False).to(device)
    eager.load_state_dict(norm.state_dict())
    compiled = torch.compile(norm, backend="aot_eager")
    for module in (eager, compiled):
        module(x, domain, contexts).sum().backward()
    torch.testing.assert_close(compiled(x, domain, contexts), eager(x, domain, contexts), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.modulation[1].weight.grad, eager.modulation[1].weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.running_mean, eager.running_mean)


def test_scalar_tensor_domain_names_one_condition():
    norm = PDNorm(6, CONDITIONS, context_channels=5, zero_init=False).eval()
    x, contexts = _inputs()
    torch.testing.assert_close(norm(x, torch.tensor(2), contexts), norm(x, 2, contexts), rtol=0, atol=0)
