"""The UniPre3D scene-step case of ``models``, smoke-sized: the batched and the per-image steps agree
and the check catches a difference."""

import pytest
import torch

from ppt.bench.harness import measure
from ppt.bench.unipre3d import SceneWorkload, _check_same_step, scene_batch, scene_train_step
from ppt.models import UniPre3DScene

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
TINY = SceneWorkload(scenes=2, views=2, size=(16, 12), frames=6, density=0.1, channels=(8,) * 8)


def test_scene_step_renders_every_image_in_one_call_as_the_loop_does():
    batch = scene_batch(TINY, CPU)
    assert batch.images.shape == (2, 2, 12, 16, 3) and batch.points.batch_size == 2
    model = UniPre3DScene(channels=TINY.channels, image_size=TINY.size).train()
    batched, looped = scene_train_step(model, batch, batched=True), scene_train_step(model, batch, batched=False)
    _check_same_step(batched, looped)
    assert float(batched[2].abs().sum()) > 0
    renders, loss, grad = looped
    with pytest.raises(AssertionError):
        _check_same_step(batched, (renders, loss, grad * 1.01 + 1e-3))
    from ppt.bench.harness import Baseline, Case

    case = Case(name="scene step", run=lambda: scene_train_step(model, batch, batched=True),
                baselines=[Baseline("loop", lambda: scene_train_step(model, batch, batched=False),
                                    check=_check_same_step)], warmup=0, repeats=1)
    assert measure(case, "models", CPU).status == "ok"
