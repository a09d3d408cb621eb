"""Two processes under torchrun (gloo) train the same run as one process accumulating the same
micro-batches: same losses, same weights, evaluation metrics summed over both processes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ppt.engine import load_recipe, train


def test_two_process_gloo_run_equals_one_process(tmp_path, scene_overrides):
    # 9 scenes: two validation scenes, one per process
    common = [*scene_overrides, "data.synthetic.scenes=9", "train.steps=2", "data.batch_size=1"]
    single = train(load_recipe("spunet-scannet", [*common, "train.accumulate=2"]), tmp_path / "one", progress=False)

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ppt",
               "train", "spunet-scannet", "--out", str(tmp_path / "two"), "--no-progress",
               *[arg for override in common for arg in ("--set", override)]]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "2 process(es)" in completed.stdout

    records = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses == pytest.approx(single.losses, rel=1e-5)
    one, two = load_file(tmp_path / "one" / "last.safetensors"), load_file(tmp_path / "two" / "last.safetensors")
    # trained weights agree; BatchNorm running statistics do not (DDP keeps rank 0's, accumulation sees both halves)
    for key in one:
        if "running_" not in key and "num_batches" not in key:
            torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)
    evaluation = next(r["eval"] for r in records if "eval" in r)
    assert evaluation["scannet"]["count"] == single.metrics["scannet"]["count"]  # both halves of the val set counted
