"""Alert rules (our own schema), the engine that evaluates them, and their records."""

from __future__ import annotations

from .engine import AlertEngine, Transition
from .rules import Rule, RuleError, builtin_rules, load_rules_file, parse_rules

__all__ = ["AlertEngine", "Rule", "RuleError", "Transition", "builtin_rules",
           "load_rules_file", "parse_rules"]
