"""Training curves from a run's ``log.jsonl`` (``ppt plot-log``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["read_log", "default_metric", "plot_training_log", "training_log_figure"]


def read_log(path: str | Path) -> tuple[list[dict], list[dict]]:
    """Split a run's JSON-lines log into training-step records (with ``loss``) and eval records
    (with ``eval``: ``{source: {metric: value}}``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path} (ppt train writes RUN/log.jsonl)")
    steps, evals = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not a JSON line ({error.msg})") from None
        if "eval" in record:
            evals.append(record)
        elif "loss" in record:
            steps.append(record)
    if not steps and not evals:
        raise ValueError(f"{path} holds no training steps or evaluations")
    return steps, evals


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    # A trailing mean over `window` steps (shorter at the start), so the smoothed curve starts at step 1;
    # non-finite losses (a skipped fp16 step, logged as null) are left out of the means.
    finite = np.isfinite(values)
    cumulative = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counted = np.concatenate([[0], np.cumsum(finite)])
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cumulative[index] - cumulative[start]) / (counted[index] - counted[start])


def default_metric(log: str | Path, evals: list[dict]) -> str:
    """The validation metric a run is judged by: its recipe's ``train.best_metric`` (from the
    ``config.yaml`` beside the log) when the evaluations hold it, else the first metric they hold
    (a pre-training run's ``chamfer``, a UniPre3D run's ``PSNR`` ...)."""
    path = Path(log)
    config = (path if path.is_dir() else path.parent) / "config.yaml"
    logged = [name for record in evals for metrics in record["eval"].values() for name in metrics
              if not name.startswith("IoU/") and name != "count"]
    if config.is_file():
        from omegaconf import OmegaConf

        best = OmegaConf.select(OmegaConf.load(config), "train.best_metric")
        if best in logged:
            return best
    return logged[0] if logged else "mIoU"


def plot_training_log(log: str | Path, out: str | Path, metric: str | None = None, title: str | None = None) -> Path:
    """:func:`training_log_figure` of the log at ``log`` (a run folder or its ``log.jsonl``), with
    ``metric`` defaulting to :func:`default_metric`, as one PNG at ``out``."""
    import matplotlib.pyplot as plt

    steps, evals = read_log(log)
    figure = training_log_figure(steps, evals, metric or default_metric(log, evals), title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def training_log_figure(steps: list[dict], evals: list[dict], metric: str, title: str | None = None):
    """The loss (raw and smoothed) and learning rate against the step, and ``metric`` of every
    evaluated source with its final value, from :func:`read_log`'s records. Metrics logged as
    ``null`` (nothing to measure) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, metric_axes) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    if steps:
        step = np.array([record["step"] for record in steps])
        loss = np.array([np.nan if record["loss"] is None else record["loss"] for record in steps], dtype=np.float64)
        loss_axes.plot(step, loss, color="0.75", linewidth=0.8, label="loss")
        window = max(1, len(loss) // 50)
        loss_axes.plot(step, _moving_average(loss, window), color="C0", label=f"loss ({window}-step mean)")
        loss_axes.set_xlabel("step")
        loss_axes.set_ylabel("training loss")
        loss_axes.legend(loc="upper right")
        lr_axes = loss_axes.twinx()
        lr_axes.plot(step, [record["lr"] for record in steps], color="C1", linewidth=0.8)
        lr_axes.set_ylabel("learning rate", color="C1")
    sources = sorted({name for record in evals for name in record["eval"]})
    drawn = 0
    for index, name in enumerate(sources):
        points = [(record["step"], record["eval"][name][metric]) for record in evals
                  if record["eval"].get(name, {}).get(metric) is not None]
        if points:
            x, y = zip(*points)
            metric_axes.plot(x, y, marker="o", color=f"C{index + 2}", label=name)
            metric_axes.annotate(f"{y[-1]:.3f}", (x[-1], y[-1]), textcoords="offset points", xytext=(4, 4))
            drawn += 1
    metric_axes.set_xlabel("step")
    metric_axes.set_ylabel(f"validation {metric}")
    if drawn:
        # the legend stands outside the axes, so it covers neither curves nor final-value labels
        metric_axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
        metric_axes.margins(x=0.2)  # room right of the last point for its value, clear of the legend
    elif evals:
        metric_axes.text(0.5, 0.5, f"no {metric} in the evaluations", transform=metric_axes.transAxes,
                         ha="center", va="center", color="0.4")
    metric_axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure
