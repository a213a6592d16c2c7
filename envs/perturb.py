"""Perturbations for robustness evaluation: what a robot brings that training did not (`robotrl eval --perturb`).

    condition = parse_condition("friction=0.4,payload=0.25")       # {"friction": 0.4, "payload": 0.25}
    with Perturbed(task, condition) as p:                          # task: a batched template task (legged, ...)
        p.seed(worlds, seeds); p.reset(worlds); p.step(actions)    # the task's API, perturbed
    # here the task's models hold their nominal values again

A perturbation is one entry of a registry, name -> function (`perturbation`): the function changes a `Perturbed`
task through its hooks, and nothing else. The model's parameters are changed in place and put back when the
`Perturbed` closes (`scale`); latency, pushes and sensor noise act on the step (`Perturbed.delay_steps`, `push`,
`noise_std`), drawing from streams seeded per episode, so the same episodes are played under every condition
whatever the batch. A change the model must be compiled anew for (rough ground in place of the floor) is a
`Perturbation.rebuild` of the robot config, and the evaluation builds that condition's task from it. Another module
registers its own the same way: the terrain module (`robotrl.envs.terrain`) registers ``rough``.

| name | value | what changes |
| friction | factor (0.4: 40 %) | every geom's friction coefficients (sliding, torsional, rolling) |
| payload | fraction (0.25: +25 %) | the base's mass (and inertia) times 1 + value; ``payload_kg``: + that many kg |
| servos | factor (0.7) | every actuator's gain: a position servo's kp and kd; effort limits stay |
| latency | seconds (0.02) | commands reach the servos this late, in physics steps (20 ms at 5 ms: 4 steps) |
| noise | fraction (0.05) | Gaussian noise on measured elements, std = value / 0.05 x the kind's noise scale |
| push | m/s (1.0) | the base's horizontal velocity changed by that much, random direction, every ``push_every`` s |
| rough | m (0.04) | the floor replaced by rough ground, heights uniform in +-value (`robotrl.envs.terrain`) |

Sensor noise per element kind (its `robotrl.kinds.Kind.noise`, which training's sensor noise uses too): noise=0.05
gives a standard deviation of 0.01 rad on joint positions, 1.5 rad/s on joint velocities, 0.2 rad/s on the IMU's
angular velocity, 0.05 on projected gravity (about 3 degrees) and 0.1 m/s on a base velocity: legged_gym's noise
scales (there uniform, here Gaussian). What the robot is told or did itself (the velocity command, the previous
action, a goal) gets none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robotrl.errors import UserError

PUSH_STREAM, NOISE_STREAM = 0x9054, 0x4015  # an episode seed s: pushes draw from default_rng([s, PUSH_STREAM]), ...

NOISE_REFERENCE = 0.05
"""noise=0.05 gives each measured kind its training noise scale (`robotrl.kinds.Kind.noise`, legged_gym's) as the
standard deviation; other values in proportion"""


@dataclass(frozen=True)
class Perturbation:
    """One registered perturbation: ``apply(perturbed, value, condition)`` changes the task (`condition`: the whole
    NAME=VALUE set, for the options below)."""

    name: str
    doc: str
    """what it changes, with the unit of its value: one line of `describe`"""
    apply: Callable[[Perturbed, float, dict[str, float]], None]
    low: float = 0.0
    high: float = math.inf
    """the values accepted (inclusive)"""
    options: dict[str, float] = field(default_factory=dict)
    """NAME=VALUE settings that only go with this one, and their defaults (push_every for push)"""
    rebuild: Callable[[Any, float], Any] | None = None
    """``rebuild(robot_config, value) -> robot_config``: the robot the condition's task is built from, where the
    model changes beyond its parameters (None: the nominal task's, changed by `apply`)"""


PERTURBATIONS: dict[str, Perturbation] = {}


def perturbation(name: str, doc: str, *, low: float = 0.0, high: float = math.inf,
                 options: dict[str, float] | None = None,
                 rebuild: Callable[[Any, float], Any] | None = None) -> Callable:
    """Decorator registering ``fn(perturbed, value, condition)`` as perturbation `name` (ValueError if taken)."""

    def register(fn: Callable[[Perturbed, float, dict[str, float]], None]) -> Callable:
        if name in PERTURBATIONS:
            raise ValueError(f"perturbation {name!r} is registered twice")
        PERTURBATIONS[name] = Perturbation(name, doc, fn, low, high, dict(options or {}), rebuild)
        return fn

    return register


def _load_others() -> None:
    """Import the modules that register perturbations of their own (the terrain module)."""
    import robotrl.envs.terrain  # noqa: F401


def rebuilt(condition: dict[str, float]) -> Callable[[Any], Any] | None:
    """The robot config change the condition's task needs built (its perturbations' `rebuild`s, in order), or None
    where the nominal task serves."""
    _load_others()
    steps = [(PERTURBATIONS[n].rebuild, v) for n, v in condition.items()
             if n in PERTURBATIONS and PERTURBATIONS[n].rebuild is not None]
    if not steps:
        return None

    def change(config: Any) -> Any:
        for fn, value in steps:
            config = fn(config, value)
        return config

    return change


def known() -> str:
    """``friction, payload (payload_kg), ...``: every name a condition may use, for error messages."""
    _load_others()
    names = [p.name + (f" ({', '.join(p.options)})" if p.options else "") for p in PERTURBATIONS.values()]
    return ", ".join(names)


def parse_condition(text: str) -> dict[str, float]:
    """``"friction=0.4,push=1,push_every=2"`` -> ``{"friction": 0.4, "push": 1.0, "push_every": 2.0}``, every name
    and value checked (a UserError naming the known ones otherwise)."""
    _load_others()
    options = {o: p for p in PERTURBATIONS.values() for o in p.options}
    out: dict[str, float] = {}
    for item in (s.strip() for s in text.split(",")):
        name, eq, raw = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UserError(f"--perturb {text!r}: {item!r} is not NAME=VALUE (known: {known()})")
        if name not in PERTURBATIONS and name not in options:
            raise UserError(f"--perturb: unknown perturbation {name!r} (known: {known()})")
        if name in out:
            raise UserError(f"--perturb {text!r}: {name} is given twice")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        p = PERTURBATIONS.get(name)
        low, high = (p.low, p.high) if p is not None else (1e-3, 3600.0)
        if not low <= value <= high:  # NaN fails too
            span = f"from {low:g}" + (f" to {high:g}" if math.isfinite(high) else " up")
            raise UserError(f"--perturb {name}={raw.strip()}: the value must be a number {span}")
        out[name] = value
    for o, p in options.items():
        if o in out and p.name not in out:
            raise UserError(f"--perturb {o} is an option of {p.name}: give {p.name}=VALUE with it")
    if "payload" in out and "payload_kg" in out:
        raise UserError("--perturb: give payload (a fraction of the base's mass) or payload_kg, not both")
    return out


def label(condition: dict[str, float]) -> str:
    """The condition as it was written: ``friction=0.4,payload=0.25``."""
    return ",".join(f"{k}={v:g}" for k, v in condition.items())


class Perturbed:
    """A batched template task under a condition (a dict from `parse_condition`), with the task's API (`seed`,
    `reset`, `apply`, `simulate`, `finish`, `step`, `observe`, and its attributes). A context manager: on leaving,
    every model parameter it changed holds its nominal value again."""

    def __init__(self, task: Any, condition: dict[str, float]):
        self.task, self.condition = task, dict(condition)
        self._saved: list[tuple[Any, str, np.ndarray]] = []  # (model, array name, nominal copy)
        n = task.num_worlds
        self.delay_steps = 0
        """physics steps between a command and the servos receiving it"""
        self.push_velocity, self.push_every = 0.0, 0
        """pushes: a change of the base's horizontal velocity [m/s] every `push_every` control steps (0: none)"""
        self.noise_std = np.zeros(task.obs_dim)
        """the standard deviation of the noise on each observation element"""
        self._push_rngs = [np.random.default_rng() for _ in range(n)]
        self._noise_rngs = [np.random.default_rng() for _ in range(n)]
        self._noise = np.zeros((n, task.obs_dim))
        try:
            for name, value in self.condition.items():
                if name in PERTURBATIONS:
                    PERTURBATIONS[name].apply(self, value, self.condition)
        except BaseException:
            self.restore()
            raise
        back = -(-self.delay_steps // task.frame_skip)  # control steps a command may wait
        self._history = np.zeros((n, back + 1, task.ctrl.shape[1]))  # [:, d]: the controls of d control steps ago

    def __getattr__(self, name: str) -> Any:  # the task's own attributes (robot, task_spec, worlds, set_command, ...)
        if name.startswith("__") or name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def __enter__(self) -> Perturbed:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    # hooks for the perturbations -------------------------------------------------------------------------
    def scale(self, array: str, factor: float | np.ndarray, index: Any = slice(None)) -> None:
        """Multiply ``model.<array>[index]`` by `factor` in every model the worlds step with (its nominal values
        kept, to be put back by `restore`)."""
        for values in self._arrays(array):
            values[index] = values[index] * factor

    def set(self, array: str, new: float | np.ndarray, index: Any = slice(None)) -> None:
        """Set ``model.<array>[index]`` to `new` in every model the worlds step with (kept and put back as by
        `scale`): e.g. a heightfield's ``hfield_data`` where the model has one."""
        for values in self._arrays(array):
            values[index] = new

    def _arrays(self, array: str) -> list[np.ndarray]:
        """``model.<array>`` of every model the worlds step with, each one's nominal values saved the first time."""
        out = []
        for m in self.task.worlds.models():
            values = getattr(m, array)
            if not any(s is m and a == array for s, a, _ in self._saved):
                self._saved.append((m, array, values.copy()))
            out.append(values)
        return out

    def restore(self) -> None:
        """Every model parameter changed back to its nominal value."""
        for m, array, nominal in reversed(self._saved):
            getattr(m, array)[:] = nominal
        self._saved.clear()

    # the task's API -------------------------------------------------------------------------------------
    def seed(self, worlds: Any, seeds: list[int | None]) -> None:
        """Seed the task's worlds and this condition's streams of them (pushes, noise) from the episode seeds."""
        self.task.seed(worlds, seeds)
        for i, s in zip(worlds, seeds, strict=True):
            if s is not None:
                self._push_rngs[i] = np.random.default_rng([int(s), PUSH_STREAM])
                self._noise_rngs[i] = np.random.default_rng([int(s), NOISE_STREAM])

    def reset(self, worlds: Any) -> None:
        """The task's reset; then the servos of `worlds` hold the reset's targets until the first delayed command
        reaches them, and their first observation's noise is drawn."""
        worlds = np.asarray(worlds, dtype=np.intp).reshape(-1)
        self.task.reset(worlds)
        self._history[worlds] = self.task.ctrl[worlds, None, :]
        self._draw_noise(worlds)

    def apply(self, actions: np.ndarray) -> None:
        self.task.apply(actions)

    def simulate(self) -> None:
        """The physics of one control step; with a latency of L physics steps, physics step j of control step k
        runs with the controls of control step ``k + floor((j - L) / frame_skip)``."""
        L, nsub = self.delay_steps, self.task.frame_skip
        if not L:
            self.task.simulate()
            return
        back = -np.floor_divide(np.arange(nsub) - L, nsub)  # control steps back, per physics step
        self._history = np.roll(self._history, 1, axis=1)
        self._history[:, 0] = self.task.ctrl
        self.task.worlds.step(self._history[:, back], nsub)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """The task's finish, then the step's pushes (after the step, as the task's own) and observation noise."""
        obs, reward, terminated, truncated, info = self.task.finish()
        if self.push_every:
            vb = self.task._vb
            for i in np.flatnonzero(self.task.t % self.push_every == 0):
                angle = self._push_rngs[i].uniform(-math.pi, math.pi)
                self.task.worlds.qvel[i, vb:vb + 2] += self.push_velocity * np.array([math.cos(angle), math.sin(angle)])
        self._draw_noise(np.arange(self.task.num_worlds))
        return obs + self._noise, reward, terminated, truncated, info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.apply(actions)
        self.simulate()
        return self.finish()

    def observe(self) -> np.ndarray:
        """The task's observation plus the noise drawn at the last step or reset (so it may be asked again)."""
        return self.task.observe() + self._noise

    def _draw_noise(self, worlds: np.ndarray) -> None:
        if self.noise_std.any():
            for i in worlds:
                self._noise[i] = self._noise_rngs[i].normal(0.0, 1.0, self._noise.shape[1]) * self.noise_std

    def close(self) -> None:
        self.restore()


# ---- the perturbations --------------------------------------------------------------------------------------------
@perturbation("friction", "factor on every geom's friction coefficients (0.4: 40 %)", low=0.01, high=10.0)
def _friction(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    p.scale("geom_friction", value)


def _base_body(p: Perturbed) -> int:
    base = getattr(p.task, "base_body", None)
    if base is None:
        raise UserError("--perturb payload: this task has no floating base to load")
    return int(base)


@perturbation("payload", "extra mass on the base, a fraction of its own (0.25: +25 %; payload_kg=KG: in kg)",
              high=10.0)
def _payload(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    base = _base_body(p)
    p.scale("body_mass", 1.0 + value, base)
    p.scale("body_inertia", 1.0 + value, base)


@perturbation("payload_kg", "extra mass on the base in kg (its inertia grows in proportion)", high=1000.0)
def _payload_kg(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    base = _base_body(p)
    factor = 1.0 + value / float(p.task.worlds.model.body_mass[base])
    p.scale("body_mass", factor, base)
    p.scale("body_inertia", factor, base)


@perturbation("servos", "factor on every servo's kp and kd (a motor's gain); effort limits stay (0.7: 70 %)",
              low=0.01, high=10.0)
def _servos(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    p.scale("actuator_gainprm", value, (slice(None), 0))  # kp (a motor's gear gain)
    p.scale("actuator_biasprm", value, (slice(None), slice(1, 3)))  # a position servo's -kp and -kd


@perturbation("latency", "seconds before a command reaches the servos, a whole number of physics steps (0.02)",
              high=1.0)
def _latency(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    dt = float(p.task.worlds.model.opt.timestep)
    steps = round(value / dt)
    if abs(steps * dt - value) > 1e-6 * max(dt, value):
        raise UserError(f"--perturb latency={value:g}: not a whole number of physics steps of {dt:g} s (e.g. "
                        f"{math.floor(value / dt) * dt:g} or {math.ceil(value / dt) * dt:g})")
    p.delay_steps = steps


@perturbation("noise", "sensor noise, a fraction of each measured kind's full scale (0.05: legged_gym's levels)",
              high=1.0)
def _noise(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    from robotrl.kinds import KINDS

    p.noise_std = np.array([value / NOISE_REFERENCE * (KINDS[e.kind].noise if e.kind in KINDS else 0.0)
                            for e in p.task.task_spec.observation])


@perturbation("push", "a push: the base's horizontal velocity changed by VALUE m/s, random direction, every "
              "push_every s (default 3)", high=10.0, options={"push_every": 3.0})
def _push(p: Perturbed, value: float, condition: dict[str, float]) -> None:
    if not hasattr(p.task, "_vb"):
        raise UserError("--perturb push: this task has no floating base to push")
    every = condition.get("push_every", 3.0)
    p.push_every = max(1, round(every / p.task.dt))
    p.push_velocity = value
