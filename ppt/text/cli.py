"""``ppt text-embed``: write the embedding table of class names to a safetensors file."""

from __future__ import annotations

import argparse


def _dataset_names(dataset: str) -> tuple[str, ...]:
    from ppt.data import S3DIS_CLASSES, SCANNET_CLASSES, STRUCTURED3D_CLASSES

    return {"scannet": SCANNET_CLASSES, "s3dis": S3DIS_CLASSES, "structured3d": STRUCTURED3D_CLASSES}[dataset]


def _text_embed(args: argparse.Namespace) -> int:
    from ppt.text import embed_class_names, save_table

    names: list[str] = []
    for dataset in args.dataset or ():
        names += [name for name in _dataset_names(dataset) if name not in names]
    names += [name for name in args.names or () if name not in names]
    if not names:
        raise SystemExit("ppt text-embed: give class names with --names and/or --dataset")
    table = embed_class_names(names, args.provider, model=args.model, template=args.template,
                              pretrained=None if args.pretrained == "none" else args.pretrained,
                              cache=not args.no_cache, device=args.device)
    save_table(args.out, table)
    print(f"wrote {len(table.names)} x {table.dim} {args.provider} embeddings ({table.provenance.get('model')}, "
          f"template {table.provenance.get('template')!r}) to {args.out}")
    return 0


def add_text_command(commands: argparse._SubParsersAction) -> None:
    """Register ``ppt text-embed`` on the ``ppt`` sub-parsers ``commands``."""
    parser = commands.add_parser(
        "text-embed", help="embed class names with a text encoder into a table file",
        description="Embed class names (L2-normalised rows) and save them as a safetensors table, usable as "
                    "PointPromptTraining(text={...}) or with --provider file.")
    parser.add_argument("--provider", required=True, choices=("clip", "minilm", "file"))
    parser.add_argument("--names", nargs="+", metavar="NAME", help="class names, one row each")
    parser.add_argument("--dataset", nargs="+", choices=("scannet", "s3dis", "structured3d"),
                        help="add a dataset's class names (in its native order; the union when several)")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--model", default=None,
                        help="clip: open_clip architecture (ViT-B-16); minilm: a local sentence-transformers folder; "
                             "file: the table to read")
    parser.add_argument("--pretrained", default="openai",
                        help="clip: open_clip pretrained tag or checkpoint path; 'none' for random weights")
    parser.add_argument("--template", default="{}", help="prompt around each name, '{}' = the name (default '{}')")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the table cache")
    parser.set_defaults(handler=_text_embed)
