"""Sim-to-real wrappers, all off by default: domain randomisation, observation noise, action delay.

`Sim2Real` holds the settings (they come from the run config: `robotrl train ... --randomize-mass 0.2`)
and `apply(env, settings)` wraps an env with what is switched on. The policy card records the
settings a policy was trained with (`TaskSpec.extras["sim2real"]`).

Domain randomisation draws, at every reset and independently per element, a factor uniform in
[1 - f, 1 + f] and sets the model's value to nominal x factor (never compounding across resets):
link masses (and their inertias, so the density changes, not the shape), geom friction
coefficients, joint damping, actuator gains (a position servo's kp together with its bias term, so
it stays a servo to the same set-point).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class Sim2Real:
    randomize_mass: float = 0.0
    """Link masses are scaled by a factor uniform in [1 - f, 1 + f], drawn per link at each reset."""
    randomize_friction: float = 0.0
    """Geom friction coefficients (sliding, torsional, rolling) scaled per geom by [1 - f, 1 + f]."""
    randomize_damping: float = 0.0
    """Joint damping scaled per degree of freedom by [1 - f, 1 + f]."""
    randomize_gain: float = 0.0
    """Actuator gains (motor gear, servo kp) scaled per actuator by [1 - f, 1 + f]."""
    obs_noise: float = 0.0
    """Standard deviation of Gaussian noise added to every observation element."""
    action_delay: int = 0
    """The env applies the action chosen this many control steps earlier."""

    def __post_init__(self) -> None:
        self.check_sim2real()

    def check_sim2real(self) -> None:
        for f in ("randomize_mass", "randomize_friction", "randomize_damping", "randomize_gain"):
            v = getattr(self, f)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{f} must be in [0, 1), got {v}")
        if self.obs_noise < 0:
            raise ValueError(f"obs_noise must be >= 0, got {self.obs_noise}")
        if not 0 <= self.action_delay <= 1000:
            raise ValueError(f"action_delay must be in [0, 1000] control steps, got {self.action_delay}")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f.name) for f in fields(Sim2Real))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Sim2Real)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Sim2Real:
        return cls(**(d or {}))


class DomainRandomization(gym.Wrapper):
    """Re-draws the randomised model parameters at every reset (see the module docstring)."""

    def __init__(self, env: gym.Env, settings: Sim2Real):
        super().__init__(env)
        self.settings = settings
        import mujoco

        from robotrl.errors import UserError

        m = getattr(env.unwrapped, "model", None)
        if not isinstance(m, mujoco.MjModel):  # Pendulum-v1 and other non-MuJoCo tasks have no masses to scale
            task = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise UserError(f"domain randomisation (randomize_mass, _friction, _damping, _gain) scales a MuJoCo "
                            f"model's parameters; task {task!r} is not simulated in MuJoCo")
        self._model = m
        self._nominal = {name: getattr(m, name).copy() for name in
                         ("body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gainprm",
                          "actuator_biasprm")}
        self.factors: dict[str, np.ndarray] = {}
        self._rng = np.random.default_rng()

    def _draw(self, n: int, f: float) -> np.ndarray:
        return self._rng.uniform(1.0 - f, 1.0 + f, size=n)

    def randomize(self) -> None:
        m, nom, s = self._model, self._nominal, self.settings
        if s.randomize_mass:
            k = self._draw(m.nbody, s.randomize_mass)
            m.body_mass[:] = nom["body_mass"] * k
            m.body_inertia[:] = nom["body_inertia"] * k[:, None]
            self.factors["mass"] = k
        if s.randomize_friction:
            k = self._draw(m.ngeom, s.randomize_friction)
            m.geom_friction[:] = nom["geom_friction"] * k[:, None]
            self.factors["friction"] = k
        if s.randomize_damping:
            k = self._draw(m.nv, s.randomize_damping)
            m.dof_damping[:] = nom["dof_damping"] * k
            self.factors["damping"] = k
        if s.randomize_gain:
            k = self._draw(m.nu, s.randomize_gain)
            m.actuator_gainprm[:, 0] = nom["actuator_gainprm"][:, 0] * k
            # a position servo is gain kp, bias (0, -kp, -kv): scale kp in both places
            m.actuator_biasprm[:, 1] = nom["actuator_biasprm"][:, 1] * k
            self.factors["gain"] = k

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:  # its own stream, reproducible from the reset seed
            self._rng = np.random.default_rng([int(kwargs["seed"]), 0x5EED])
        self.randomize()
        return self.env.reset(**kwargs)


class ObservationNoise(gym.ObservationWrapper):
    def __init__(self, env: gym.Env, std: float):
        super().__init__(env)
        self.std = std
        self._rng = np.random.default_rng()

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:
            self._rng = np.random.default_rng([int(kwargs["seed"]), 0x0B5])
        return super().reset(**kwargs)

    def observation(self, observation):
        return (observation + self._rng.normal(0.0, self.std, size=np.shape(observation))).astype(observation.dtype)


class ActionDelay(gym.Wrapper):
    """Applies the action chosen `k` steps ago. The queue starts each episode filled with the first
    action of that episode (a robot holds its first command until a newer one arrives)."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.k = k
        self._queue: deque[np.ndarray] = deque(maxlen=k + 1)

    def reset(self, **kwargs):
        self._queue.clear()
        return self.env.reset(**kwargs)

    def step(self, action):
        a = np.array(action, copy=True)
        if not self._queue:
            self._queue.extend([a] * self.k)
        self._queue.append(a)
        return self.env.step(self._queue[0])


def apply(env: gym.Env, settings: Sim2Real) -> gym.Env:
    if settings.randomize_mass or settings.randomize_friction or settings.randomize_damping or settings.randomize_gain:
        env = DomainRandomization(env, settings)
    if settings.action_delay:
        env = ActionDelay(env, settings.action_delay)
    if settings.obs_noise:
        env = ObservationNoise(env, settings.obs_noise)
    return env
