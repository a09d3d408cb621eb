"""The train loop shared by every recipe.

It owns the data order, AMP, gradient accumulation and clipping, the schedule, evaluation,
checkpoints, resume, DDP and logging, and reaches the model only through a
:class:`~ppt.engine.tasks.base.Task`. Output folder::

    OUT/config.yaml         the resolved recipe
    OUT/log.jsonl           one JSON object per logged step ({"step", "epoch", "loss", "lr", "time", ...};
                            time: seconds of training so far, summed over resumed sessions) and per
                            evaluation ({"step", "eval": {source: {metric: value}}}); strict JSON,
                            null for a metric with nothing to measure
    OUT/last.safetensors    weights + metadata of the latest step; last.state.pt resumes from it
                            (with train.ema_decay the checkpoints hold the weight average, the
                            state file the raw weights)
    OUT/best.safetensors    the weights with the best validation ``train.best_metric``
    OUT/tensorboard/        event files, when tensorboard is installed
    OUT/previews/           the task's pictures (train.preview_every), if it draws any

Everything a recipe can get wrong is reported before any data is touched: the config's values
(:mod:`ppt.engine.config`), then the device, precision, task, model (with ``model.weights``),
optimizer and schedule, which are built first, and on ``resume`` the stored run's config; each
as a :class:`~ppt.engine.config.ConfigError`. A dataset file that turns out malformed during the
run raises :class:`~ppt.engine.batches.DataError`.

SIGINT or SIGTERM during the loop ends the run after the current step with ``last`` checkpointed
(all processes stop at the same step) and raises :class:`TrainingInterrupted`; a second signal
ends the process at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader
from tqdm import tqdm

from ppt._device import resolve_device
from ppt.engine.batches import DataBatches, ignore_stop_signals
from ppt.engine.checkpoint import (CheckpointError, CheckpointMeta, provenance, read_meta, read_train_state,
                                   rng_state, save_checkpoint, set_rng_state, writable_folder)
from ppt.engine.config import ConfigError, RecipeConfig, check_config, config_to_dict
from ppt.engine.distributed import DistributedContext, all_reduce_max, all_reduce_mean, init_distributed
from ppt.engine.ema import WeightAverage
from ppt.engine.metrics import strict_json
from ppt.engine.optim import build_optimizer, build_scheduler
from ppt.engine.precise_bn import recompute_bn_statistics
from ppt.engine.sampling import epoch_sampler
from ppt.engine.tasks import create_task

__all__ = ["train", "TrainResult", "resolve_device", "Precision", "RunFolderError", "TrainingInterrupted"]

# Keys a resumed run may change without changing its results.
RESUMABLE_CHANGES = ("data.num_workers", "data.val_batch_size", "train.log_every", "train.tensorboard",
                     "train.checkpoint_every", "description")


class RunFolderError(ValueError):
    """The output folder does not fit the request: a run already there without ``resume``, or a
    resume with another config or process count."""


class TrainingInterrupted(KeyboardInterrupt):
    """The run stopped early on SIGINT or SIGTERM, with ``checkpoint`` (``last.safetensors``) written
    at ``step``, so ``resume`` continues it. A ``KeyboardInterrupt``, so code that catches
    ``Exception`` lets it through as it would Ctrl-C."""

    def __init__(self, signal_number: int, step: int, steps: int, checkpoint: Path) -> None:
        self.signal = signal.Signals(signal_number)
        self.step, self.checkpoint = step, checkpoint
        super().__init__(f"stopped by {self.signal.name} at step {step} of {steps}; saved {checkpoint}")


class _StopSignals:
    """While active (in the main thread), the first SIGINT or SIGTERM only records itself
    (``received``), so the loop can finish its step and checkpoint; a second one ends the process
    at once, by the default action of that signal."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: bool) -> None:
        self.announce = announce
        self.received = 0
        self._previous: dict = {}

    def _handle(self, number: int, frame) -> None:
        name = signal.Signals(number).name
        if self.received:
            os.write(2, f"\nppt train: second signal ({name}): stopping now, without saving\n".encode())
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            return
        self.received = number
        if self.announce:
            # os.write: print() could re-enter the stream the progress bar is writing to
            os.write(2, f"\nppt train: {name}: finishing this step, then saving a checkpoint (send it again to stop "
                        "at once, without saving)\n".encode())

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """A ``ValueError`` (or the ``ImportError`` of a missing optional package) while building what a
    recipe names (device, task, model, weights, optimizer, schedule) is a problem of the config:
    re-raised as :class:`ConfigError`, whose message already names the key or file."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, ImportError) as error:
        raise ConfigError(str(error)) from error


@dataclass
class TrainResult:
    out: Path
    step: int
    losses: list[float] = field(default_factory=list)  # this session's step losses
    metrics: dict = field(default_factory=dict)  # the last evaluation


class Precision:
    """Autocast and gradient scaling for ``train.amp``: ``none``; ``bf16``; ``fp16`` (with a
    GradScaler); ``auto`` = bf16 on a GPU that supports it, none on CPU (where bf16 autocast is
    rarely faster for these networks)."""

    def __init__(self, amp: str, device: torch.device) -> None:
        if amp not in ("none", "auto", "bf16", "fp16"):
            raise ValueError(f"train.amp must be 'none', 'auto', 'bf16' or 'fp16', got {amp!r}")
        if amp == "auto":
            amp = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "none"
        self.mode = amp
        self.device_type = device.type
        self.dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def _flatten(content: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in content.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _with_defaults(saved: dict) -> dict:
    """A run's saved config with the settings added to ppt since it was written at their defaults,
    so that resuming a run of an older ppt compares settings, not versions (a key the schema no
    longer has is left for the comparison to report)."""
    try:
        return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(RecipeConfig), saved), resolve=True)
    except OmegaConfBaseException:
        return saved


def _check_same_run(saved: dict, current: dict, where: Path) -> None:
    old, new = _flatten(_with_defaults(saved)), _flatten(current)
    changed = [key for key in sorted(set(old) | set(new))
               if old.get(key) != new.get(key) and key not in RESUMABLE_CHANGES]
    if changed:
        details = "; ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in changed[:6])
        raise RunFolderError(f"--resume: the config differs from the run in {where} ({details}); resume with the same "
                         "recipe and --set values, or train into another --out")


class _Log:
    """JSON lines on the main process, mirrored to TensorBoard when it is installed."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.file = None
        if enabled:
            path = out / "log.jsonl"
            # a resumed run drops what the interrupted session logged after its checkpoint
            kept = [line for line in path.read_text().splitlines(keepends=True)
                    if json.loads(line)["step"] <= resume_step] if resume_step is not None and path.is_file() else []
            self.file = open(path, "w")
            self.file.writelines(kept)
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass
            else:
                self.writer = SummaryWriter(str(out / "tensorboard"))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(strict_json(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            step = record["step"]
            for key, value in record.items():
                if key not in ("step", "epoch", "time", "eval"):
                    self.writer.add_scalar(f"train/{key}", value, step)
            for source, metrics in record.get("eval", {}).items():
                for name, value in metrics.items():
                    if not name.startswith("IoU/") and name != "count":
                        self.writer.add_scalar(f"val/{source}/{name}", value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def _score(metrics: dict, name: str) -> float:
    values = [m[name] for m in metrics.values() if name in m and not math.isnan(m[name])]
    return sum(values) / len(values) if values else float("-inf")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)


def _gather_rng(ctx: DistributedContext) -> list:
    state = rng_state()
    if not ctx.enabled:
        return [state]
    states = [None] * ctx.world_size
    dist.all_gather_object(states, state)
    return states


def train(config: RecipeConfig, out: str | PathLike, *, recipe: str = "", resume: bool = False,
          stop_after: int | None = None, progress: bool = True) -> TrainResult:
    """Train ``config`` into ``out``.

    Args:
        recipe: the recipe's name (stored in the checkpoint metadata).
        resume: continue the run in ``out`` from ``last.safetensors`` exactly where it stopped
            (same data order, RNG, optimizer and schedule state as an uninterrupted run).
        stop_after: end this session after that many steps (>= 1; checkpointed, so ``resume``
            continues); the schedule still spans ``train.steps``.
        progress: show a tqdm bar on the main process.

    Raises:
        ConfigError: a value of the config that cannot work, found before any data is read.
        RunFolderError, OutputError, CheckpointError: ``out`` does not fit the request.
        DataError: a dataset file is malformed (found when it is read).
        TrainingInterrupted: SIGINT or SIGTERM stopped the run after a step, checkpointed.
    """
    out = Path(out)
    train_cfg = config.train
    check_config(config)
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after must be >= 1 (steps of this session), got {stop_after}")
    with _config_errors():
        device = resolve_device(train_cfg.device, "train.device")
        precision = Precision(train_cfg.amp, device)
    ctx = init_distributed(device)
    last = out / "last.safetensors"
    if ctx.is_main:
        if resume and not last.is_file():
            raise CheckpointError(f"--resume: {last} does not exist; nothing to resume in {out}")
        if not resume and last.is_file():
            raise RunFolderError(f"{out} already holds a run ({last.name}); pass --resume to continue it or choose "
                             "another --out")
        writable_folder(out, "--out")
    config_dict = config_to_dict(config)
    state = None
    if resume:  # before any data is written: a resume that cannot continue this run says so at once
        _check_same_run(read_meta(last).config, config_dict, last)
        state = read_train_state(last)
        if len(state["rng"]) != ctx.world_size:
            raise RunFolderError(f"--resume: the run used {len(state['rng'])} processes, this one has "
                                 f"{ctx.world_size}; resume with the same number to continue exactly")

    _seed_everything(train_cfg.seed)
    with _config_errors():
        task = create_task(config)
        model = task.build_model().to(device)
        optimizer = build_optimizer(model, config.optim)
        scheduler = build_scheduler(optimizer, config.schedule, train_cfg.steps)
    train_sets = task.train_datasets(is_main=ctx.is_main)
    val_sets = {name: task.dataset(source, source.val_split, train=False, is_main=ctx.is_main)
                for name, source in config.data.sources.items()}
    average = (WeightAverage(model, train_cfg.ema_decay, every=train_cfg.ema_every, start=train_cfg.ema_start)
               if train_cfg.ema_decay is not None else None)

    step, best, elapsed = 0, float("-inf"), 0.0
    if state is not None:
        model.load_state_dict(load_file(str(last), device=str(device)))
        if average is not None:  # the checkpoint holds the average, the state the raw weights
            average.load_state_dict(model.state_dict())
            model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        precision.scaler.load_state_dict(state.get("scaler", {}))
        step, best = int(state["step"]), float(state["best"])
        elapsed = float(state.get("elapsed", 0.0))  # training seconds of the earlier sessions
        set_rng_state(state["rng"][ctx.rank])
    else:
        # the same initial weights on every process; then each process its own random stream
        _seed_everything(train_cfg.seed + 1000003 * ctx.rank)

    wrapped: nn.Module = model
    if ctx.enabled:
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                      find_unused_parameters=task.find_unused_parameters)

    sizes = [len(d) for d in train_sets]
    ratios = [source.ratio for source in config.data.sources.values()]
    accumulate = train_cfg.accumulate
    sampler = epoch_sampler(sizes, ratios, batch_size=config.data.batch_size, accumulate=accumulate,
                            world_size=ctx.world_size, rank=ctx.rank, seed=train_cfg.seed, mixed=config.data.mixed_batches)
    per_epoch = sampler.steps_per_epoch
    concat = ConcatDataset(train_sets)
    end = train_cfg.steps if stop_after is None else min(train_cfg.steps, step + stop_after)

    if ctx.is_main:
        OmegaConf.save(OmegaConf.structured(config), out / "config.yaml")
    log = _Log(out, ctx.is_main, train_cfg.tensorboard, step if resume else None)
    count = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if ctx.is_main:
        sources = ", ".join(f"{name} ({len(d)} train / {len(val_sets[name])} val)" for name, d in zip(config.data.sources, train_sets))
        print(f"ppt train {recipe or ''}: {config.task} on {sources}; {config.model.name} with {trainable:,} trainable "
              f"of {count:,} parameters; {device}, {ctx.world_size} process(es), amp {precision.mode}; steps "
              f"{step} -> {end} of {train_cfg.steps} ({per_epoch} per epoch)\n"
              f"outputs: {out}/ (log.jsonl, last.safetensors, best.safetensors"
              f"{', tensorboard/' if log.writer else ''})", flush=True)

    def averaged() -> contextlib.AbstractContextManager:
        """The weights that are evaluated and saved: the average when there is one."""
        return average.applied(model) if average is not None else contextlib.nullcontext()

    def precise_statistics() -> None:
        """Running BN/PDNorm statistics from ``train.precise_bn_batches`` training batches (drawn
        by their own sampler and generators: the training's data order and RNG are untouched)."""
        sampler = epoch_sampler(sizes, ratios, batch_size=config.data.batch_size, accumulate=1,
                                world_size=ctx.world_size, rank=ctx.rank, seed=train_cfg.seed + 1,
                                mixed=config.data.mixed_batches)
        sampler.set_epoch(step)
        loader = DataLoader(concat, batch_sampler=list(sampler)[:train_cfg.precise_bn_batches], collate_fn=task.collate,
                            num_workers=config.data.num_workers, worker_init_fn=ignore_stop_signals,
                            generator=torch.Generator().manual_seed(train_cfg.seed + step))

        def forward(batch) -> None:
            with precision.autocast():
                task.loss(model, batch.to(device))

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                DataBatches(loader, "training data") as stats_batches:
            recompute_bn_statistics(model, stats_batches, forward, train_cfg.precise_bn_batches)
        if average is not None:  # inside averaged(): the average's weights with their statistics
            average.load_state_dict(model.state_dict())

    def evaluate() -> dict:
        bar = (lambda loader: tqdm(loader, desc="eval", leave=False)) if progress and ctx.is_main else None
        with averaged():
            if train_cfg.precise_bn_batches:
                precise_statistics()
            return task.evaluate(model, val_sets, device=device, autocast=precision.autocast, rank=ctx.rank,
                                 world_size=ctx.world_size, progress=bar)

    def save(path: Path, metrics: dict, with_state: bool) -> None:
        rngs = _gather_rng(ctx) if with_state else None
        if not ctx.is_main:
            return
        meta = CheckpointMeta(config=config_dict, class_names=task.class_names, step=step, metrics=metrics,
                              provenance={**provenance(), "recipe": recipe, **task.checkpoint_metadata(model)})
        state = None
        if with_state:
            state = {"step": step, "best": best, "elapsed": time.perf_counter() - started,
                     "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": precision.scaler.state_dict(), "rng": rngs}
            if average is not None:
                # copies: the average is swapped into these tensors while the files are written
                state["model"] = {name: value.detach().to("cpu", copy=True)
                                  for name, value in model.state_dict().items()}
        with averaged():
            save_checkpoint(path, model, meta, state)

    trainable_params = [p for p in model.parameters() if p.requires_grad]
    losses: list[float] = []
    metrics: dict = {}
    stop_signal = 0  # the signal that stops the run, agreed by every process
    bar = tqdm(total=end, initial=step, desc="train", disable=not (progress and ctx.is_main), dynamic_ncols=True)
    model.train()
    started = time.perf_counter() - elapsed  # so a resumed run's log times continue where it stopped
    with _StopSignals(announce=ctx.is_main) as signals:
        while step < end and not stop_signal:
            epoch, skip = divmod(step, per_epoch)
            for dataset in train_sets:
                dataset.set_epoch(epoch)
            sampler.set_epoch(epoch)
            micro_batches = list(sampler)
            loader = DataLoader(concat, batch_sampler=micro_batches[skip * accumulate:], collate_fn=task.collate,
                                num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
                                worker_init_fn=ignore_stop_signals,
                                generator=torch.Generator())  # its own generator: worker seeds leave the global RNG alone
            with DataBatches(loader, "training data") as epoch_batches:
                batches = iter(epoch_batches)
                for _ in range(per_epoch - skip):
                    if step >= end or stop_signal:
                        break
                    optimizer.zero_grad(set_to_none=True)
                    total = torch.zeros((), device=device)
                    for micro in range(accumulate):
                        batch = next(batches).to(device)
                        sync = wrapped.no_sync() if ctx.enabled and micro < accumulate - 1 else contextlib.nullcontext()
                        with sync:
                            with precision.autocast():
                                loss = task.loss(wrapped, batch)
                            precision.scaler.scale(loss / accumulate).backward()
                        total += loss.detach()
                    lr = optimizer.param_groups[0]["lr"]
                    grad_norm = None
                    if train_cfg.grad_clip is not None:
                        precision.scaler.unscale_(optimizer)
                        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable_params, train_cfg.grad_clip))
                    precision.scaler.step(optimizer)
                    precision.scaler.update()
                    scheduler.step()
                    step += 1
                    if average is not None:
                        average.update(model, step)
                    step_loss = float(all_reduce_mean(total / accumulate))
                    if not math.isfinite(step_loss) and precision.mode != "fp16":
                        raise FloatingPointError(f"the loss is {step_loss} at step {step}; lower optim.lr or enable "
                                                 "train.grad_clip")
                    # every process stops after the same step, whichever of them got the signal
                    stop_signal = int(all_reduce_max(torch.tensor(signals.received, device=device)))
                    losses.append(step_loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}")
                    if step % train_cfg.log_every == 0 or step == end:
                        record = {"step": step, "epoch": epoch, "loss": step_loss, "lr": lr,
                                  "time": round(time.perf_counter() - started, 3)}
                        if grad_norm is not None:
                            record["grad_norm"] = grad_norm
                        log.write({**record, **task.train_log()})
                    if ctx.is_main and (step == end or (train_cfg.preview_every and step % train_cfg.preview_every == 0)):
                        with averaged():
                            task.write_previews(model, step=step, out=out / "previews", device=device)
                    evaluate_now = step == train_cfg.steps or (train_cfg.eval_every and step % train_cfg.eval_every == 0)
                    if evaluate_now:
                        metrics = evaluate()
                        log.write({"step": step, "eval": metrics})
                        if ctx.is_main:
                            summary = ", ".join(f"{source}: " + " ".join(f"{k} {m[k]:.4f}" for k in task.headline_metrics)
                                                for source, m in metrics.items())
                            bar.write(f"step {step}: {summary}")
                        score = _score(metrics, train_cfg.best_metric)
                        if score > best:
                            best = score
                            save(out / "best.safetensors", metrics, with_state=False)
                    if step == end or stop_signal or (train_cfg.checkpoint_every and step % train_cfg.checkpoint_every == 0):
                        save(last, metrics, with_state=True)
    bar.close()
    log.close()
    if stop_signal and step < end:
        raise TrainingInterrupted(stop_signal, step, train_cfg.steps, last)
    if ctx.is_main:
        print(f"done: step {step} of {train_cfg.steps}; checkpoint {last}" +
              ("" if step == train_cfg.steps else f" (continue with --resume)"), flush=True)
    return TrainResult(out=out, step=step, losses=losses, metrics=metrics)
