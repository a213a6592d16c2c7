"""N worlds of one MuJoCo model, stepped together: the physics of a batched task.

A template task (legged, reach) keeps the state of all its worlds in arrays, ``[N, nstate]`` in MuJoCo's
`mjSTATE_FULLPHYSICS` layout, and steps them with MuJoCo's threaded rollout (`mujoco.rollout`): one call per
control step advances every world by `nsub` physics steps in C threads, without the GIL and without a Python
loop over worlds. Everything a task reads after a step comes out of that call as arrays: ``qpos [N, nq]``,
``qvel [N, nv]`` (views into the state) and ``sensordata [N, nsensordata]`` of the last physics step. What
MuJoCo keeps only in `MjData` (contacts, actuator forces, frame positions) a task reads through sensors it adds
to the model (`add_sensor`): a contact sensor per foot, one for the base touching the ground, an actuator-force
sensor per servo. Sensors are computed at the start of a physics step, before integration, which is when
`MjData.contact` and `actuator_force` hold after `mj_step` too. A position (a frame-position sensor: the reach
template's end effector) is thus one physics step old; with ``sense_reached`` the rollout goes one physics step
further and drops that step, so that `sensordata` is of the state reached (what `mj_kinematics` of it gives, bit for
bit). That costs one physics step per control step (measured with our arm, 32 worlds, 10 physics steps per control
step: +10 % of the rollout's time; a Python loop of `mj_kinematics` over the worlds cost +5 %, on the GIL).

Why rollout rather than a loop of `mj_step` over N `MjData`: measured on this 2-core machine with our quadruped
(16 worlds, 4 physics steps per control step), threads calling `mj_step` from Python do not scale, while rollout
with two threads ran 1.37x the one-thread rate; with one thread it costs what the loop costs (60.5 against 59.4 us
per control step), and it leaves no per-world Python at all, which is what the task code on top needs. A GPU
backend (MuJoCo Warp) can provide the same arrays later.

Each control step starts the solver cold (rollout takes a warm start but returns none): a world's physics does not
depend on which batch it is stepped in, so a world of a batch and a single world given the same state and controls
step to the same numbers, bit for bit.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout

_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
_CTRL = int(mujoco.mjtState.mjSTATE_CTRL)


def default_threads(num_worlds: int) -> int:
    """Physics threads for `num_worlds` worlds: one per core this process may use, at most one per world; 0 (the
    calling thread) for a single world or a single core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    n = min(cores, num_worlds)
    return n if n > 1 else 0


class Worlds:
    """`n` worlds of `model`: state arrays and a threaded stepper.

    ``state[i]`` is world i's full physical state (time, qpos, qvel, act, ...); `qpos` and `qvel` are views into it.
    `step(ctrl, nsub)` advances every world by `nsub` physics steps with the controls ``ctrl [n, nu]`` held, and
    leaves the sensor values of the last physics step in `sensordata`.
    """

    def __init__(self, model: mujoco.MjModel, n: int, *, threads: int | None = None, sense_reached: bool = False):
        if n < 1:
            raise ValueError(f"the number of worlds must be at least 1, got {n}")
        self.model, self.n = model, n
        self.threads = default_threads(n) if threads is None else max(0, int(threads))
        self.nstate = mujoco.mj_stateSize(model, _STATE)
        self.state = np.zeros((n, self.nstate))
        data = mujoco.MjData(model)
        mujoco.mj_getState(model, data, self.state[0], _STATE)
        self.state[1:] = self.state[0]
        self.initial = self.state[0].copy()  # the model's initial state (qpos0, zero velocities)
        # the layout of mjSTATE_FULLPHYSICS: time, qpos, qvel, act, ...
        q0 = 1
        self.qpos = self.state[:, q0:q0 + model.nq]
        self.qvel = self.state[:, q0 + model.nq:q0 + model.nq + model.nv]
        self.sensordata = np.zeros((n, model.nsensordata))
        self._datas = [data] + [mujoco.MjData(model) for _ in range(max(self.threads, 1) - 1)]
        self._models = [model] * n
        self._rollout = rollout.Rollout(nthread=self.threads)
        self.diverged = np.zeros(n, dtype=bool)
        """after `step`: the worlds whose simulation became unstable in it (MuJoCo reset them)"""
        self.sense_reached = bool(sense_reached)
        """`sensordata` is of the state reached (one more physics step rolled out and dropped), not of the state
        one physics step before it"""
        self._out: np.ndarray | None = None
        self._sens: np.ndarray | None = None
        self._ctrl: np.ndarray | None = None

    def step(self, ctrl: np.ndarray, nsub: int) -> None:
        """Advance every world by `nsub` physics steps with ``ctrl [n, nu]`` held, or with ``ctrl [n, nsub, nu]``, a
        control per physics step (a latency: `robotrl.envs.sim2real.PhysicsLatency`, `robotrl.envs.perturb`)."""
        steps = nsub + self.sense_reached
        if self._out is None or self._out.shape[1] != steps:
            self._out = np.zeros((self.n, steps, self.nstate))
            self._sens = np.zeros((self.n, steps, self.model.nsensordata))
            self._ctrl = np.zeros((self.n, steps, self.model.nu))
        ctrl = np.asarray(ctrl, dtype=np.float64)
        if ctrl.ndim == 3:
            self._ctrl[:, :nsub] = ctrl
            self._ctrl[:, nsub:] = ctrl[:, -1:]  # the step rolled out and dropped (sense_reached)
        else:
            self._ctrl[:] = ctrl[:, None, :]
        t0 = self.state[:, 0].copy()
        self._rollout.rollout(self._models, self._datas, self.state, self._ctrl, control_spec=_CTRL, nstep=steps,
                              state=self._out, sensordata=self._sens, skip_checks=True)
        self.state[:] = self._out[:, nsub - 1]
        self.sensordata[:] = self._sens[:, -1]
        # MuJoCo resets a world whose simulation became unstable (NaN, Inf or huge accelerations) to its initial
        # state, clock included: its time did not advance by the steps rolled out
        dt = self.model.opt.timestep
        self.diverged = np.abs(self._out[:, -1, 0] - (t0 + steps * dt)) > 0.5 * dt

    def own_models(self) -> list[mujoco.MjModel]:
        """Give every world a copy of the model of its own (for parameters that differ between worlds: domain
        randomisation, `robotrl.envs.sim2real.WorldsSim2Real`) and return them, world i's at i. `model` stays the
        nominal one; the copies have its sizes, as rollout requires."""
        if all(m is self.model for m in self._models):
            self._models = [copy.copy(self.model) for _ in range(self.n)]
        return self._models

    def models(self) -> list[mujoco.MjModel]:
        """Every distinct model the worlds step with: `model`, or the worlds' own copies (`own_models`)."""
        seen: dict[int, mujoco.MjModel] = {id(self.model): self.model}
        for m in self._models:
            seen.setdefault(id(m), m)
        return list(seen.values())

    def load(self, i: int, data: mujoco.MjData) -> None:
        """Copy world i's state into `data` and compute its kinematics and sensors with world i's model (for
        rendering, or for a reader of `MjData`: the simulated robot)."""
        mujoco.mj_setState(self._models[i], data, self.state[i], _STATE)
        mujoco.mj_forward(self._models[i], data)

    def close(self) -> None:
        if self._rollout is not None:
            self._rollout.close()
            self._rollout = None


def add_contact_sensor(spec: mujoco.MjSpec, name: str, obj: tuple[mujoco.mjtObj, str],
                       other: tuple[mujoco.mjtObj, str] | None = None) -> None:
    """A sensor of one value: the number of contacts between `obj` (a body, geom, site or subtree) and `other`
    (None: anything), at most 1 (so > 0 means touching)."""
    s = spec.add_sensor()
    s.type, s.name = mujoco.mjtSensor.mjSENS_CONTACT, name
    s.objtype, s.objname = obj
    if other is not None:
        s.reftype, s.refname = other
    s.intprm[0] = 1 << int(mujoco.mjtConDataField.mjCONDATA_FOUND)  # data: found
    s.intprm[1] = 0  # reduce: none
    s.intprm[2] = 1  # num


def add_actuator_force_sensor(spec: mujoco.MjSpec, name: str, actuator: str) -> None:
    s = spec.add_sensor()
    s.type, s.name = mujoco.mjtSensor.mjSENS_ACTUATORFRC, name
    s.objtype, s.objname = mujoco.mjtObj.mjOBJ_ACTUATOR, actuator


def add_frame_position_sensor(spec: mujoco.MjSpec, name: str, obj: tuple[mujoco.mjtObj, str]) -> None:
    """A sensor of three values: the world position of a site (``mjOBJ_SITE``) or of a body's frame
    (``mjOBJ_XBODY``), as `site_xpos` / `xpos` hold it."""
    s = spec.add_sensor()
    s.type, s.name = mujoco.mjtSensor.mjSENS_FRAMEPOS, name
    s.objtype, s.objname = obj


def add_frame_velocity_sensor(spec: mujoco.MjSpec, name: str, obj: tuple[mujoco.mjtObj, str]) -> None:
    """A sensor of three values: the world-frame linear velocity of a site, geom or body frame (``mjOBJ_XBODY``)."""
    s = spec.add_sensor()
    s.type, s.name = mujoco.mjtSensor.mjSENS_FRAMELINVEL, name
    s.objtype, s.objname = obj


def sensor_columns(model: mujoco.MjModel, names: Sequence[str]) -> np.ndarray:
    """The columns of `sensordata` that the named sensors fill, in order."""
    cols = []
    for n in names:
        s = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, n)
        if s < 0:
            raise KeyError(f"the model has no sensor named {n!r}")
        adr, dim = int(model.sensor_adr[s]), int(model.sensor_dim[s])
        cols.extend(range(adr, adr + dim))
    return np.asarray(cols, dtype=np.intp)


class BatchedTask:
    """What a template's batched task (`LeggedVelocityTask`, `ReachTask`) shares: a step as `apply` (the task's: set
    the targets), `simulate` (the physics of every world) and `finish` (the task's: observations, rewards, ends), a
    stop where a world's simulation diverged, and `close`. The task sets `worlds`, `ctrl`, `frame_skip` and `robot`."""

    latency: Any = None
    """None, or a `robotrl.envs.sim2real.PhysicsLatency` that the sim-to-real layer sets: the controls of each physics
    step of `simulate` come from it (new servo targets k physics steps late)"""

    def step(self, actions: np.ndarray) -> tuple:
        """One control step of every world: `apply`, `simulate`, `finish`."""
        self.apply(actions)
        self.simulate()
        return self.finish()

    def simulate(self) -> None:
        """The physics of one control step (`frame_skip` physics steps of every world), between `apply` and `finish`
        (the sim-to-real layer, `robotrl.envs.sim2real.WorldsSim2Real`, works around each of the three)."""
        ctrl = self.ctrl if self.latency is None else self.latency.controls(self.ctrl)
        self.worlds.step(ctrl, self.frame_skip)

    def stop_if_diverged(self) -> None:
        """A world's simulation diverged in an episode although the build-time probe passed: stop (a
        RobotConfigError). MuJoCo has reset that world, so it would go on from a state the robot never had, and a
        policy trained on such steps (or a return measured on them) is not one to put on a robot."""
        if self.worlds.diverged.any():
            from robotrl.envs.robot_config import RobotConfigError

            raise RobotConfigError(f"{self.robot.config.where}: " + self.robot.instability(
                "; it resets the state, and training on that learns nothing", "in an episode"))

    def close(self) -> None:
        self.worlds.close()

