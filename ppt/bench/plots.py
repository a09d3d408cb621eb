"""One PNG per suite: ppt's speedup over each baseline (log scale, baselines in the legend) and the
achieved fraction of the machine's ceilings (GEMM rate or copy bandwidth)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ppt.bench.harness import CaseResult


def _label(result: CaseResult, show_dtype: bool) -> str:
    return f"{result.case} [{result.dtype}]" if show_dtype else result.case


def plot_suite(suite: str, results: Sequence[CaseResult], title: str, path: Path) -> Path | None:
    """Write the suite's figure to ``path``; None when no case has a figure to draw."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    measured = [r for r in results if r.ppt is not None]
    baselines = list(dict.fromkeys(b.name for r in measured for b in r.baselines if b.status == "ok"))
    with_ceiling = [r for r in measured if "gemm_fraction" in r.derived or "copy_fraction" in r.derived]
    if not baselines and not with_ceiling:
        return None
    show_dtype = len({r.dtype for r in measured}) > 1
    labels = [_label(r, show_dtype) for r in measured]
    panels = int(bool(baselines)) + int(bool(with_ceiling))
    ran = [[b for b in r.baselines if b.status == "ok"] for r in measured]
    height = max(3.0, 0.22 * sum(max(1, len(bs)) for bs in ran) + 2.0)
    fig, axes = plt.subplots(1, panels, figsize=(7.5 * panels, height), squeeze=False, layout="constrained")
    axes = list(axes[0])
    if baselines:
        ax = axes.pop(0)
        # Each case gets one unit of height, shared by the baselines it ran against.
        bars: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in baselines}
        for i, case_baselines in enumerate(ran):
            size = 0.8 / max(1, len(case_baselines))
            for j, b in enumerate(case_baselines):
                ys, widths, heights = bars[b.name]
                ys.append(i + (j - (len(case_baselines) - 1) / 2) * size)
                widths.append(b.speedup)
                heights.append(size)
        for name, (ys, speedups, heights) in bars.items():
            drawn = ax.barh(ys, speedups, height=heights, label=name)
            ax.bar_label(drawn, labels=[f"{s:.2f}x" for s in speedups], fontsize=7, padding=2)
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(range(len(measured)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("speedup of ppt = baseline time / ppt time (log; > 1: ppt faster)")
        ax.margins(x=0.15)
        ax.legend(title="baseline", fontsize=7, title_fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncols=min(2, len(baselines)))
    if with_ceiling:
        ax = axes.pop(0)
        names = [_label(r, show_dtype) for r in with_ceiling]
        for kind, color, text in (("gemm_fraction", "tab:purple", "of the GEMM rate (torch.mm)"),
                                  ("copy_fraction", "tab:green", "of copy bandwidth")):
            ys = [i for i, r in enumerate(with_ceiling) if kind in r.derived]
            if ys:
                values = [100 * with_ceiling[i].derived[kind] for i in ys]
                drawn = ax.barh(ys, values, color=color, label=text)
                ax.bar_label(drawn, labels=[f"{v:.0f}%" for v in values], fontsize=7, padding=2)
        ax.set_yticks(range(len(with_ceiling)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("ppt's achieved rate, % of the machine's ceiling measured in the same run")
        ax.margins(x=0.15)
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"{suite}: {title}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
