"""Reward terms, registered by name: a term is a small function over a batch of worlds.

A template declares its terms once, with the decorator of its `Terms` registry::

    LEGGED = Terms("legged")

    @LEGGED.term(weight=1.0, doc="exp(-|v_xy* - v_xy|^2 / sigma): tracking of the commanded planar velocity")
    def track_lin(s) -> np.ndarray:          # s: the template's per-step quantities, arrays over [N] worlds
        ...
        return value                          # [N]

The task multiplies each term by its weight (the defaults here, the robot config's ``[legged.rewards]`` over them)
and by the control period, sums them into the reward and reports each one in ``info["reward_terms"]``. Adding a
term is one function here plus its test; the config reader, the card's recorded settings and the defaults table in
the docs read the registry. (mjlab writes a term as a function of the env and a task as a list of terms with
weights; legged_gym finds methods named ``_reward_<name>``. Ours: mjlab's functions, registered by a decorator, so
a misspelt weight is named against the registry rather than found missing at run time.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Term:
    name: str
    weight: float
    """the default weight (per second: the task multiplies by the control period)"""
    doc: str
    fn: Callable[[Any], np.ndarray]


class Terms:
    """The reward terms of one template, in registration order."""

    def __init__(self, template: str):
        self.template = template
        self._terms: dict[str, Term] = {}

    def term(self, *, weight: float, doc: str) -> Callable[[Callable[[Any], np.ndarray]], Callable[[Any], np.ndarray]]:
        def register(fn: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
            if fn.__name__ in self._terms:
                raise ValueError(f"{self.template}: reward term {fn.__name__!r} is registered twice")
            self._terms[fn.__name__] = Term(fn.__name__, float(weight), doc, fn)
            return fn

        return register

    def __iter__(self) -> Iterator[Term]:
        return iter(self._terms.values())

    def __contains__(self, name: object) -> bool:
        return name in self._terms

    def defaults(self) -> dict[str, float]:
        return {t.name: t.weight for t in self}

    def weights(self, overrides: dict[str, float] | None) -> dict[str, float]:
        """The default weights with `overrides` over them; an unknown name is a ValueError listing the known."""
        unknown = sorted(set(overrides or {}) - set(self._terms))
        if unknown:
            raise ValueError(f"unknown reward terms {unknown}; known: {', '.join(self._terms)}")
        return {**self.defaults(), **(overrides or {})}

    def evaluate(self, state: Any, weights: dict[str, float], dt: float) -> dict[str, np.ndarray]:
        """Each term's contribution, weight x value x dt, as arrays over the worlds; terms of weight 0 are not
        computed (they are zero)."""
        out = {}
        for t in self:
            w = weights[t.name]
            out[t.name] = (w * dt) * t.fn(state) if w != 0.0 else np.zeros(state.n)
        return out
