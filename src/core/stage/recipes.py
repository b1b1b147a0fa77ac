"""Which recipe runs a stage: the task family names it. The recipes import ``core.stage.recipe``
(the Protocol and its context) and never this module, which imports them: no import circle."""

from __future__ import annotations

from core.stage.recipe import RecipeContext, StageRecipe


def load_recipe(ctx: RecipeContext) -> StageRecipe:
    family = ctx.spec.family
    if family == "asr":
        from core.stage.asr import AsrRecipe

        return AsrRecipe(ctx)
    if family == "token_cls":
        from core.stage.token_cls import TokenClsRecipe

        return TokenClsRecipe(ctx)
    if family == "sft":
        from core.stage.sft import SftRecipe

        return SftRecipe(ctx)
    raise ValueError(f"no stage recipe for task family {family!r}")
