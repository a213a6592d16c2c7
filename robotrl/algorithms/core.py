"""What the training loop needs from an algorithm (structural; no base class to inherit)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from robotrl.spec import TaskSpec


@dataclass
class IterationResult:
    """One `iterate()`: metrics (``train/...`` keys) and the episodes that ended during it."""

    metrics: dict[str, float]
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    episode_means: dict[str, list[float]] = field(default_factory=dict)
    """what the env reports of each ended episode beside its return and length (``info["episode"][key]``: a legged
    task's mean tracking errors), by key, in the order of `episode_returns`"""


def episode_means(info: dict[str, Any], ended: Any, into: dict[str, list[float]]) -> None:
    """Append the ended episodes' figures of ``info["episode"]`` other than return and length to `into`, by key."""
    for key, values in info["episode"].items():
        if key not in ("r", "l"):
            into.setdefault(key, []).extend(float(values[i]) for i in ended)


class IterationAborted(Exception):
    """Raised by `iterate()` when `should_stop` turned true while it collected a rollout it cannot use
    part of (on-policy): nothing was learned from it and `num_steps` did not advance."""


def never() -> bool:
    """The default `should_stop`: outside `robotrl.run.train`'s loop nothing asks an iteration to end early."""
    return False


class Algorithm(Protocol):
    """A training algorithm as the loop in `robotrl.run.train` drives it.

    Constructed as ``Algo(config, spec, envs, seed=..., total_steps=..., device=...)``; `envs` is a
    Gymnasium vector env with SAME_STEP autoreset (see `robotrl.run.vec_env`).
    """

    name: ClassVar[str]
    num_steps: int
    """Environment steps consumed so far (all envs together)."""
    should_stop: Callable[[], bool]
    """Set by the loop: true once a stop signal came. Every loop inside `iterate()` that can run long (env
    steps, gradient steps, epochs) polls it, so that SIGINT/SIGTERM stop a run within one step or epoch,
    never after an iteration of hours: off-policy ends the iteration after the current env step, PPO and
    TRPO end their update after the current epoch, and a rollout still being collected is dropped
    (`IterationAborted`)."""

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


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to `n` inside the block (None: unchanged). The learner acts with one thread (a
    forward pass for a few envs gains nothing from more, and idle threads spinning beside the physics threads cost),
    and updates on large batches with several."""
    import torch

    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
