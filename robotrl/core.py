"""What the training loop needs from an algorithm (structural; no base class to inherit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from robotrl.spec import TaskSpec


@dataclass
class IterationResult:
    """One `iterate()`: metrics (``train/...`` keys) and the episodes that ended during it."""

    metrics: dict[str, float]
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)


class Algorithm(Protocol):
    """A training algorithm as the loop in `robotrl.train` drives it.

    Constructed as ``Algo(config, spec, envs, seed=..., total_steps=..., device=...)``; `envs` is a
    Gymnasium vector env with SAME_STEP autoreset (see `robotrl.vec_env`).
    """

    name: ClassVar[str]
    num_steps: int
    """Environment steps consumed so far (all envs together)."""

    def iterate(self) -> IterationResult:
        """Collect experience and learn from it; advances `num_steps`."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training: tensors and plain Python values only."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def policy_record(self) -> dict[str, Any]:
        """The deterministic actor with its normaliser and action bounds (`robotrl.policies.make_record`)."""
        ...

    def close(self) -> None: ...


def spec_action_arrays(spec: TaskSpec) -> tuple[Any, Any]:
    """(offset, scale) arrays mapping normalised actions in [-1, 1] to the task's units."""
    import numpy as np

    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    return (high + low) / 2.0, (high - low) / 2.0
