"""segment_batch_norm and its kernels against per-segment F.batch_norm (ppt.ops._reference)."""

import math

import pytest
import torch

from ppt.ops import _reference as ref
from ppt.ops import segment_batch_norm
from ppt.testing import runs_cuda_kernels

FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
# (atol, rtol) of outputs and gradients: half inputs are rounded once at the end, like torch.
TOLERANCES = {
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float32: (2e-5, 2e-5),
    torch.float64: (1e-10, 1e-10),
}


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _mean_rounding_bound(x, segment, num_segments):
    """``(S, C)`` float64 bound on the rounding error of each segment's channel means summed in
    ``_acc(x.dtype)``: ``sqrt(n) * u * max|x|`` over the segment's ``n`` rows (the probabilistic
    bound of an n-term sum, Higham & Mary 2019, which holds whatever the summation order, hence
    the thread count), and 0 for a channel whose rows are all equal (their partial sums are exact)."""
    unit_roundoff = torch.finfo(_acc(x.dtype)).eps / 2
    bound = torch.zeros(num_segments, x.shape[1], dtype=torch.float64)
    for s in range(num_segments):
        rows = x[segment == s].double().cpu()
        if rows.shape[0]:
            varying = rows.amax(0) > rows.amin(0)
            bound[s] = varying * math.sqrt(rows.shape[0]) * unit_roundoff * rows.abs().amax(0)
    return bound


def _case(case, dtype, device):
    """(x, segment, num_segments) for a named case; x is built in float64 then cast."""
    gen = torch.Generator().manual_seed(1)
    if case == "empty":
        x, segment, num_segments = torch.empty(0, 6, dtype=torch.float64), torch.empty(0, dtype=torch.long), 2
    elif case == "one_segment":
        x, segment, num_segments = torch.randn(64, 8, generator=gen, dtype=torch.float64), torch.zeros(64, dtype=torch.long), 1
    elif case == "single_row":  # eval only: training raises (see test_matches_reference)
        x, segment, num_segments = torch.randn(1, 4, generator=gen, dtype=torch.float64), torch.tensor([1]), 2
    elif case == "one_channel":
        x, segment, num_segments = torch.randn(50, 1, generator=gen, dtype=torch.float64), torch.arange(50) % 2, 2
    elif case == "two_rows":  # the smallest segment that has a variance in training
        x, segment, num_segments = torch.randn(2, 3, generator=gen, dtype=torch.float64), torch.tensor([0, 0]), 1
    elif case == "mixed":  # interleaved rows of three datasets
        x = torch.randn(300, 16, generator=gen, dtype=torch.float64) * 2 + 0.5
        segment, num_segments = torch.randint(0, 3, (300,), generator=gen), 3
    elif case == "absent_segment":  # segments 1 and 3 of 5 have no rows
        x = torch.randn(120, 7, generator=gen, dtype=torch.float64)
        segment, num_segments = torch.tensor([0, 2, 4])[torch.randint(0, 3, (120,), generator=gen)], 5
    elif case == "runs":  # a batch of scenes concatenated dataset by dataset, odd channel count
        x = torch.randn(3000, 5, generator=gen, dtype=torch.float64) * 3
        segment, num_segments = torch.arange(3).repeat_interleave(1000), 3
    elif case == "duplicates":  # repeated rows and a constant channel (zero variance)
        base = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        x = base.repeat(25, 1)
        x[:, 2] = 1.5
        segment, num_segments = torch.arange(100) % 2, 2
    elif case == "offset":  # large mean, small spread: exposes E[x^2] - E[x]^2 cancellation
        x = 1000 + torch.randn(2000, 4, generator=gen, dtype=torch.float64) * 0.25
        segment, num_segments = torch.randint(0, 2, (2000,), generator=gen), 2
    elif case == "many_blocks":  # more rows than one thread's part: exercises the part merge
        x = torch.randn(20000, 12, generator=gen, dtype=torch.float64) - 3
        segment, num_segments = torch.randint(0, 4, (20000,), generator=gen), 4
    elif case == "non_contiguous":
        x = torch.randn(9, 400, generator=gen, dtype=torch.float64).t()
        segment, num_segments = torch.randint(0, 2, (800,), generator=gen)[::2], 2
    else:
        raise ValueError(case)
    return x.to(dtype=dtype, device=device), segment.to(device), num_segments


CASES = ["empty", "single_row", "one_channel", "one_segment", "two_rows", "mixed", "absent_segment", "runs", "duplicates", "offset",
         "many_blocks", "non_contiguous"]


def _tables(num_segments, channels, dtype, device, gen_seed=2):
    gen = torch.Generator().manual_seed(gen_seed)
    acc = _acc(dtype)
    def make(scale, shift):
        return (torch.rand(num_segments, channels, generator=gen, dtype=torch.float64) * scale + shift).to(acc).to(device)
    return dict(running_mean=make(2, -1), running_var=make(3, 0.5), weight=make(2, -0.5), bias=make(1, -0.5))


def _run(fn, x, segment, num_segments, tables, training, affine, grad_out):
    x = x.detach().clone().requires_grad_(True)
    weight = tables["weight"].clone().requires_grad_(True) if affine else None
    bias = tables["bias"].clone().requires_grad_(True) if affine else None
    running_mean, running_var = tables["running_mean"].clone(), tables["running_var"].clone()
    y = fn(x, segment, num_segments, running_mean, running_var, weight, bias, training, 0.1, 1e-5)
    y.backward(grad_out)
    grads = [x.grad] + ([weight.grad, bias.grad] if affine else [])
    return y, grads, (running_mean, running_var)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matches_reference(case, dtype, training, affine, device):
    x, segment, num_segments = _case(case, dtype, device)
    tables = _tables(num_segments, x.shape[1], dtype, device)
    grad_out = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(dtype=dtype, device=device)
    if case == "single_row" and training:
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
            _run(ref.segment_batch_norm, x, segment, num_segments, tables, training, affine, grad_out)
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
            _run(segment_batch_norm, x, segment, num_segments, tables, training, affine, grad_out)
        return
    y, grads, running = _run(segment_batch_norm, x, segment, num_segments, tables, training, affine, grad_out)
    atol, rtol = TOLERANCES[dtype]
    if case == "offset" and dtype != torch.float64 and training:
        # Rows ~1000 with spread 0.25: x - mean cancels, so the reference in x's dtype (torch's
        # batch_norm) has larger rounding errors than the kernels. Compare with the float64 result
        # of the same rounded inputs, allowing the kernels' own error: their segment means carry
        # the rounding of an n-term sum (_mean_rounding_bound), which y = (x - mean) * invstd * w + b
        # multiplies by invstd * |w|, on top of the rounding of y to its dtype.
        tables64 = {k: v.double() for k, v in tables.items()}
        y_ref, grads_ref, running_ref = _run(ref.segment_batch_norm, x.double(), segment, num_segments, tables64,
                                             training, affine, grad_out.double())
        invstd = torch.stack([torch.rsqrt(x[segment == s].double().var(0, unbiased=False) + 1e-5).cpu()
                              for s in range(num_segments)])
        gain = tables["weight"].abs().double().cpu() if affine else 1.0
        atol += float((_mean_rounding_bound(x, segment, num_segments) * invstd * gain).max())
    else:
        y_ref, grads_ref, running_ref = _run(ref.segment_batch_norm, x, segment, num_segments, tables, training,
                                             affine, grad_out)
    assert y.dtype == dtype and y.shape == x.shape and y.device == x.device
    torch.testing.assert_close(y, y_ref.to(dtype), atol=atol, rtol=rtol)
    for got, want in zip(grads, grads_ref):
        want = torch.zeros_like(got) if want is None else want  # reference never touched the affine rows
        # gradients sum over up to N rows: scale the tolerance with the magnitude of the sums
        scale = max(1.0, float(want.abs().max())) if want.numel() else 1.0
        torch.testing.assert_close(got, want.to(got.dtype), atol=atol * scale, rtol=rtol * 10)
    for got, want in zip(running, running_ref):
        torch.testing.assert_close(got, want.to(got.dtype), atol=max(atol, 1e-6) if dtype != torch.float64 else 1e-12, rtol=rtol)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_stats_op_matches_two_pass_moments(dtype, device):
    x, segment, num_segments = _case("offset", dtype, device)
    count, mean, m2 = torch.ops.ppt.segment_bn_stats(x, segment, num_segments)
    assert count.dtype == torch.int64 and mean.dtype == _acc(dtype) and m2.dtype == _acc(dtype)
    mean_bound = _mean_rounding_bound(x, segment, num_segments)
    for s in range(num_segments):
        rows = x[segment == s].double()
        assert int(count[s]) == rows.shape[0]
        assert ((mean[s].double() - rows.mean(0)).abs().cpu() <= mean_bound[s]).all()
        expected_m2 = (rows - rows.mean(0)).square().sum(0)
        torch.testing.assert_close(m2[s].double(), expected_m2, atol=1e-3, rtol=1e-4 if dtype != torch.float64 else 1e-12)


def test_hand_checked(device):
    # segment 0: rows [1, 3] -> mean 2, biased var 1; segment 1: rows [10, 14] -> mean 12, var 4.
    x = torch.tensor([[1.0], [10.0], [3.0], [14.0]], device=device)
    segment = torch.tensor([0, 1, 0, 1], device=device)
    running_mean, running_var = torch.zeros(3, 1, device=device), torch.ones(3, 1, device=device)
    weight = torch.tensor([[2.0], [1.0], [7.0]], device=device)
    bias = torch.tensor([[0.0], [5.0], [7.0]], device=device)
    # eps must be > 0; 1e-30 vanishes when added to these variances in float32, so results are exact.
    y = segment_batch_norm(x, segment, 3, running_mean, running_var, weight, bias, True, 0.5, 1e-30)
    assert y[:, 0].tolist() == [-2.0, 4.0, 2.0, 6.0]
    # unbiased variances 2 and 8; segment 2 is absent and keeps its buffers
    assert running_mean[:, 0].tolist() == [1.0, 6.0, 0.0]
    assert running_var[:, 0].tolist() == [1.5, 4.5, 1.0]


def test_eval_uses_running_stats(device):
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], device=device)
    segment = torch.tensor([1, 0, 1], device=device)
    running_mean = torch.tensor([[1.0, 1.0], [5.0, 6.0]], device=device)
    running_var = torch.tensor([[4.0, 4.0], [1.0, 16.0]], device=device)
    y = segment_batch_norm(x, segment, 2, running_mean, running_var, training=False, eps=1e-30)
    assert y.tolist() == [[-4.0, -1.0], [1.0, 1.5], [0.0, 0.0]]


def test_training_without_running_stats_or_affine(device):
    x, segment, num_segments = _case("mixed", torch.float32, device)
    y = segment_batch_norm(x, segment, num_segments)
    torch.testing.assert_close(y, ref.segment_batch_norm(x, segment, num_segments), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_gradcheck(training, device):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(13, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    segment = torch.tensor([0, 2, 0, 2, 2, 0, 0, 2, 0, 2, 2, 0, 2], device=device)
    weight = torch.randn(3, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    bias = torch.randn(3, 3, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    running_mean = torch.randn(3, 3, generator=gen, dtype=torch.float64).to(device)
    running_var = torch.rand(3, 3, generator=gen, dtype=torch.float64).to(device) + 0.5

    def fn(x, weight, bias):
        return segment_batch_norm(x, segment, 3, running_mean.clone(), running_var.clone(), weight, bias,
                                  training, 0.1, 1e-5)

    assert torch.autograd.gradcheck(fn, (x, weight, bias))


def _opcheck_samples(device):
    x, segment, num_segments = _case("mixed", torch.float32, device)
    count, mean, m2 = torch.ops.ppt.segment_bn_stats(x, segment, num_segments)
    invstd = torch.rsqrt(m2 / count.clamp_min(1)[:, None] + 1e-5)
    tables = _tables(num_segments, x.shape[1], torch.float32, device)
    grad_out = torch.randn_like(x)
    sum_dy, sum_dy_xhat = torch.ops.ppt.segment_bn_backward_reduce(grad_out, x, segment, mean, invstd)
    return [
        (torch.ops.ppt.segment_bn_stats.default, (x, segment, num_segments)),
        (torch.ops.ppt.segment_bn_apply.default, (x, segment, mean, invstd, tables["weight"], tables["bias"])),
        (torch.ops.ppt.segment_bn_apply.default, (x, segment, mean, invstd, None, None)),
        (torch.ops.ppt.segment_bn_backward_reduce.default, (grad_out, x, segment, mean, invstd)),
        (torch.ops.ppt.segment_bn_backward.default,
         (grad_out, x, segment, mean, invstd, tables["weight"], count, sum_dy, sum_dy_xhat)),
        (torch.ops.ppt.segment_bn_backward.default, (grad_out, x, segment, mean, invstd, None, None, None, None)),
    ]


def test_opcheck(device):
    for op, args in _opcheck_samples(device):
        torch.library.opcheck(op, args)


def test_torch_compile(device):
    x, segment, num_segments = _case("mixed", torch.float32, device)
    tables = _tables(num_segments, x.shape[1], torch.float32, device)

    def step(x, weight, bias, running_mean, running_var):
        y = segment_batch_norm(x, segment, num_segments, running_mean, running_var, weight, bias, True, 0.1, 1e-5)
        return (y * y.detach().sin()).sum()

    results = []
    for fn in (step, torch.compile(step, backend="aot_eager")):
        x_ = x.clone().requires_grad_(True)
        w = tables["weight"].clone().requires_grad_(True)
        b = tables["bias"].clone().requires_grad_(True)
        rm, rv = tables["running_mean"].clone(), tables["running_var"].clone()
        loss = fn(x_, w, b, rm, rv)
        loss.backward()
        results.append((loss.detach(), x_.grad, w.grad, b.grad, rm, rv))
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


def test_single_row_segment_raises_in_training(device):
    x = torch.randn(5, 4, device=device)
    segment = torch.tensor([0, 0, 1, 0, 0], device=device)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training, got segment 1"):
        segment_batch_norm(x, segment, 2)
    # like torch, a single row is fine in eval
    y = segment_batch_norm(x, segment, 2, torch.zeros(2, 4, device=device), torch.ones(2, 4, device=device), training=False)
    assert torch.isfinite(y).all()


def test_empty_batch_leaves_running_stats(device):
    running_mean, running_var = torch.randn(2, 3, device=device), torch.rand(2, 3, device=device)
    before = running_mean.clone(), running_var.clone()
    y = segment_batch_norm(torch.empty(0, 3, device=device), torch.empty(0, dtype=torch.long, device=device), 2,
                           running_mean, running_var)
    assert y.shape == (0, 3)
    torch.testing.assert_close((running_mean, running_var), before, rtol=0, atol=0)


def _bad(device, **overrides):
    args = dict(x=torch.randn(6, 4), segment=torch.tensor([0, 1, 0, 1, 0, 1]), num_segments=2,
                running_mean=torch.zeros(2, 4), running_var=torch.ones(2, 4), weight=torch.ones(2, 4),
                bias=torch.zeros(2, 4))
    args.update(overrides)
    # meta tensors stay put: they stand for "a table on another device than x"
    return {k: v.to(device) if isinstance(v, torch.Tensor) and not v.is_meta else v for k, v in args.items()}


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (dict(segment=torch.tensor([0, 1, 2, 1, 0, 1])), RuntimeError, r"segment ids must be in \[0, num_segments\) with num_segments=2, got ids in \[0, 2\]"),
        (dict(segment=torch.tensor([0, -1, 0, 1, 0, 1])), RuntimeError, r"segment ids must be in \[0, num_segments\)"),
        (dict(segment=torch.tensor([0, 1, 0, 1])), RuntimeError, r"segment must have shape \(N,\) matching x's N=6"),
        (dict(segment=torch.tensor([0, 1, 0, 1, 0, 1], dtype=torch.int32)), RuntimeError, "segment must have dtype Long"),
        (dict(num_segments=0, running_mean=None, running_var=None, weight=None, bias=None), RuntimeError, "num_segments must be positive, got 0"),
        (dict(x=torch.zeros(6, 4, dtype=torch.long)), RuntimeError, "x must be a floating-point tensor"),
        (dict(x=torch.zeros(6)), ValueError, r"x must be a tensor of shape \(N, C\)"),
        (dict(running_mean=torch.zeros(3, 4)), ValueError, r"running_mean must have shape \(num_segments, C\) = \(2, 4\), got \(3, 4\)"),
        (dict(running_var=torch.ones(2, 5)), ValueError, r"running_var must have shape \(num_segments, C\) = \(2, 4\)"),
        (dict(weight=torch.ones(4)), ValueError, r"weight must have shape \(num_segments, C\)"),
        (dict(bias=torch.zeros(2, 4, dtype=torch.long)), TypeError, "bias must be a floating-point tensor"),
        (dict(running_var=None), ValueError, "running_mean and running_var must both be given"),
        (dict(running_mean=torch.zeros(2, 4, device="meta")), ValueError, "running_mean must be on x's device"),
        (dict(momentum=None), ValueError, "momentum must be a float; momentum=None"),
        (dict(eps=-1.0), ValueError, "segment_batch_norm: eps must be a positive finite number, got -1.0"),
        (dict(eps=0.0), ValueError, "segment_batch_norm: eps must be a positive finite number, got 0.0"),
        (dict(eps=float("nan")), ValueError, "segment_batch_norm: eps must be a positive finite number, got nan"),
        (dict(eps="1e-5"), TypeError, "segment_batch_norm: eps must be a real number, got str"),
        (dict(momentum=1.5), ValueError, r"segment_batch_norm: momentum must be in \[0, 1\], got 1.5"),
        (dict(momentum=-0.1), ValueError, r"segment_batch_norm: momentum must be in \[0, 1\], got -0.1"),
        (dict(num_segments=2.0), TypeError, "segment_batch_norm: num_segments must be an int, got float 2.0"),
        (dict(training=1), TypeError, "segment_batch_norm: training must be a bool, got int 1"),
        (dict(segment=torch.tensor([0, 0, 0, 0, 0, 1])), ValueError, "Expected more than 1 value per channel when training"),
    ],
)
def test_bad_input(overrides, error, message, device):
    with pytest.raises(error, match=message):
        segment_batch_norm(**_bad(device, **overrides))


def test_eval_requires_running_stats(device):
    with pytest.raises(ValueError, match="running_mean and running_var are required when training=False"):
        segment_batch_norm(**_bad(device, running_mean=None, running_var=None, training=False))


@pytest.mark.parametrize(
    "op, args, message",
    [
        ("segment_bn_apply", lambda x, s, m, i: (x, s, m[:1], i, None, None), r"invstd must have shape \(num_segments, C\) = \(1, 4\)"),
        ("segment_bn_apply", lambda x, s, m, i: (x, s, m.double(), i, None, None), "mean must have dtype Float"),
        ("segment_bn_apply", lambda x, s, m, i: (x, s, m, i, m[:, :2], None), r"weight must have shape \(num_segments, C\) = \(2, 4\)"),
        ("segment_bn_backward_reduce", lambda x, s, m, i: (x[:3], x, s, m, i), r"grad_out must have the shape of x"),
        ("segment_bn_backward", lambda x, s, m, i: (x, x, s, m, i, None, torch.zeros(2, dtype=torch.long, device=x.device), None, None),
         "count, sum_dy and sum_dy_xhat must be given together"),
        ("segment_bn_backward", lambda x, s, m, i: (x, x, s, m, i, None, torch.zeros(3, dtype=torch.long, device=x.device), m, m),
         r"count must have shape \(num_segments,\) = \(2,\)"),
    ],
)
def test_kernel_bad_input(op, args, message, device):
    x = torch.randn(6, 4, device=device)
    segment = torch.tensor([0, 1, 0, 1, 0, 1], device=device)
    mean, invstd = torch.zeros(2, 4, device=device), torch.ones(2, 4, device=device)
    with pytest.raises(RuntimeError, match=message):
        getattr(torch.ops.ppt, op)(*args(x, segment, mean, invstd))


@pytest.mark.slow  # about a minute emulated: 65,626 blocks of up to 1,024 fibers
def test_more_channel_tiles_than_a_cuda_grid_dimension(device):
    # CUDA tiles channels by 32: past 65535 * 32 channels the tiles no longer fit grid.y, where they
    # were until the emulated launch check caught it.
    x = torch.randn(8, 65536 * 32 + 5, device=device, requires_grad=True)
    grad_out = torch.randn_like(x)
    segment = torch.arange(8, device=device) % 2
    y = segment_batch_norm(x, segment, 2)
    (grad,) = torch.autograd.grad(y, x, grad_out)
    x_ref = x.detach().double().requires_grad_()
    y_ref = ref.segment_batch_norm(x_ref, segment, 2)
    (grad_ref,) = torch.autograd.grad(y_ref, x_ref, grad_out.double())
    torch.testing.assert_close(y, y_ref.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grad, grad_ref.float(), atol=1e-3, rtol=1e-3)


def test_many_segments(device):
    # CPU tables grow with S; CUDA keeps per-block accumulators in shared memory and caps S.
    x = torch.randn(2000, 3, device=device)
    segment = torch.arange(2000, device=device) % 300
    if runs_cuda_kernels(device):
        with pytest.raises(RuntimeError, match="num_segments must be at most 128 on CUDA for Float inputs"):
            segment_batch_norm(x, segment, 300)
        return
    torch.testing.assert_close(segment_batch_norm(x, segment, 300), ref.segment_batch_norm(x, segment, 300),
                               atol=2e-5, rtol=2e-5)


def test_thread_count_changes_only_rounding():
    x, segment, num_segments = _case("many_blocks", torch.float32, "cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = torch.ops.ppt.segment_bn_stats(x, segment, num_segments)
        torch.set_num_threads(max(2, threads))
        multi = torch.ops.ppt.segment_bn_stats(x, segment, num_segments)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(single[0], multi[0], rtol=0, atol=0)
    torch.testing.assert_close(single[1:], multi[1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_affine_grads_without_input_grad(training, device):
    x, segment, num_segments = _case("mixed", torch.float32, device)
    tables = _tables(num_segments, x.shape[1], torch.float32, device)
    grads = []
    for fn in (segment_batch_norm, ref.segment_batch_norm):
        weight = tables["weight"].clone().requires_grad_(True)
        bias = tables["bias"].clone().requires_grad_(True)
        y = fn(x, segment, num_segments, tables["running_mean"].clone(), tables["running_var"].clone(), weight, bias,
               training, 0.1, 1e-5)
        y.pow(2).sum().backward()
        grads.append((weight.grad, bias.grad))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4, rtol=1e-5)
