"""Issue 22's first sanity gate: does Point-MAE pre-training learn more than its trivial solutions?

Pre-trains ``pointmae-pretrain`` (with the ``--set`` overrides given) through the ``ppt`` CLI in
segments, keeping the weights at every ``--milestones`` step, and reports on the recipe's test clouds:

- **Chamfer-L2 floors** of two solutions that ignore the input: *centre only* (every predicted
  point at the masked patch's centre, i.e. all zeros in patch coordinates) and *the mean patch*
  (one fixed set of ``group_size`` points, fitted by Adam to minimise the Chamfer-L2 over the
  training patches, then scored on the test patches).
- **The model's Chamfer-L2** at step 0 (initial weights, the run's seed) and at each milestone,
  on the same test clouds with the same masks (a fixed generator).
- **Linear-probe accuracy** at each of those steps: the pre-training encoder on all patches (no
  mask), mean- and max-pooled tokens (Point-MAE's SVM-validation features), standardised, then
  an L2-regularised multinomial logistic regression fitted by L-BFGS on synthetic objects of the
  15 classes (``--probe-train`` per class, ``--probe-test`` per class, seeds apart from the
  pre-training data) and scored on the held-out ones.
- **A reconstruction picture** per step: two test objects, their visible patches, the masked
  patches as predicted (placed at their centres) and as they are.

Writes ``OUT/sanity.json`` and ``OUT/sanity.png`` (floors and model Chamfer, probe accuracy) and
``OUT/reconstruction.png``. Resumes: finished segments and snapshots are kept, and a segment cut
short continues from its last checkpoint (every 250 steps).

Tiny check::

    python bench/experiments/pointmae_sanity.py --out runs/pointmae-sanity-tiny --milestones 2 4 \
        --probe-train 4 --probe-test 2 --set model.depth=2 --set model.dim=48 --set model.heads=2 \
        --set data.batch_size=8 --set data.synthetic.train_per_class=4 --set data.synthetic.test_per_class=2

The run of docs/dapt.md: see ``bench/results/pointmae-sanity/run.sh``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ppt.data.objects.synthetic import SCANOBJECTNN_CLASSES, synthesize_object
from ppt.engine.builders import build_model
from ppt.engine.checkpoint import read_meta
from ppt.engine.config import load_recipe
from ppt.engine.tasks import create_task
from ppt.models import load_weights
from ppt.models.point_mae import PointMAEPretraining, chamfer_l2
from ppt.models.point_transformer import group_points

RECIPE = "pointmae-pretrain"


def pretrain(out: Path, milestones: list[int], overrides: list[str]) -> dict[int, Path]:
    """Run the recipe to ``milestones[-1]`` steps in segments ending at each milestone; returns the
    weights kept at each (``OUT/pretrain/step-<N>.safetensors``)."""
    run = out / "pretrain"
    snapshots = {step: run / f"step-{step}.safetensors" for step in milestones}
    # checkpoints every 250 steps, so that a segment cut short resumes from the last of them
    settings = [f"train.steps={milestones[-1]}", f"train.eval_every={milestones[0]}", "train.checkpoint_every=250",
                *overrides]
    last = run / "last.safetensors"
    for step in milestones:
        if snapshots[step].is_file():
            continue
        done = read_meta(last).step if last.is_file() else 0
        command = [sys.executable, "-m", "ppt", "train", RECIPE, "--out", str(run), "--no-progress",
                   "--stop-after", str(step - done)]
        if done:
            command.append("--resume")
        for item in settings:
            command += ["--set", item]
        print(f"pre-training steps {done} -> {step}: {' '.join(command)}", flush=True)
        subprocess.run(command, check=True)
        shutil.copyfile(last, snapshots[step])
    return snapshots


def test_clouds(config) -> torch.Tensor:
    """The recipe's test clouds ``(M, num_points, 3)`` as evaluation reads them."""
    task = create_task(config)
    source = next(iter(config.data.sources.values()))
    dataset = task.dataset(source, source.val_split, train=False)
    return torch.stack([dataset[i].points for i in range(len(dataset))])


def training_patches(config, limit: int = 256) -> torch.Tensor:
    task = create_task(config)
    source = next(iter(config.data.sources.values()))
    dataset = task.dataset(source, source.train_split, train=False)
    clouds = torch.stack([dataset[i].points for i in range(min(limit, len(dataset)))])
    neighborhood, _ = group_points(clouds, config.model.num_groups, config.model.group_size)
    return neighborhood.reshape(-1, config.model.group_size, 3)


def mean_patch(patches: torch.Tensor, iterations: int = 500) -> torch.Tensor:
    """The fixed point set ``(1, K, 3)`` of least Chamfer-L2 to ``patches`` (Adam from a seeded start)."""
    generator = torch.Generator().manual_seed(0)
    points = (0.05 * torch.randn(1, patches.shape[1], 3, generator=generator)).requires_grad_()
    optimizer = torch.optim.Adam([points], lr=0.01)
    for _ in range(iterations):
        loss = chamfer_l2(points.expand(patches.shape[0], -1, -1), patches)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return points.detach()


def pretraining_model(config, weights: Path | None) -> PointMAEPretraining:
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, num_classes=0, in_channels=3)
    if weights is not None:
        report = load_weights(model, weights, format="ppt")
        if report.missing or report.unexpected:
            raise RuntimeError(f"{weights}: does not load one to one: {report}")
    return model.eval()


@torch.no_grad()
def masked_chamfer(model: PointMAEPretraining, clouds: torch.Tensor, batch: int = 32) -> float:
    """Mean Chamfer-L2 over ``clouds`` with masks from a fixed generator (the same for every model)."""
    torch.manual_seed(1234)
    losses = [float(model(clouds[i:i + batch])) * len(clouds[i:i + batch]) for i in range(0, len(clouds), batch)]
    return sum(losses) / len(clouds)


@torch.no_grad()
def encoder_features(model: PointMAEPretraining, clouds: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Point-MAE's validation features: the encoder over every patch, tokens mean- and max-pooled."""
    encoder = model.MAE_encoder
    features = []
    for i in range(0, len(clouds), batch):
        neighborhood, centers = group_points(clouds[i:i + batch], model.num_groups, model.group_size)
        tokens = encoder.norm(encoder.blocks(encoder.encoder(neighborhood), encoder.pos_embed(centers)))
        features.append(torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=-1))
    return torch.cat(features)


def probe_objects(per_class: int, seed: int, num_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for label in range(len(SCANOBJECTNN_CLASSES)):
        for _ in range(per_class):
            clouds.append(torch.from_numpy(synthesize_object(label, rng, num_points=num_points)[0]))
            labels.append(label)
    return torch.stack(clouds), torch.tensor(labels)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 weight_decay: float = 1e-3) -> float:
    """Test accuracy of an L2-regularised multinomial logistic regression on standardised features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = ((train_x - mean) / std).double(), ((test_x - mean) / std).double()
    classes = int(train_y.max()) + 1
    weight = torch.zeros(train_x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + weight_decay * weight.square().sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    with torch.no_grad():
        return float(((test_x @ weight + bias).argmax(1) == test_y).double().mean())


@torch.no_grad()
def reconstruction_panel(axes, model: PointMAEPretraining, cloud: torch.Tensor, title: str) -> None:
    torch.manual_seed(99)
    predicted, _, mask = model.reconstruct(cloud[None])
    neighborhood, centers = group_points(cloud[None], model.num_groups, model.group_size)
    visible = (neighborhood[~mask] + centers[~mask][:, None]).reshape(-1, 3)
    truth = (neighborhood[mask] + centers[mask][:, None]).reshape(-1, 3)
    guess = (predicted + centers[mask][:, None]).reshape(-1, 3)
    for ax, (points, colour, name) in zip(axes, [(truth, "tab:green", "masked, true"),
                                                 (guess, "tab:red", "masked, predicted")]):
        ax.scatter(visible[:, 0], visible[:, 2], visible[:, 1], s=1, c="0.7")
        ax.scatter(points[:, 0], points[:, 2], points[:, 1], s=1, c=colour)
        ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1))
        ax.set_title(f"{title}: {name}", fontsize=7)
        ax.set_axis_off()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--milestones", type=int, nargs="+", default=[1000, 3000],
                        help="pre-training steps at which the weights are kept and scored (ascending)")
    parser.add_argument("--probe-train", type=int, default=32, help="linear-probe training objects per class")
    parser.add_argument("--probe-test", type=int, default=16, help="linear-probe test objects per class")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for pre-training and the models built here")
    args = parser.parse_args(argv)
    if args.milestones != sorted(set(args.milestones)) or args.milestones[0] < 1:
        parser.error("--milestones must be ascending positive step counts")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    snapshots = pretrain(args.out, args.milestones, args.set)
    config = load_recipe(RECIPE, args.set)
    clouds = test_clouds(config)
    patches = training_patches(config)
    test_neighborhood, _ = group_points(clouds, config.model.num_groups, config.model.group_size)
    test_patches = test_neighborhood.reshape(-1, config.model.group_size, 3)
    floors = {"centre only": float(chamfer_l2(torch.zeros_like(test_patches), test_patches)),
              "mean patch": float(chamfer_l2(mean_patch(patches).expand(test_patches.shape[0], -1, -1), test_patches))}
    probe_train = probe_objects(args.probe_train, 10_000, config.data.num_points)
    probe_test = probe_objects(args.probe_test, 20_000, config.data.num_points)

    steps = [0, *args.milestones]
    rows, figure = [], plt.figure(figsize=(4 * len(steps), 4))
    for column, step in enumerate(steps):
        model = pretraining_model(config, snapshots.get(step))
        accuracy = linear_probe(encoder_features(model, probe_train[0]), probe_train[1],
                                encoder_features(model, probe_test[0]), probe_test[1])
        rows.append({"step": step, "chamfer": masked_chamfer(model, clouds), "probe_accuracy": accuracy})
        print(f"step {step}: chamfer {rows[-1]['chamfer']:.5f}, linear probe {accuracy:.3f}", flush=True)
        axes = [figure.add_subplot(2, len(steps), column + 1 + row * len(steps), projection="3d") for row in range(2)]
        reconstruction_panel(axes, model, clouds[0], f"step {step}")
    figure.tight_layout()
    figure.savefig(args.out / "reconstruction.png", dpi=120)
    plt.close(figure)

    result = {"recipe": RECIPE, "overrides": args.set, "test_clouds": len(clouds), "floors": floors, "steps": rows,
              "probe": {"train_per_class": args.probe_train, "test_per_class": args.probe_test,
                        "classes": len(SCANOBJECTNN_CLASSES)}}
    (args.out / "sanity.json").write_text(json.dumps(result, indent=1) + "\n")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(steps, [r["chamfer"] for r in rows], "o-", label="Point-MAE")
    for (name, value), style in zip(floors.items(), ("--", ":")):
        left.axhline(value, color="0.4", linestyle=style, label=name)
    left.set(xlabel="pre-training step", ylabel="test Chamfer-L2 (masked patches)")
    left.legend(fontsize=8)
    right.plot(steps, [r["probe_accuracy"] for r in rows], "o-")
    right.axhline(1 / len(SCANOBJECTNN_CLASSES), color="0.4", linestyle=":", label="chance")
    right.set(xlabel="pre-training step", ylabel="linear-probe accuracy", ylim=(0, 1))
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out / "sanity.png", dpi=120)
    print(f"wrote {args.out / 'sanity.json'}, {args.out / 'sanity.png'}, {args.out / 'reconstruction.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
