"""``ppt train``, ``ppt fewshot``, ``ppt eval``, ``ppt predict``, ``ppt plot-log`` and ``ppt export-backbone``."""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import signal
import sys
from collections.abc import Callable

__all__ = ["add_engine_commands"]


def _user_errors(command: str, errors: Callable[[], tuple[type[Exception], ...]]):
    """Report bad input (config, paths, checkpoints) as one line and exit status 2, not a traceback.
    ``errors`` returns the exception types (imported lazily, so ``ppt --help`` stays light)."""
    def wrap(handler):
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            try:
                return handler(args)
            except errors() as error:
                print(f"ppt {command}: {error}", file=sys.stderr)
                return 2
        return run
    return wrap


def _train_errors() -> tuple[type[Exception], ...]:
    from ppt.engine.batches import DataError
    from ppt.engine.checkpoint import CheckpointError, OutputError
    from ppt.engine.config import ConfigError
    from ppt.engine.trainer import RunFolderError

    return ConfigError, CheckpointError, RunFolderError, OutputError, DataError, FileNotFoundError


def _interrupts(command: str, continue_with: Callable[[argparse.Namespace], str]):
    """A run stopped by SIGINT/SIGTERM (checkpointed by the trainer) ends with one line saying how to
    continue, printed by the main process, and the shell's status for that signal (128 + its number);
    Ctrl-C before training started ends with one line too."""
    def wrap(handler):
        @functools.wraps(handler)
        def run(args: argparse.Namespace) -> int:
            from ppt.engine.trainer import TrainingInterrupted

            main_process = os.environ.get("RANK", "0") == "0"
            try:
                return handler(args)
            except TrainingInterrupted as interrupted:
                if main_process:
                    print(f"ppt {command}: {interrupted}; continue with: {continue_with(args)}", file=sys.stderr,
                          flush=True)
                return 128 + interrupted.signal
            except KeyboardInterrupt:
                if main_process:
                    print(f"ppt {command}: interrupted before training started; nothing saved", file=sys.stderr)
                return 128 + signal.SIGINT
        return run
    return wrap


def _launcher() -> list[str]:
    """How this process was started: ``ppt``, or the torchrun launch of one node."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ["ppt"]
    if processes == int(os.environ["WORLD_SIZE"]):
        return ["torchrun", "--standalone", f"--nproc_per_node={processes}", "-m", "ppt"]
    return ["torchrun", "<the same launch options>", "-m", "ppt"]


def _rerun_command(args: argparse.Namespace, command: str, *options: str) -> str:
    """The command line of ``command`` on the recipe, output and overrides of ``args``, with ``options``
    (how an interrupted ``ppt train`` or ``ppt fewshot`` continues)."""
    words = [*_launcher(), command, args.recipe, "--out", _train_out(args),
             *[word for override in args.set for word in ("--set", override)], *options]
    return shlex.join(words + (["--no-progress"] if args.no_progress else []))


def _train_out(args: argparse.Namespace) -> str:
    return args.out or f"runs/{args.recipe.rsplit('/', 1)[-1].removesuffix('.yaml')}"


def _positive_int(text: str) -> int:
    """argparse type of a count that must be >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


# Training reports errors of its inputs in one line (config, output folder, checkpoints, dataset files):
# any other failure inside the loop keeps its traceback.
@_interrupts("train", lambda args: _rerun_command(args, "train", "--resume"))
@_user_errors("train", _train_errors)
def _train(args: argparse.Namespace) -> int:
    from ppt.engine.config import list_recipes, load_recipe, recipe_path

    if args.list:
        from omegaconf import OmegaConf

        for name in list_recipes():
            description = OmegaConf.load(recipe_path(name)).get("description", "")
            print(f"{name:<34} {description}")
        return 0
    if not args.recipe:
        print("ppt train: give a RECIPE (see ppt train --list)", file=sys.stderr)
        return 2
    config = load_recipe(args.recipe, args.set)
    from ppt.engine.trainer import train

    name = args.recipe.rsplit("/", 1)[-1].removesuffix(".yaml")
    train(config, _train_out(args), recipe=name, resume=args.resume, stop_after=args.stop_after,
          progress=not args.no_progress)
    return 0


# fewshot reads finished folds back and resumes the interrupted one
@_interrupts("fewshot", lambda args: _rerun_command(args, "fewshot", "--folds", str(args.folds)))
@_user_errors("fewshot", _train_errors)
def _fewshot(args: argparse.Namespace) -> int:
    from ppt.engine.fewshot import run_fewshot

    name = args.recipe.rsplit("/", 1)[-1].removesuffix(".yaml")
    result = run_fewshot(args.recipe, _train_out(args), folds=range(args.folds), overrides=args.set,
                         progress=not args.no_progress)
    print(f"{name}: {result.summary()}; {result.out / 'fewshot.json'}")
    return 0


@_user_errors("eval", lambda: (ValueError, FileNotFoundError))
def _eval(args: argparse.Namespace) -> int:
    from ppt.engine.inference import evaluate_checkpoint, format_table, load_checkpoint
    from ppt.engine.metrics import PartIoU
    from ppt.engine.part_inference import format_part_table
    from ppt.engine.tasks.segmentation import SegmentationTask

    loaded = load_checkpoint(args.checkpoint, data_root=args.data, device=args.device)
    results = evaluate_checkpoint(loaded, progress=not args.no_progress)
    recipe = loaded.meta.provenance.get("recipe", "")
    print(f"{args.checkpoint}: {recipe} at step {loaded.meta.step} (ppt {loaded.meta.provenance.get('ppt')}, "
          f"torch {loaded.meta.provenance.get('torch')}, {loaded.meta.provenance.get('time')})")
    for name, confusion in results.items():
        split = loaded.config.data.sources[name].val_split
        print(f"\n{name} ({split} split)")
        if isinstance(confusion, dict):  # pre-training: its validation metrics
            print("   ".join(f"{metric} {value:.4f}" if metric != "count" else f"({value:.0f} samples)"
                             for metric, value in confusion.items()))
            continue
        if isinstance(confusion, PartIoU):
            print(format_part_table(confusion))
            continue
        print(format_table(confusion, loaded.task.class_names[name], isinstance(loaded.task, SegmentationTask),
                           loaded.task.class_groups[name]))
    return 0


@_user_errors("predict", lambda: (ValueError, FileNotFoundError))
def _predict(args: argparse.Namespace) -> int:
    from ppt.engine.inference import load_checkpoint, predict_file

    loaded = load_checkpoint(args.checkpoint, device=args.device)
    for scene in args.scenes:
        result = predict_file(loaded, scene, args.out, condition=args.condition, category=args.category)
        if "category" in result:  # part segmentation
            score = f", IoU against its labels {result['IoU']:.4f}" if "IoU" in result else ""
            labelled_as = f"{result['category']} parts"
        else:
            score = f", mIoU against its labels {result['mIoU']:.4f}" if "mIoU" in result else ""
            labelled_as = result["condition"]
        print(f"{scene}: {result['points']} points as {labelled_as}{score} -> {', '.join(result['files'])}"
              + (f" ({result['note']})" if result["note"] else ""))
    return 0


def _plot_log(args: argparse.Namespace) -> int:
    from ppt.engine.plots import default_metric, plot_training_log, read_log

    run = args.run.rstrip("/")
    out = args.out or (f"{run}/curves.png" if not run.endswith(".jsonl") else run.removesuffix(".jsonl") + ".png")
    metric = args.metric or default_metric(args.run, read_log(args.run)[1])
    print(f"wrote {plot_training_log(args.run, out, metric=metric, title=args.title)} (loss, learning rate and "
          f"validation {metric})")
    return 0


@_user_errors("export-backbone", lambda: (ValueError, FileNotFoundError))
def _export_backbone(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ppt.engine.checkpoint import OutputError, writable_folder
    from ppt.engine.tasks.unipre3d import export_backbone

    if Path(args.out).is_dir():
        raise OutputError(f"--out: {args.out} is a folder; give the .safetensors file to write")
    writable_folder(Path(args.out).parent, "--out")  # before the checkpoint is read
    info = export_backbone(args.checkpoint, args.out)
    print(f"{args.out}: {info['tensors']} tensors, {info['parameters']:,} parameters of the {info['model']} backbone "
          f"at step {info['step']}{' (weight average)' if info['ema'] else ''}; fine-tune with --set "
          f"model.weights={args.out}")
    return 0


def add_engine_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``train``, ``fewshot``, ``eval``, ``predict``, ``plot-log`` and ``export-backbone`` on the ``ppt``
    sub-parsers."""
    train = commands.add_parser(
        "train", help="train a recipe (ppt train --list shows them)",
        description="Train a recipe: a YAML file shipped with ppt (by name) or a path to one. Recipes without "
                    "data.root train on synthetic data written to the cache on first use.")
    train.add_argument("recipe", nargs="?", help="recipe name or .yaml path")
    train.add_argument("--list", action="store_true", help="list the shipped recipes")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value by dotted key (repeatable), e.g. --set train.steps=100 "
                            "--set data.root=/data/scannet")
    train.add_argument("--out", help="output folder (default runs/RECIPE)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint (Ctrl-C or SIGTERM stops a run after "
                            "its current step with one written; a second signal stops at once)")
    train.add_argument("--stop-after", type=_positive_int, metavar="STEPS",
                       help="end this session after STEPS steps (checkpointed; continue with --resume)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    fewshot = commands.add_parser(
        "fewshot", help="train a few-shot recipe on every fold and report mean ± std accuracy",
        description="Train RECIPE (a recipe with one modelnet40_fewshot source, e.g. pointmae-fewshot) once per fold "
                    "{way}way_{shot}shot/{fold}.pkl into OUT/fold{k}/ and report the mean ± standard deviation of "
                    "the final test accuracy; writes OUT/fewshot.json. Finished folds are read back, interrupted "
                    "ones resumed.")
    fewshot.add_argument("recipe", help="recipe name or .yaml path")
    fewshot.add_argument("--folds", type=_positive_int, default=10, help="folds 0 .. N-1 (default 10, as Point-BERT's)")
    fewshot.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value (repeatable), e.g. --set data.sources.modelnet40_fewshot.way=10")
    fewshot.add_argument("--out", help="output folder (default runs/RECIPE)")
    fewshot.add_argument("--no-progress", action="store_true", help="no progress bar")
    fewshot.set_defaults(handler=_fewshot)

    evaluate = commands.add_parser(
        "eval", help="evaluate a checkpoint on its validation data (per-class table)",
        description="Evaluate a training checkpoint on its recipe's validation split: whole scenes (votes over "
                    "test-mode grid fragments) for segmentation, every test object for classification, and "
                    "for pre-training checkpoints the metrics training logs (Point-MAE: Chamfer-L2 of the masked "
                    "patches; UniPre3D: loss, PSNR of every view and of the novel views).")
    evaluate.add_argument("checkpoint", help="a .safetensors checkpoint written by ppt train")
    evaluate.add_argument("--data", help="dataset root to evaluate on (default: the recipe's)")
    evaluate.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default auto)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=_eval)

    predict = commands.add_parser(
        "predict", help="label the points of scenes (.npy scene folders or .ply files), LiDAR sweeps or objects "
                        "(part segmentation)",
        description="Predict a class for every point; writes NAME.labels.npy, NAME.ply (coloured by class) and "
                    "NAME.png (top-down, beside the ground truth when the scene is labelled) into --out. An "
                    "outdoor checkpoint labels raw sweeps of its datasets (SemanticKITTI velodyne .bin, nuScenes "
                    "lidar .bin, Waymo frame folders) at every point, and SemanticKITTI predictions are also written "
                    "as NAME.label (the benchmark's uint32 format). A part-segmentation checkpoint labels object files (ShapeNetPart .txt or .ply) with the parts of "
                    "their --category.")
    predict.add_argument("checkpoint", help="a .safetensors checkpoint written by ppt train")
    predict.add_argument("scenes", nargs="+", metavar="SCENE",
                         help="scene folders (coord.npy, color.npy, ...) or .ply files; for outdoor checkpoints "
                              "SemanticKITTI / nuScenes .bin sweeps or Waymo frame folders (coord.npy, strength.npy); "
                              "for part segmentation ShapeNetPart .txt or .ply objects")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--condition", "--dataset", metavar="NAME",
                         help="the dataset whose classes (and prompt) to predict with, for a checkpoint trained on "
                              "several (ppt-joint): a source of its recipe or its dataset, e.g. scannet or ScanNet "
                              "(default: the one the scene's layout matches)")
    predict.add_argument("--category", metavar="NAME",
                         help="part-segmentation checkpoints: the object's ShapeNetPart category (Chair, Airplane, "
                              "...; default: from the synset folder of a ShapeNetPart .txt file)")
    predict.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default auto)")
    predict.set_defaults(handler=_predict)

    plot = commands.add_parser(
        "plot-log", help="plot a run's training curves (loss, lr, validation metric)",
        description="Draw a run's loss, learning rate and validation metric per dataset from its log.jsonl.")
    plot.add_argument("run", help="a run folder of ppt train (or its log.jsonl)")
    plot.add_argument("--out", help="PNG path (default RUN/curves.png)")
    plot.add_argument("--metric", help="validation metric to draw (mIoU, allAcc, PSNR ...; default: the run's "
                                       "train.best_metric, else the first metric its evaluations logged)")
    plot.add_argument("--title", help="figure title")
    plot.set_defaults(handler=_user_errors("plot-log", lambda: (ValueError, FileNotFoundError))(_plot_log))

    export = commands.add_parser(
        "export-backbone", help="write the backbone weights of a pre-training checkpoint for fine-tuning",
        description="Write the backbone of a UniPre3D pre-training checkpoint (its weight average when the run kept "
                    "one) as a safetensors file in the backbone's own names; fine-tuning recipes load it with "
                    "--set model.weights=FILE.")
    export.add_argument("checkpoint", help="a .safetensors checkpoint written by ppt train (task unipre3d)")
    export.add_argument("--out", required=True, help="the backbone .safetensors file to write")
    export.set_defaults(handler=_export_backbone)
