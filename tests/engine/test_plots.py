import json

import numpy as np
import pytest

from ppt.engine.plots import _moving_average, plot_training_log, read_log
from ppt.cli import main


def _write_log(folder, steps=12):
    lines = [{"step": s, "epoch": 0, "loss": 3.0 / s, "lr": 0.01, "time": float(s)} for s in range(1, steps + 1)]
    lines.insert(6, {"step": 6, "eval": {"scannet": {"mIoU": 0.1, "allAcc": 0.5}}})
    lines.append({"step": steps, "eval": {"scannet": {"mIoU": 0.2, "allAcc": 0.6}}})
    (folder / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")


def test_read_log_splits_steps_and_evaluations(tmp_path):
    _write_log(tmp_path)
    steps, evals = read_log(tmp_path)
    assert [record["step"] for record in steps] == list(range(1, 13))
    assert [record["eval"]["scannet"]["mIoU"] for record in evals] == [0.1, 0.2]


def test_moving_average_is_a_trailing_mean():
    values = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(_moving_average(values, 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(_moving_average(values, 1), values)


def test_plot_log_cli_writes_png(tmp_path, capsys):
    _write_log(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["plot-log", str(tmp_path), "--metric", "allAcc"])
    assert exit_info.value.code == 0
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in capsys.readouterr().out


def test_bad_logs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no training log"):
        plot_training_log(tmp_path, tmp_path / "x.png")
    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": 1.0, "lr": 0.1}\nnot json\n')
    with pytest.raises(ValueError, match=r"log.jsonl:2: not a JSON line"):
        read_log(tmp_path)
    (tmp_path / "log.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no training steps or evaluations"):
        read_log(tmp_path)


def test_plot_log_defaults_to_the_runs_own_metric(tmp_path, ppt_command):
    """A UniPre3D run logs PSNR and loss, a Point-MAE pre-training run chamfer (its recipe keeps the
    default best_metric mIoU): plot-log draws what the run has, not an empty mIoU panel."""
    lines = [{"step": s, "epoch": 0, "loss": 1.0 / s, "lr": 0.01, "time": float(s)} for s in (1, 2, 3, 4)]
    lines += [{"step": s, "eval": {"shapenet": {"loss": 0.5 / s, "PSNR": 20.0 + s, "count": 8}}} for s in (2, 4)]
    unipre3d, pretrain = tmp_path / "unipre3d", tmp_path / "pretrain"
    for folder, best in ((unipre3d, "PSNR"), (pretrain, "mIoU")):
        folder.mkdir()
        (folder / "config.yaml").write_text(f"train:\n  best_metric: {best}\n")
    (unipre3d / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    lines = [line if "eval" not in line else {"step": line["step"], "eval": {"shapenet55": {"chamfer": 0.1, "count": 8}}}
             for line in lines]
    (pretrain / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    for folder, expected in ((unipre3d, "PSNR"), (pretrain, "chamfer")):
        run = ppt_command("plot-log", folder)
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"wrote {folder}/curves.png (loss, learning rate and validation {expected})\n"
        assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    run = ppt_command("plot-log", unipre3d / "log.jsonl", "--metric", "loss")
    assert run.stdout == f"wrote {unipre3d}/log.png (loss, learning rate and validation loss)\n"


def test_moving_average_leaves_out_non_finite_losses():
    values = np.array([1.0, np.nan, 3.0, 5.0])
    np.testing.assert_allclose(_moving_average(values, 2), [1.0, 1.0, 3.0, 4.0])


def _inside(box, outer, tolerance=1.0):
    return (box.x0 >= outer.x0 - tolerance and box.y0 >= outer.y0 - tolerance and box.x1 <= outer.x1 + tolerance
            and box.y1 <= outer.y1 + tolerance)


@pytest.mark.parametrize("extent", [(12.0, 3.0), (3.0, 12.0), (5.0, 4.0)])
@pytest.mark.parametrize("labelled", [False, True])
def test_predict_picture_fits_titles_and_a_25_class_legend(extent, labelled):
    import matplotlib.pyplot as plt

    from ppt.data import STRUCTURED3D_CLASSES
    from ppt.engine.inference import palette, top_down_figure

    rng = np.random.default_rng(0)
    coord = rng.uniform(0, 1, (5000, 3)) * np.array([*extent, 2.5])
    prediction = (coord[:, 0] * 7 + coord[:, 1] * 3).astype(np.int64) % 25
    truth = (prediction + 1) % 25 if labelled else None
    figure = top_down_figure(coord, prediction, truth, list(STRUCTURED3D_CLASSES), palette(25))
    try:
        renderer = figure.canvas.get_renderer()
        figure.canvas.draw()
        (legend,) = figure.legends
        assert len(legend.get_texts()) == 25
        legend_box = legend.get_window_extent(renderer)
        assert _inside(legend_box, figure.bbox)  # the legend stays on the canvas
        for axis in figure.axes:
            title = axis.title.get_window_extent(renderer)
            assert axis.get_title() in ("prediction", "ground truth") and _inside(title, figure.bbox)
            assert not legend_box.overlaps(axis.get_window_extent(renderer)) and not legend_box.overlaps(title)
    finally:
        plt.close(figure)


def test_plot_log_legend_leaves_the_final_values_clear():
    import matplotlib.pyplot as plt

    from ppt.engine.plots import training_log_figure

    steps = [{"step": s, "loss": 1.0 / s, "lr": 0.01} for s in range(1, 9)]
    # three sources ending low and close together: where a legend inside the axes would sit
    evals = [{"step": s, "eval": {name: {"mIoU": 0.05 + 0.01 * i + 0.001 * s} for i, name in
                                  enumerate(("s3dis", "scannet", "structured3d"))}} for s in (2, 4, 6, 8)]
    figure = training_log_figure(steps, evals, "mIoU")
    try:
        renderer = figure.canvas.get_renderer()
        figure.canvas.draw()
        metric_axes = figure.axes[1]
        legend = metric_axes.get_legend().get_window_extent(renderer)
        labels = [text for text in metric_axes.texts if text.get_text().startswith("0.")]
        assert len(labels) == 3
        assert _inside(legend, figure.bbox)
        for label in labels:
            box = label.get_window_extent(renderer)
            assert not legend.overlaps(box) and _inside(box, figure.bbox)
    finally:
        plt.close(figure)
