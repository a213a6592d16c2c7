"""The training side's part of the policy card schema (standard library only).

The robot side (`robotrl.deploy.runtime.validate_card`) checks every field a robot reads: the spec,
the action bounds, the control period, the normaliser. The fields below are read only by robotrl's
own commands (``robotrl card``, ``robotrl eval --onnx``, ``robotrl sim2sim``) and written by
``robotrl export``: how the actor was trained and how it evaluated. `check_training_fields` checks
them, raising ValueError with one line naming the field and what was expected; export runs it with
the robot side's check before writing a card, the commands after loading one.
"""

from __future__ import annotations

from typing import Any

from robotrl.errors import brief_json
from robotrl.spec import finite_number


def _int(v: Any) -> bool:
    """An integer a 64-bit field can hold (a step count, a size); not bool, not 10**400."""
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63


_number = finite_number


_shown = brief_json


def check_training_fields(card: dict[str, Any], where: str) -> None:
    """Raise ValueError unless the card's training, evaluation, actor and normaliser facts have their types."""

    def need(ok: bool, field: str, expected: str, got: Any) -> None:
        if not ok:
            raise ValueError(f"{where}: policy card field {field} must be {expected}, got {_shown(got)}")

    tr = card.get("training")
    need(isinstance(tr, dict), "training", "an object", tr)
    for key in ("steps", "seed"):
        need(_int(tr.get(key)) and tr[key] >= 0, f"training.{key}", "a non-negative integer", tr.get(key))
    need(tr.get("command") is None or isinstance(tr["command"], str), "training.command", "a string or null",
         tr.get("command"))
    ev = card.get("evaluation")
    need(ev is None or isinstance(ev, dict), "evaluation", "an object or null", ev)
    if ev is not None:
        for key in ("mean_return", "std_return"):
            need(_number(ev.get(key)), f"evaluation.{key}", "a finite number", ev.get(key))
        need(_int(ev.get("episodes")) and ev["episodes"] >= 1, "evaluation.episodes", "a positive integer",
             ev.get("episodes"))
        if "seed" in ev:
            need(_int(ev["seed"]) and ev["seed"] >= 0, "evaluation.seed", "a non-negative integer", ev["seed"])
        if "success_rate" in ev:
            need(_number(ev["success_rate"]) and 0 <= ev["success_rate"] <= 1, "evaluation.success_rate",
                 "a number in [0, 1]", ev["success_rate"])
    norm = card.get("normalizer")
    need(isinstance(norm, dict), "normalizer", "an object", norm)
    need(isinstance(norm.get("enabled"), bool), "normalizer.enabled", "true or false", norm.get("enabled"))
    if norm["enabled"]:
        need(_int(norm.get("frozen_after_steps")) and norm["frozen_after_steps"] >= 0,
             "normalizer.frozen_after_steps", "a non-negative integer", norm.get("frozen_after_steps"))
    actor = card.get("actor")  # what the card prints about the network and the export check
    need(actor is None or isinstance(actor, dict), "actor", "an object or null", actor)
    if actor is not None:
        if "parameters" in actor:
            need(_int(actor["parameters"]) and actor["parameters"] >= 0, "actor.parameters", "a non-negative integer",
                 actor["parameters"])
        if "hidden_sizes" in actor:
            sizes = actor["hidden_sizes"]
            need(isinstance(sizes, list) and all(_int(n) and n >= 1 for n in sizes), "actor.hidden_sizes",
                 "a list of positive integers", sizes)
    ex = card.get("export")
    need(ex is None or isinstance(ex, dict), "export", "an object or null", ex)
    if ex is not None:
        for key in ("opset", "parity_samples"):
            if key in ex:
                need(_int(ex[key]) and ex[key] >= 1, f"export.{key}", "a positive integer", ex[key])
        for key in ("parity_max_abs_diff", "parity_max_abs_diff_robot_units", "parity_limit", "float32_rounding"):
            if key in ex:
                need(_number(ex[key]) and ex[key] >= 0, f"export.{key}", "a non-negative number", ex[key])
    s2r = card.get("sim2real")
    need(s2r is None or isinstance(s2r, dict), "sim2real", "an object or null", s2r)
