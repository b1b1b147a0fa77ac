"""What a named check returns (``Hit``) and the table of named checks, which agent.rules.checks and
agent.rules.config_checks fill with ``@check(name)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.rules.context import StageContext
from agent.base.function_table import FunctionTable


@dataclass
class Hit:
    details: dict[str, Any] = field(default_factory=dict)
    suggested: dict[str, Any] | None = None  # stage-relative path -> value


CheckFn = Callable[[StageContext, dict[str, Any]], Hit | None]
CHECKS = FunctionTable()
check = CHECKS.add
