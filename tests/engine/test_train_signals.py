"""SIGINT / SIGTERM during ``ppt train``, through the real command in a subprocess: the first signal
finishes the step, writes ``last`` (enough for --resume to continue exactly) and ends with one line
saying how to continue; a second one ends the process at once; under torchrun every process stops
after the same step even when only one of them got the signal."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ppt.engine import load_recipe, read_meta, read_train_state, train

ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1"}
RESUME_LINE = re.compile(r"ppt train: stopped by (SIG\w+) at step (\d+) of (\d+); saved (\S+); continue with: (.+)")


def _sets(overrides):
    return [word for override in overrides for word in ("--set", override)]


def _start(command):
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENVIRONMENT)


def _log_steps(out: Path) -> list[dict]:
    path = out / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for_steps(out: Path, count: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len([r for r in _log_steps(out) if "loss" in r]) < count:
        if process.poll() is not None:
            pytest.fail(f"training ended before {count} steps: {process.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {count} steps within {timeout} s")
        time.sleep(0.1)


def _ppt(words: list[str]) -> list[str]:
    """A printed ``ppt ...`` command, run with this interpreter."""
    assert words[0] == "ppt", words
    return [sys.executable, "-m", "ppt", *words[1:]]


def test_sigint_finishes_the_step_saves_and_the_printed_command_resumes_exactly(tmp_path, scene_overrides):
    out = tmp_path / "run"
    overrides = [*scene_overrides, "train.steps=400"]
    process = _start([sys.executable, "-m", "ppt", "train", "spunet-scannet", "--out", str(out), "--no-progress",
                      *_sets(overrides)])
    _wait_for_steps(out, 3, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "ppt train: SIGINT: finishing this step, then saving a checkpoint" in stderr
    match = RESUME_LINE.fullmatch(stderr.strip().splitlines()[-1])
    assert match, stderr[-3000:]
    name, stopped, steps, saved, command = match.groups()
    stopped = int(stopped)
    assert (name, steps, saved) == ("SIGINT", "400", str(out / "last.safetensors"))
    assert 3 <= stopped < 400
    # the checkpoint holds the finished step, and the log ends with it
    assert read_meta(out / "last.safetensors").step == stopped
    state = read_train_state(out / "last.safetensors")
    assert state["step"] == stopped and len(state["rng"]) == 1
    assert max(r["step"] for r in _log_steps(out)) == stopped

    # the printed command continues the run as if it had not been interrupted
    words = shlex.split(command)
    assert words[:5] == ["ppt", "train", "spunet-scannet", "--out", str(out)] and "--resume" in words
    resumed = subprocess.run([*_ppt(words), "--stop-after", "2"], capture_output=True, text=True, timeout=300,
                             env=ENVIRONMENT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"done: step {stopped + 2} of 400" in resumed.stdout

    reference = train(load_recipe("spunet-scannet", overrides), tmp_path / "reference", stop_after=stopped + 2,
                      progress=False)
    losses = {r["step"]: r["loss"] for r in _log_steps(out) if "loss" in r}
    assert [losses[stopped + 1], losses[stopped + 2]] == pytest.approx(reference.losses[-2:], rel=1e-5)
    continued, uninterrupted = load_file(out / "last.safetensors"), load_file(tmp_path / "reference" / "last.safetensors")
    for key in uninterrupted:
        torch.testing.assert_close(continued[key], uninterrupted[key], msg=key)


def test_a_second_signal_stops_at_once_without_saving(tmp_path, scene_overrides):
    out = tmp_path / "run"
    process = _start([sys.executable, "-m", "ppt", "train", "spunet-scannet", "--out", str(out), "--no-progress",
                      *_sets([*scene_overrides, "train.steps=400", "train.checkpoint_every=0"])])
    _wait_for_steps(out, 2, process)
    # both signals pending when the process resumes: the first asks for a clean stop, the second ends it there
    process.send_signal(signal.SIGSTOP)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == -signal.SIGTERM, stderr[-3000:]
    assert "ppt train: second signal (SIGTERM): stopping now, without saving" in stderr
    assert not (out / "last.safetensors").exists() and not (out / "last.state.pt").exists()


def _worker_pids(launcher: int) -> dict[int, int]:
    """rank -> pid of the processes torchrun started."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    ranks = {}
    for pid in map(int, children):
        environment = dict(item.split("=", 1) for item in
                           Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0") if "=" in item)
        if "RANK" in environment:
            ranks[int(environment["RANK"])] = pid
    return ranks


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the torchrun workers through /proc")
def test_under_torchrun_a_signal_to_one_process_stops_both_after_the_same_step(tmp_path, scene_overrides):
    out = tmp_path / "two"
    overrides = [*scene_overrides, "data.synthetic.scenes=9", "data.batch_size=1", "train.steps=400"]
    launcher = _start([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                       "ppt", "train", "spunet-scannet", "--out", str(out), "--no-progress", *_sets(overrides)])
    _wait_for_steps(out, 2, launcher)
    ranks = _worker_pids(launcher.pid)
    assert sorted(ranks) == [0, 1]
    os.kill(ranks[1], signal.SIGTERM)  # rank 1 only: rank 0 must learn of it and stop with it
    _, stderr = launcher.communicate(timeout=180)

    match = next((RESUME_LINE.fullmatch(line) for line in stderr.splitlines() if RESUME_LINE.fullmatch(line)), None)
    assert match, stderr[-3000:]
    name, stopped, _, saved, command = match.groups()
    stopped = int(stopped)
    assert name == "SIGTERM" and saved == str(out / "last.safetensors")
    assert command.startswith("torchrun --standalone --nproc_per_node=2 -m ppt train spunet-scannet")
    assert "Traceback" not in stderr.split("ppt train: stopped by")[0]  # the workers stopped cleanly
    state = read_train_state(out / "last.safetensors")
    assert state["step"] == stopped == read_meta(out / "last.safetensors").step
    assert len(state["rng"]) == 2  # both processes took part in the checkpoint

    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              *shlex.split(command)[3:], "--stop-after", "1"],
                             capture_output=True, text=True, timeout=300, env=ENVIRONMENT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"done: step {stopped + 1} of 400" in resumed.stdout


def test_an_interrupted_fewshot_names_the_command_that_continues_it(monkeypatch, capsys, run_ppt):
    """The CLI's side of ``ppt fewshot`` (the trainer's side is the same as ``ppt train``'s, above)."""
    import ppt.engine.fewshot as fewshot
    from ppt.engine import TrainingInterrupted

    def interrupted_at_fold_3(*args, **kwargs):
        raise TrainingInterrupted(signal.SIGTERM, 7, 240, Path("runs/few/fold3/last.safetensors"))

    monkeypatch.setattr(fewshot, "run_fewshot", interrupted_at_fold_3)
    assert run_ppt(["fewshot", "pointmae-fewshot", "--folds", "4", "--out", "runs/few"], sets=["train.steps=240"]) == 143
    assert capsys.readouterr().err == ("ppt fewshot: stopped by SIGTERM at step 7 of 240; saved "
                                       "runs/few/fold3/last.safetensors; continue with: ppt fewshot pointmae-fewshot "
                                       "--out runs/few --set train.steps=240 --folds 4\n")
