"""Training recipes shipped with ppt: one YAML file per recipe, loaded by
:func:`ppt.engine.load_recipe` into :class:`ppt.engine.RecipeConfig` (``ppt train --list``)."""
