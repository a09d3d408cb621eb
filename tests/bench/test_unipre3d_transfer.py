"""bench/experiments/unipre3d_transfer.py: the shot draws, the paired test and the summary from logs."""

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "experiments" / "unipre3d_transfer.py"


@pytest.fixture(scope="module")
def transfer():
    spec = importlib.util.spec_from_file_location("unipre3d_transfer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks the module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_shots_are_per_class_seeded_and_nested(transfer):
    labels = np.repeat(np.arange(3), 6)
    ten, five = transfer.shot_indices(labels, 4, seed=1), transfer.shot_indices(labels, 2, seed=1)
    assert np.bincount(labels[ten]).tolist() == [4, 4, 4] and np.bincount(labels[five]).tolist() == [2, 2, 2]
    assert set(five) <= set(ten)  # the smaller draw is part of the larger one
    assert not np.array_equal(five, transfer.shot_indices(labels, 2, seed=2))
    np.testing.assert_array_equal(five, transfer.shot_indices(labels, 2, seed=1))
    with pytest.raises(ValueError, match="raise --pool-per-class"):
        transfer.shot_indices(labels, 7, seed=0)


def test_paired_test_matches_the_t_statistic_by_hand(transfer):
    a, b = [61.0, 58.0, 66.0, 70.0], [60.0, 58.0, 64.0, 67.0]
    differences = [1.0, 0.0, 2.0, 3.0]
    result = transfer.paired_test(a, b)
    t = statistics.mean(differences) / (statistics.stdev(differences) / math.sqrt(4))
    assert result["t"] == pytest.approx(t) and result["df"] == 3 and 0 < result["p"] < 0.2
    assert result["mean"] == 1.5 and result["std"] == pytest.approx(statistics.pstdev(differences))
    assert transfer.paired_test([1.0, 2.0], [0.0, 1.0])["t"] is None  # identical differences: no test


def _log(path, records):
    path.mkdir(parents=True, exist_ok=True)
    (path / "log.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))


def test_summary_recomputes_tables_and_figures_from_the_logs(transfer, tmp_path):
    seeds, shots = [0, 1], [5, 10]
    settings = {"arms": ["none", "conv"], "seeds": seeds, "shots": shots, "finetune_steps": 3, "pretrain_steps": 4,
                "pretrain_set": ["unipre3d.min_log_scale=-5"], "set": ["model.depth=4"], "object_frame": "unit-y-up"}
    probe = {arm: {"pool": {"0": 50.0 + i, "1": 52.0 + i},
                   "shots": {"5": {"0": 30.0 + i, "1": 34.0 + 2 * i}, "10": {"0": 40.0 + i, "1": 41.0 + i}}}
             for i, arm in enumerate(["scratch", "none", "conv"])}
    novel = {arm: {"objects": ["a/0", "b/0"], "psnr": [24.0, 26.0], "floor": [23.0, 23.5], "views": 24,
                   "grid_views": [0, 6, 12, 18]} for arm in settings["arms"]}
    (tmp_path / "transfer.json").write_text(json.dumps({"settings": settings, "novel_views": novel, "probe": probe}))
    for arm in settings["arms"]:
        _log(tmp_path / f"pretrain-{arm}", [{"step": 4, "loss": 0.1},
                                            {"step": 4, "eval": {"shapenet": {"loss": 0.1, "PSNR": 25.0,
                                                                              "PSNR/novel": 24.5, "count": 2}}}])
    for i, arm in enumerate(["scratch", "none", "conv"]):
        for k in shots:
            for seed in seeds:
                _log(tmp_path / "finetune" / f"{arm}-{k}shot-seed{seed}",
                     [{"step": 3, "eval": {"scanobjectnn": {"allAcc": 0.2 + 0.1 * i + 0.01 * seed + 0.001 * k}}}])
    tiles = tmp_path / "novel-views"
    tiles.mkdir()
    for name in ("truth", "none", "conv"):
        Image.fromarray(np.zeros((2 * 8, 4 * 8, 3), dtype=np.uint8)).save(tiles / f"{name}.png")

    transfer.write_summary(tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert "| none | 2 | 23 novel | 25.00 ± 1.00 (n=2) | 23.25 ± 0.25 (n=2) | 1.75 ± 0.75 (n=2) | 24.50 (step 4) |" in table
    assert "| conv | 5-shot | 32.00 | 38.00 | 35.00 ± 3.00 (n=2) |" in table  # probe
    assert "| none | 10-shot | 31.00 | 32.00 | 31.50 ± 0.50 (n=2) |" in table  # fine-tuning
    assert "| finetune 5-shot: conv - scratch | 20.00 ± 0.00 (n=2) | - | 1 | - |" in table
    assert "| probe 5-shot: conv - scratch | 3.00 ± 1.00 (n=2) | 3.00 | 1 | 0.205 |" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tests"]["probe 5-shot: none - scratch"]["t"] == pytest.approx(3.0)
    for figure in ("transfer.png", "render-grid.png"):
        with Image.open(tmp_path / figure) as image:
            assert image.format == "PNG"
    # the logs alone carry the summary elsewhere
    transfer.copy_logs(tmp_path, tmp_path / "copy")
    transfer.write_summary(tmp_path / "copy")
    assert (tmp_path / "copy" / "results.md").read_text() == table
