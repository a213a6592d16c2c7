"""Sim-to-real settings: domain randomisation, latency, observation noise, action delay; off unless a run asks.

`Sim2Real` holds the settings (they come from the run config: `robotrl train ... --randomize-mass 0.2`; a task
template may give its tasks some by default, `robotrl.envs.templates.Template.sim2real`: the legged template does)
and `apply(env, settings)` wraps an env with what is switched on. The policy card records the settings a policy was
trained with (`TaskSpec.extras["sim2real"]`); evaluation runs the nominal robot.

Domain randomisation draws, at every reset, from the reset seed's own stream, and never compounds across resets
(every value is set from the nominal model, as built):
- factors uniform in [1 - f, 1 + f], independently per element, on link masses (and their inertias, so the density
  changes, not the shape), geom friction coefficients, joint damping and actuator strength (an actuator's whole
  force: a position servo's kp and kd together, so it stays a servo to the same set-point; a motor's gain);
- a payload on the base body, a fraction of the robot's mass, and a shift of the base's centre of mass;
- the episode's latency, k physics steps (`PhysicsLatency`: a new servo target reaches the servos k physics steps
  into the control step, the previous one holding until then).
Observation noise is Gaussian of one standard deviation on every element (`obs_noise`) and uniform in +- each
element's kind's noise scale times `sensor_noise` (`robotrl.kinds.Kind.noise`, legged_gym's scales), drawn at
every step.

A batched template task (all its worlds in one process, `robotrl.envs.vector.TaskVectorEnv`) gets the same
settings as arrays over its worlds instead (`batched(task, settings)` -> `WorldsSim2Real`): each world draws from
streams seeded as the wrappers seed theirs, so world i of a batch gives what the wrapped single env reset with
world i's seed gives. Measured with the first six settings on (32 quadruped worlds, 2 busy cores): 5,000 steps/s
against 1,170 for 32 wrapped single envs stepped in one process. The legged template's defaults cost the batch about
a sixth of its rate (BENCHMARKS.md, sim2real-defaults): per control step of 32 worlds, ~20 us for the latency's
schedule and ~170 us for the per-world noise draws, ~160 us per world reset for its draws; rollout over per-world
model copies ran no slower than over one shared model, within this machine's noise.
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
    """Servo strength: each actuator's force (a position servo's kp and kd together, a motor's gain) scaled per
    actuator by [1 - f, 1 + f]."""
    base_payload: tuple[float, float] = (0.0, 0.0)
    """Mass added to the base body at each reset, uniform in [LOW, HIGH] times the robot's mass (as built): a load,
    or a lighter or heavier build; a point mass at the base's centre of mass (e.g. -0.05,0.2)."""
    base_com: float = 0.0
    """The base's centre of mass moved at each reset by up to this much [m] along each of the base's axes (uniform
    in [-c, c])."""
    latency: tuple[float, float] = (0.0, 0.0)
    """Delay [s] of every new servo target, drawn per episode uniform in [LOW, HIGH] and rounded to whole physics
    steps: for the first k physics steps of a control step the servos still track the previous target (a template
    task's servos; 0,0.02: up to 20 ms)."""
    obs_noise: float = 0.0
    """Standard deviation of Gaussian noise added to every observation element."""
    sensor_noise: float = 0.0
    """Uniform noise in [-s, s] times this on every observation element at every step, s its kind's noise scale
    (joint position 0.01 rad, joint velocity 1.5 rad/s, angular velocity 0.2 rad/s, projected gravity 0.05, ...:
    robotrl.kinds); 1 is legged_gym's noise. Commands, goals and previous actions get none."""
    action_delay: int = 0
    """The env applies the action chosen this many control steps earlier."""

    def __post_init__(self) -> None:
        self.check_sim2real()

    def check_sim2real(self) -> None:
        for f in ("randomize_mass", "randomize_friction", "randomize_damping", "randomize_gain"):
            v = getattr(self, f)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{f} must be in [0, 1), got {v}")
        self.base_payload = lo, hi = _pair(self.base_payload, "base_payload", "fractions of the robot's mass")
        if not -0.5 <= lo <= hi <= 1.0:
            raise ValueError(f"base_payload must be LOW,HIGH with -0.5 <= LOW <= HIGH <= 1 (fractions of the robot's "
                             f"mass), got {lo:g},{hi:g}")
        if not 0.0 <= self.base_com <= 0.5:
            raise ValueError(f"base_com must be in [0, 0.5] m, got {self.base_com}")
        self.latency = lo, hi = _pair(self.latency, "latency", "seconds")
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"latency must be LOW,HIGH seconds with 0 <= LOW <= HIGH <= 1, got {lo:g},{hi:g}")
        if self.obs_noise < 0:
            raise ValueError(f"obs_noise must be >= 0, got {self.obs_noise}")
        if not 0.0 <= self.sensor_noise <= 10.0:
            raise ValueError(f"sensor_noise must be in [0, 10] (1: legged_gym's noise), got {self.sensor_noise}")
        if not 0 <= self.action_delay <= 1000:
            raise ValueError(f"action_delay must be in [0, 1000] control steps, got {self.action_delay}")

    def switched_on(self) -> tuple[str, ...]:
        """The names of the settings that are on (a range is on unless it is 0,0)."""
        return tuple(f.name for f in fields(Sim2Real) if is_on(getattr(self, f.name)))

    @property
    def enabled(self) -> bool:
        return bool(self.switched_on())

    @property
    def randomizes(self) -> bool:
        """Whether anything is drawn per episode from the model stream (mass, friction, damping, gain, payload,
        centre of mass, latency)."""
        return any(is_on(getattr(self, f)) for f in DRAWN)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(Sim2Real)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Sim2Real:
        return cls(**(d or {}))


DRAWN = ("randomize_mass", "randomize_friction", "randomize_damping", "randomize_gain", "base_payload", "base_com",
         "latency")
"""the settings drawn at each reset from the model stream (`randomize_model`), in the order drawn"""


def is_on(value: Any) -> bool:
    """A setting's value is on: a number not 0, a range not 0,0."""
    return any(value) if isinstance(value, tuple | list) else bool(value)


def _pair(value: Any, name: str, unit: str) -> tuple[float, float]:
    """`value` as (LOW, HIGH) floats (a card or config.json holds a list); ValueError naming `name` otherwise."""
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or isinstance(value, str) or any(isinstance(v, bool) for v in value):
        raise ValueError(f"{name} must be two numbers LOW,HIGH ({unit}), got {value!r}")
    return pair


MODEL_STREAM, NOISE_STREAM = 0x5EED, 0x0B5
"""a reset seed s seeds domain randomisation with ``default_rng([s, MODEL_STREAM])``, observation noise with
``default_rng([s, NOISE_STREAM])``: streams of their own, apart from the task's"""

RANDOMIZED = ("body_mass", "body_inertia", "body_ipos", "geom_friction", "dof_damping", "actuator_gainprm",
              "actuator_biasprm")
"""the MjModel arrays domain randomisation sets"""


def nominal_parameters(model: Any) -> dict[str, np.ndarray]:
    """Copies of the model's arrays that domain randomisation sets (`RANDOMIZED`), as built, and of the mass of each
    body's subtree (a payload is a fraction of the robot's)."""
    return {name: getattr(model, name).copy() for name in (*RANDOMIZED, "body_subtreemass")}


def restore_nominal(model: Any, nominal: dict[str, np.ndarray]) -> None:
    """Put `model`'s randomised arrays back to `nominal` (`nominal_parameters`)."""
    for name in RANDOMIZED:
        getattr(model, name)[:] = nominal[name]


def latency_steps(settings: Sim2Real, timestep: float) -> tuple[int, int]:
    """The latency range in whole physics steps of `timestep` (rounded to the nearest)."""
    return round(settings.latency[0] / timestep), round(settings.latency[1] / timestep)


def randomize_model(model: Any, nominal: dict[str, np.ndarray], settings: Sim2Real, rng: np.random.Generator,
                    base: int | None = None) -> dict[str, np.ndarray]:
    """Set `model`'s randomised parameters from `nominal` with draws from `rng`, in this order: mass per body
    (inertia alike), friction per geom, damping per dof and strength per actuator (factors in [1 - f, 1 + f]), the
    payload on body `base` [kg] and the shift of its centre of mass [m, in the body's frame]; then draw the
    episode's latency in physics steps (the caller applies it: `PhysicsLatency`). Returns the draws by name ("mass",
    "friction", "damping", "gain", "payload", "com", "latency") of the settings that are on."""
    s, nom, factors = settings, nominal, {}
    if s.randomize_mass:
        k = rng.uniform(1.0 - s.randomize_mass, 1.0 + s.randomize_mass, size=model.nbody)
        model.body_mass[:] = nom["body_mass"] * k
        model.body_inertia[:] = nom["body_inertia"] * k[:, None]
        factors["mass"] = k
    if s.randomize_friction:
        k = rng.uniform(1.0 - s.randomize_friction, 1.0 + s.randomize_friction, size=model.ngeom)
        model.geom_friction[:] = nom["geom_friction"] * k[:, None]
        factors["friction"] = k
    if s.randomize_damping:
        k = rng.uniform(1.0 - s.randomize_damping, 1.0 + s.randomize_damping, size=model.nv)
        model.dof_damping[:] = nom["dof_damping"] * k
        factors["damping"] = k
    if s.randomize_gain:
        k = rng.uniform(1.0 - s.randomize_gain, 1.0 + s.randomize_gain, size=model.nu)
        model.actuator_gainprm[:, 0] = nom["actuator_gainprm"][:, 0] * k
        # force = gain * ctrl + bias0 + bias1 * length + bias2 * velocity; a position servo's bias is (0, -kp, -kd)
        model.actuator_biasprm[:, :3] = nom["actuator_biasprm"][:, :3] * k[:, None]
        factors["gain"] = k
    if is_on(s.base_payload):
        kg = rng.uniform(*s.base_payload) * nom["body_subtreemass"][base]
        built = model.body_mass[base] if s.randomize_mass else nom["body_mass"][base]  # (scaled from nominal above)
        model.body_mass[base] = built + kg
        factors["payload"] = np.array([kg])
    if s.base_com:
        shift = rng.uniform(-s.base_com, s.base_com, size=3)
        model.body_ipos[base] = nom["body_ipos"][base] + shift
        factors["com"] = shift
    if is_on(s.latency):
        lo, hi = latency_steps(s, model.opt.timestep)
        factors["latency"] = np.array([rng.integers(lo, hi + 1)])
    return factors


def check_for_model(settings: Sim2Real, model: Any, base: int | None, task: str) -> None:
    """Refuse (UserError) settings this task's model cannot take: a payload or centre-of-mass shift without a floating
    base, a payload that would take the base's whole mass away, a latency under half a physics step."""
    from robotrl.errors import UserError

    s = settings
    if (is_on(s.base_payload) or s.base_com) and base is None:
        raise UserError(f"base_payload and base_com act on a floating base (a legged robot's); task {task!r} has "
                        "none")
    if is_on(s.base_payload):
        least = (1.0 - s.randomize_mass) * float(model.body_mass[base])
        removed = -s.base_payload[0] * float(model.body_subtreemass[base])
        if removed >= least:
            raise UserError(f"base_payload {s.base_payload[0]:g} would take {removed:.3g} kg off a base of "
                            f"{least:.3g} kg in task {task!r}; raise LOW")
    if is_on(s.latency) and latency_steps(s, model.opt.timestep)[1] == 0:
        raise UserError(f"latency up to {s.latency[1]:g} s is under half a physics step ({model.opt.timestep:g} s) "
                        f"of task {task!r}: no delay at all; give at least {model.opt.timestep:g}")


def noise_scales(elements: Any, level: float, task: str) -> np.ndarray:
    """Each observation element's sensor noise scale (its kind's, `robotrl.kinds.Kind.noise`) times `level`; a
    UserError where `level` is on and no element has a kind with a scale (a plain Gymnasium task's are unnamed)."""
    from robotrl.errors import UserError
    from robotrl.kinds import KINDS

    scales = np.array([KINDS[e.kind].noise if e.kind in KINDS else 0.0 for e in elements]) * level
    if level and not scales.any():
        raise UserError(f"sensor_noise adds noise by each observation element's kind (joint_pos, joint_vel, "
                        f"base_ang_vel, ...); task {task!r} has no element of such a kind (use obs_noise)")
    return scales


def draw_noise(rng: np.random.Generator, size: int, std: float, scales: np.ndarray | None) -> np.ndarray:
    """One step's observation noise: Gaussian of `std` on every element, then uniform in +- `scales`."""
    noise = rng.normal(0.0, std, size=size) if std else None
    if scales is None:
        return noise
    uniform = rng.uniform(-1.0, 1.0, size=size) * scales
    return uniform if noise is None else noise + uniform


class PhysicsLatency:
    """Servo targets that reach each world's servos k physics steps late, k per world (drawn per episode).

    The task sets its controls once per control step (`frame_skip` physics steps); `controls` turns them into a
    control per physics step for `robotrl.envs.worlds.Worlds.step`: physics step j of the control step gets the
    controls set ceil((k - j) / frame_skip) control steps ago (none ago from j = k on). With k <= frame_skip, the
    previous step's target holds for the first k physics steps and this step's for the rest. An episode starts
    (`start`) with the controls the task set at its reset in every slot (the servos held the start pose)."""

    def __init__(self, num_worlds: int, nu: int, frame_skip: int, max_steps: int):
        self.frame_skip = int(frame_skip)
        self.k = np.zeros(num_worlds, dtype=np.int64)
        depth = -(-int(max_steps) // self.frame_skip)  # the most control steps a target can be late
        self._past = np.zeros((num_worlds, depth, nu))  # the controls of the last `depth` control steps, newest first
        self._j = np.arange(self.frame_skip)
        self._rows = np.arange(num_worlds)[:, None]

    def start(self, worlds: Any, ctrl: np.ndarray, steps: Any) -> None:
        """New episodes in `worlds`, whose controls at reset are ``ctrl [len(worlds), nu]``, delayed `steps` each."""
        self._past[worlds] = np.asarray(ctrl)[:, None, :]
        self.k[worlds] = np.asarray(steps, dtype=np.int64).reshape(-1)

    def controls(self, ctrl: np.ndarray) -> np.ndarray:
        """This control step's ``ctrl [N, nu]`` -> the control of each of its physics steps ``[N, frame_skip, nu]``."""
        seq = np.concatenate([np.asarray(ctrl, dtype=np.float64)[:, None, :], self._past], axis=1)
        lag = -((self._j[None, :] - self.k[:, None]) // self.frame_skip)  # ceil((k - j) / frame_skip)
        out = seq[self._rows, np.maximum(lag, 0)]
        if self._past.shape[1]:
            self._past[:] = seq[:, :-1]
        return out


class DomainRandomization(gym.Wrapper):
    """Re-draws the randomised model parameters (and the latency) at every reset (see the module docstring); `close`
    puts the nominal model back."""

    def __init__(self, env: gym.Env, settings: Sim2Real):
        super().__init__(env)
        self.settings = settings
        import mujoco

        from robotrl.errors import UserError

        u = env.unwrapped
        task_id = env.spec.id if env.spec is not None else type(u).__name__
        m = getattr(u, "model", None)
        if not isinstance(m, mujoco.MjModel):  # Pendulum-v1 and other non-MuJoCo tasks have no masses to scale
            on = ", ".join(f for f in DRAWN if is_on(getattr(settings, f)))
            raise UserError(f"domain randomisation ({on}) changes a MuJoCo model's parameters; task {task_id!r} is "
                            "not simulated in MuJoCo")
        self._base = getattr(u, "base_body", None)  # a legged template's floating base
        check_for_model(settings, m, self._base, task_id)
        self.latency: PhysicsLatency | None = None
        if is_on(settings.latency):  # at the physics step: a template task steps its own worlds (`BatchedTask`)
            task = getattr(u, "task", None)
            if not all(hasattr(task, f) for f in ("worlds", "frame_skip", "ctrl", "latency")):
                raise UserError(f"latency delays servo targets at the physics step of a template task (legged:, "
                                f"reach:); task {task_id!r} steps its physics itself (action_delay delays whole "
                                "control steps)")
            self.latency = task.latency = PhysicsLatency(1, m.nu, task.frame_skip,
                                                         latency_steps(settings, m.opt.timestep)[1])
        self._model = m
        self._nominal = nominal_parameters(m)
        self.factors: dict[str, np.ndarray] = {}
        self._rng = np.random.default_rng()

    def randomize(self) -> None:
        self.factors = randomize_model(self._model, self._nominal, self.settings, self._rng, self._base)

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:  # its own stream, reproducible from the reset seed
            self._rng = np.random.default_rng([int(kwargs["seed"]), MODEL_STREAM])
        self.randomize()
        out = self.env.reset(**kwargs)
        if self.latency is not None:  # the servos held the targets the reset set
            self.latency.start([0], self.env.unwrapped.task.ctrl[:1], self.factors["latency"])
        return out

    def close(self) -> None:
        restore_nominal(self._model, self._nominal)
        super().close()


class ObservationNoise(gym.ObservationWrapper):
    """Gaussian noise of `std` on every element and uniform noise in +- `scales` (per element), drawn at every reset
    and step (`draw_noise`)."""

    def __init__(self, env: gym.Env, std: float, scales: np.ndarray | None = None):
        super().__init__(env)
        self.std, self.scales = std, scales
        self._rng = np.random.default_rng()

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:
            self._rng = np.random.default_rng([int(kwargs["seed"]), NOISE_STREAM])
        return super().reset(**kwargs)

    def observation(self, observation):
        noise = draw_noise(self._rng, np.shape(observation), self.std, self.scales)
        return (observation + noise).astype(observation.dtype)


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
    if settings.randomizes:
        env = DomainRandomization(env, settings)
    if settings.action_delay:
        env = ActionDelay(env, settings.action_delay)
    if settings.obs_noise or settings.sensor_noise:
        scales = None
        if settings.sensor_noise:
            task_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            try:
                elements = env.get_wrapper_attr("task_spec").observation
            except AttributeError:  # a plain Gymnasium task: elements without kinds
                elements = ()
            scales = noise_scales(elements, settings.sensor_noise, task_id)
        env = ObservationNoise(env, settings.obs_noise, scales)
    return env


class WorldsSim2Real:
    """The sim-to-real settings applied to the N worlds of a batched template task (`robotrl.envs.legged.
    LeggedVelocityTask`, ...), as arrays over the worlds; it has the task's API (`seed`, `reset`, `apply`,
    `simulate`, `finish`, `step`, `observe`, and the task's attributes), so `robotrl.envs.vector.TaskVectorEnv` and
    batched evaluation step it as they step the task.

    World i gives the numbers that ``make(task_id, sim2real=settings)`` (one env in the wrappers above) gives when
    reset with world i's seed: domain randomisation re-draws world i's own model copy (`Worlds.own_models`) at each
    of its resets from world i's stream, with `randomize_model`, and its latency with it (the task's physics step
    takes its controls from `PhysicsLatency`, as the wrapped env's does); the action-delay queue of each world starts
    an episode filled with its first action; observation noise is drawn once per world at each step and each reset
    from world i's stream (`observe` adds the last draw, so it may be called again without drawing). `close` puts the
    nominal parameters back into every world's model.
    """

    def __init__(self, task: Any, settings: Sim2Real):
        self.task, self.settings = task, settings
        n, s = task.num_worlds, settings
        task_id = task.task_spec.task_id
        model = task.worlds.model
        self._base = getattr(task, "base_body", None)  # a legged template's floating base
        check_for_model(s, model, self._base, task_id)
        self.models = task.worlds.own_models() if s.randomizes else []
        """world i's model (its copy, re-drawn at each of its resets) where domain randomisation is on"""
        self._nominal = nominal_parameters(model) if s.randomizes else {}
        self.factors: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
        """world i's draws of its current episode, by name (see `randomize_model`)"""
        self.latency: PhysicsLatency | None = None
        if is_on(s.latency):  # the task's physics step takes a control per physics step from it
            self.latency = task.latency = PhysicsLatency(n, model.nu, task.frame_skip,
                                                         latency_steps(s, model.opt.timestep)[1])
        self._model_rngs = [np.random.default_rng() for _ in range(n)]
        self._noise_rngs = [np.random.default_rng() for _ in range(n)]
        self._noise = np.zeros((n, task.obs_dim))
        self._scales = noise_scales(task.task_spec.observation, s.sensor_noise, task_id) if s.sensor_noise else None
        self._noisy_obs = bool(s.obs_noise or s.sensor_noise)
        k = s.action_delay
        self._queue = np.zeros((n, k + 1, len(task.low)))  # a ring over the last k + 1 actions of every world
        self._head = 0
        self._fresh = np.ones(n, dtype=bool)  # worlds whose episode has had no action yet

    def __getattr__(self, name: str) -> Any:  # the task's own attributes (robot, task_spec, worlds, set_command, ...)
        if name.startswith("__") or name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)

    def seed(self, worlds: Any, seeds: list[int | None]) -> None:
        """Seed the task's worlds and their randomisation and noise streams (a None seed leaves world i's alone)."""
        self.task.seed(worlds, seeds)
        for i, seed in zip(worlds, seeds, strict=True):
            if seed is not None:
                self._model_rngs[i] = np.random.default_rng([int(seed), MODEL_STREAM])
                self._noise_rngs[i] = np.random.default_rng([int(seed), NOISE_STREAM])

    def reset(self, worlds: Any) -> None:
        """New episodes in `worlds`: their models (and latencies) re-drawn, then the task's reset, their servos
        holding the targets it set, their delay queues emptied and fresh observation noise drawn."""
        worlds = np.asarray(worlds, dtype=np.intp).reshape(-1)
        for i in worlds if self.settings.randomizes else ():
            self.factors[i] = randomize_model(self.models[i], self._nominal, self.settings, self._model_rngs[i],
                                              self._base)
        self.task.reset(worlds)
        if self.latency is not None:
            self.latency.start(worlds, self.task.ctrl[worlds], [self.factors[i]["latency"][0] for i in worlds])
        self._fresh[worlds] = True
        self._draw_noise(worlds)

    def apply(self, actions: np.ndarray) -> None:
        """Hand the task every world's action of `action_delay` steps ago (``actions [N, n]`` are this step's)."""
        self.task.apply(self._delayed(actions) if self.settings.action_delay else actions)

    def _delayed(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float64).reshape(self._queue.shape[0], -1)
        if self._fresh.any():  # an episode's first action: it fills the world's queue
            self._queue[self._fresh] = a[self._fresh, None, :]
            self._fresh[:] = False
        self._queue[:, self._head] = a
        self._head = (self._head + 1) % self._queue.shape[1]
        return self._queue[:, self._head].copy()  # written k steps ago (or this episode's first action)

    def simulate(self) -> None:
        self.task.simulate()

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """The task's `finish`, with each world's observation noise of this step drawn and added."""
        obs, reward, terminated, truncated, info = self.task.finish()
        self._draw_noise(np.arange(self.task.num_worlds))
        return self._noisy(obs), reward, terminated, truncated, info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.apply(actions)
        self.simulate()
        return self.finish()

    def _draw_noise(self, worlds: np.ndarray) -> None:
        if self._noisy_obs:
            for i in worlds:
                self._noise[i] = draw_noise(self._noise_rngs[i], self._noise.shape[1], self.settings.obs_noise,
                                            self._scales)

    def observe(self) -> np.ndarray:
        """The task's observation of every world ``[N, obs_dim]`` plus the noise drawn at its last step or reset."""
        return self._noisy(self.task.observe())

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        return obs + self._noise if self._noisy_obs else obs

    def close(self) -> None:
        """Close the task; every world's model is the nominal one again."""
        for m in self.models:
            restore_nominal(m, self._nominal)
        self.task.close()


def batched(task: Any, settings: Sim2Real) -> Any | None:
    """`task` (a batched template task) with the sim-to-real `settings` applied as `WorldsSim2Real` does; `task` itself
    when none is on; None where the task has no split step (`apply`, `simulate`, `finish`) or keeps no `Worlds` that
    domain randomisation could give models of their own."""
    if not settings.enabled:
        return task
    if not all(hasattr(task, f) for f in ("apply", "simulate", "finish")) or (
            settings.randomizes and not hasattr(task, "worlds")):
        return None
    return WorldsSim2Real(task, settings)
