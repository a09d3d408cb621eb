"""Class-name text embeddings for language-guided heads (Point Prompt Training's ``lang`` head).

``embed_class_names(names, provider)`` returns a :class:`TextTable`: an L2-normalised
``(classes, dim)`` table, its names and its provenance. Providers: ``clip`` (open_clip ViT-B-16,
PPT's choice), ``minilm`` (offline all-MiniLM-L6-v2), ``file`` (a saved table). Encoder tables are
cached on disk in the ``text`` folder of ppt's cache (``$PPT_CACHE/text``, else ``~/.cache/ppt/text``); ``ppt text-embed`` writes a
table file.
"""

from ppt.text.providers import DEFAULT_MODELS, PROVIDERS, embed_class_names
from ppt.text.table import CACHE_ENV, TextTable, cache_path, default_cache_dir, load_table, save_table

__all__ = ["embed_class_names", "TextTable", "save_table", "load_table", "default_cache_dir", "cache_path",
           "PROVIDERS", "DEFAULT_MODELS", "CACHE_ENV"]
