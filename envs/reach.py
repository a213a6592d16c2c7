"""Arm reaching: the task template that turns any fixed-base arm (`envs.robot.Robot` with an
``end_effector``) into a reaching task; our own arm (`robotrl/ArmReach-v0`, `envs.arm`) is one.

    env = ReachEnv(Robot.load("my_arm.toml", "reach"))        # or: robotrl train ppo reach:my_arm.toml
    task = ReachTask(Robot.load("my_arm.toml", "reach"), num_worlds=32)   # the same task over 32 worlds

Observation (n = actuated joints): joint positions (n, rad or m), joint velocities (n), the goal
(x, y, z in the world frame, m) and the end effector minus the goal (x, y, z, m): the elements of our
arm's card, so the robot side needs nothing new (a goal on ``/goal``, the end effector from TF on
``/points/NAME``).

Action (n): joint position targets for the PD servos, in [default - action_scale, default +
action_scale] where the config gives a scale, else the joint's range.

Goals come from forward kinematics of random joint positions, so every goal is reachable: each joint
uniform over its ``goal_ranges`` entry where it has one, else over ``goal_fraction`` of its action range
around the home pose (the default); a goal lower than ``min_goal_height`` is drawn again (up to 100
times). The episode starts at rest at the home pose plus uniform noise of ``reset_noise`` (none drawn
when it is 0), with ``payload`` kg added to the end effector's body (the servos sag under it).

Reward per step, the registered terms (`TERMS`) weighted by the settings, each in
``info["reward_terms"]`` and as ``info["reward_distance"]`` / ``info["reward_velocity"]``:
``-distance_weight * |ee - goal| - velocity_weight * |qvel|^2``. ``info["is_success"]``: within
``tolerance`` at this step (evaluation counts the episode's last step: reached and held). Episodes are
truncated after ``episode_steps``; they never terminate.

`ReachTask` runs the template over N worlds (`envs.worlds.Worlds`: MuJoCo's threaded rollout), with
numpy over ``[N, ...]`` arrays for goals, observations and rewards and a random generator per world;
`ReachEnv` is one world of it behind Gymnasium's API. The end effector's position after a step comes
from a frame-position sensor of the state reached (``Worlds(sense_reached=True)``); goals and the
position at a reset from `mj_kinematics` on one scratch `MjData` (resets are one step in
``episode_steps``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding

from robotrl.envs.robot import MAX_EPISODE_PHYSICS_STEPS, Robot
from robotrl.envs.robot_config import RobotConfigError
from robotrl.envs.templates.reach import GOAL_BODY
from robotrl.envs.terms import Terms
from robotrl.envs.worlds import BatchedTask, Worlds, add_frame_position_sensor, sensor_columns
from robotrl.kinds import sim_observer
from robotrl.spec import ActElement, ObsElement, TaskSpec

GOAL_TRIES = 100  # draws of a goal above min_goal_height before the last one is taken

# ---- reward terms: functions of the step's quantities `s` (arrays over the worlds), see `ReachTask.step`. Weights
# are per control step (the task evaluates them with dt = 1); the settings distance_weight and velocity_weight are
# their sizes.
TERMS = Terms("reach")


@TERMS.term(weight=-1.0, doc="distance from the end effector to the goal [m]")
def distance(s: Any) -> np.ndarray:
    return s.distance


@TERMS.term(weight=-1e-3, doc="joint velocities squared, summed [rad^2/s^2 or m^2/s^2]")
def velocity(s: Any) -> np.ndarray:
    return squared_norms(s.qvel)


def squared_norms(x: np.ndarray) -> np.ndarray:
    """``sum_j x[:, j]^2`` for ``x [N, k]``, added column by column: the same arithmetic for any N and any row's place
    in memory (BLAS's dot, as ``x @ x`` or `np.linalg.norm` use it, adds in an order that depends on the row's
    alignment; these sums differ from it by rounding, about 1e-16 relative)."""
    out = x[:, 0] * x[:, 0]
    for j in range(1, x.shape[1]):
        out = out + x[:, j] * x[:, j]
    return out


class ReachTask(BatchedTask):
    """The reach template over `num_worlds` worlds: arrays in, arrays out (see the module docstring).

    `reset(worlds)` starts new episodes in the given worlds; `step(actions [N, n])` returns ``obs [N, 2n + 6],
    reward [N], terminated [N], truncated [N], info`` with every reward term as an array over the worlds in
    ``info["reward_terms"]``, and ``info["distance"]``, ``info["is_success"]``. Each world draws from its own random
    generator (`seed`), so a world of a batch gives the numbers a single world seeded alike gives."""

    def __init__(self, robot: Robot | str, *, num_worlds: int = 1, threads: int | None = None,
                 task_id: str = "reach", episode_steps: int = 100, goal_fraction: float = 0.6,
                 min_goal_height: float = 0.05, reset_noise: float = 0.0, tolerance: float = 0.05,
                 distance_weight: float = 1.0, velocity_weight: float = 1e-3,
                 goal_ranges: dict[str, Any] | None = None, payload: float = 0.0):
        self.robot = robot if isinstance(robot, Robot) else Robot.load(robot, "reach")
        r = self.robot
        self.frame_skip = r.config.decimation
        self.dt = r.control_period
        self._check(episode_steps, goal_fraction, min_goal_height, reset_noise, tolerance, distance_weight,
                    velocity_weight, payload)
        self.max_steps = int(episode_steps)
        self.goal_fraction, self.min_goal_height = goal_fraction, min_goal_height
        self.reset_noise, self.tolerance, self.payload = reset_noise, tolerance, payload
        self.weights = TERMS.weights({"distance": -float(distance_weight), "velocity": -float(velocity_weight)})
        self.low, self.high = r.action_low, r.action_high
        self.goal_ranges = self._goal_ranges(goal_ranges)
        self._goal_low, self._goal_high = self._goal_bounds()
        self._settings = {  # recorded in the spec: a [reach] table edited after training is noticed
            "episode_steps": self.max_steps, "goal_fraction": float(goal_fraction),
            "min_goal_height": float(min_goal_height), "reset_noise": float(reset_noise),
            "tolerance": float(tolerance), "distance_weight": float(distance_weight),
            "velocity_weight": float(velocity_weight),
            "goal_ranges": {j: list(v) for j, v in self.goal_ranges.items()}, "payload": float(payload)}

        self.model = m = self._model_with_sensor()
        self._qa, self._va, self._act = r.qpos_adr, r.dof_adr, r.actuator
        ee = r.config.end_effector
        self._ee_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, ee)
        self._ee_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, ee) if self._ee_site < 0 else -1
        self._goal_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, GOAL_BODY)
        self._mocap = int(m.body_mocapid[self._goal_body])
        self._ee_cols = sensor_columns(m, ["robotrl_ee"])
        self._scratch = mujoco.MjData(m)
        self._add_payload()
        n = len(r.joints)
        self.obs_dim = 2 * n + 6
        self.task_spec = self._spec(task_id)
        highest = max(self._goal_heights(np.random.default_rng(0), 1000))
        if highest <= min_goal_height:  # else every goal would be the 100th try's, below the floor asked for
            raise ValueError(f"min_goal_height {min_goal_height:g} m is above every goal: over the goal ranges the "
                             f"end effector reaches at most {highest:.3g} m")

        N = self.num_worlds = int(num_worlds)
        self.worlds = Worlds(m, N, threads=threads, sense_reached=True)
        self.ctrl = np.zeros((N, m.nu))
        self.t = np.zeros(N, dtype=np.int64)
        self.rngs = [seeding.np_random(None)[0] for _ in range(N)]
        # positions the observation reads, [N, nbody or nsite, 3]: only the goal's and the end effector's rows are used
        self._xpos = np.zeros((N, m.nbody, 3))
        self._site_xpos = np.zeros((N, max(m.nsite, 1), 3))
        self.goal = self._xpos[:, self._goal_body]
        """the goals ``[N, 3]`` (a view: the observation reads it)"""
        self.ee = self._site_xpos[:, self._ee_site] if self._ee_site >= 0 else self._xpos[:, self._ee_body]
        """the end effectors' positions ``[N, 3]`` (a view)"""
        self._observer = sim_observer(m, self.task_spec.observation)
        self._frame = SimpleNamespace(qpos=self.worlds.qpos, qvel=self.worlds.qvel, xpos=self._xpos,
                                      site_xpos=self._site_xpos)

    def _check(self, episode_steps: int, goal_fraction: float, min_goal_height: float, reset_noise: float,
               tolerance: float, distance_weight: float, velocity_weight: float, payload: float) -> None:
        checks = {"episode_steps must be a whole number from 1 to 100,000 (evaluation runs whole episodes)":
                  float(episode_steps).is_integer() and 1 <= episode_steps <= 10**5,
                  f"episode_steps must be at most {MAX_EPISODE_PHYSICS_STEPS // self.frame_skip:,} at decimation "
                  f"{self.frame_skip} ({MAX_EPISODE_PHYSICS_STEPS:,} physics steps; evaluation runs whole episodes)":
                      episode_steps * self.frame_skip <= MAX_EPISODE_PHYSICS_STEPS,
                  "goal_fraction must be in [0, 1]": 0 <= goal_fraction <= 1,
                  "reset_noise must be >= 0": reset_noise >= 0,
                  "reset_noise must be at most pi (rad, or m for a slide joint)": reset_noise <= math.pi,
                  "tolerance must be positive": tolerance > 0, "tolerance must be at most 10 m": tolerance <= 10,
                  "min_goal_height must be in [-100, 100] m": -100 <= min_goal_height <= 100,
                  "distance_weight must be >= 0": distance_weight >= 0,
                  "velocity_weight must be >= 0": velocity_weight >= 0,
                  "distance_weight and velocity_weight must be at most 1e6":
                      max(distance_weight, velocity_weight) <= 1e6,
                  "payload must be in [0, 1000] kg": 0 <= payload <= 1000}
        for what, ok in checks.items():
            if not ok:
                raise ValueError(what)

    def _goal_ranges(self, given: dict[str, Any] | None) -> dict[str, tuple[float, float]]:
        """`goal_ranges` checked: actuated joints, each [low, high] within its action range."""
        r, out = self.robot, {}
        for j, v in (given or {}).items():
            if j not in r.joints:
                raise ValueError(f"goal_ranges names {j!r}, which is not an actuated joint ({', '.join(r.joints)})")
            k = r.joints.index(j)
            ok = (isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int | float)
                  and not isinstance(x, bool) and math.isfinite(x) for x in v) and v[0] <= v[1])
            if not ok:
                raise ValueError(f"goal_ranges.{j} must be [low, high] with low <= high, got {v!r}")
            if v[0] < self.low[k] or v[1] > self.high[k]:
                raise ValueError(f"goal_ranges.{j} [{v[0]:g}, {v[1]:g}] must lie within its action range "
                                 f"[{self.low[k]:g}, {self.high[k]:g}]")
            out[j] = (float(v[0]), float(v[1]))
        return out

    def _goal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.robot
        lo = r.default - self.goal_fraction * (r.default - self.low)
        hi = r.default + self.goal_fraction * (self.high - r.default)
        for j, (a, b) in self.goal_ranges.items():
            k = r.joints.index(j)
            lo[k], hi[k] = a, b
        return lo, hi

    def _model_with_sensor(self) -> mujoco.MjModel:
        """The robot's model with a frame-position sensor on the end effector (a site, or a body's frame)."""
        r = self.robot
        spec = r.spec.copy()
        ee = r.config.end_effector
        site = mujoco.mj_name2id(r.model, mujoco.mjtObj.mjOBJ_SITE, ee) >= 0
        add_frame_position_sensor(spec, "robotrl_ee", (mujoco.mjtObj.mjOBJ_SITE if site else mujoco.mjtObj.mjOBJ_XBODY,
                                                       ee))
        return spec.compile()

    def _add_payload(self) -> None:
        """`payload` kg more on the end effector's body (its inertia as it was), MuJoCo's derived constants
        recomputed."""
        if self.payload == 0:
            return
        m = self.model
        body = int(m.site_bodyid[self._ee_site]) if self._ee_site >= 0 else self._ee_body
        if body == 0:
            raise RobotConfigError(f"{self.robot.config.where}: the end effector is fixed to the world: a payload "
                                   "there moves nothing")
        m.body_mass[body] += self.payload
        mujoco.mj_setConst(m, self._scratch)

    # the spec ----------------------------------------------------------------------------------------
    def _spec(self, task_id: str) -> TaskSpec:
        r, m = self.robot, self.model
        units = ["rad" if int(m.jnt_type[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)])
                 == int(mujoco.mjtJoint.mjJNT_HINGE) else "m" for j in r.joints]
        ee = r.config.end_effector
        obs = [ObsElement("joint_pos", j, u) for j, u in zip(r.joints, units, strict=True)]
        obs += [ObsElement("joint_vel", j, u + "/s") for j, u in zip(r.joints, units, strict=True)]
        obs += [ObsElement("goal", GOAL_BODY, "m", axis=a, frame="world") for a in "xyz"]
        obs += [ObsElement("body_pos", ee, "m", axis=a, frame=GOAL_BODY) for a in "xyz"]
        act = [ActElement(j, "position", float(lo), float(hi), u)
               for j, lo, hi, u in zip(r.joints, self.low, self.high, units, strict=True)]
        ranges = {j: (float(a), float(b)) for j, (a, b), lim in zip(r.joints, r.range, r.limited, strict=True) if lim}
        extras = {"robot": {"template": "reach", "end_effector": ee,
                            "default_pose": dict(zip(r.joints, r.default.tolist(), strict=True)),
                            "kp": r.kp.tolist(), "kd": r.kd.tolist(),
                            "effort_limit": [float(x) for x in r.effort_limit],
                            "physics_timestep": float(m.opt.timestep), "decimation": self.frame_skip,
                            "settings": self._settings,
                            "physics_parts": r.physics_parts(), "physics": r.physics_fingerprint()}}
        return TaskSpec(task_id=task_id, observation=tuple(obs), action=tuple(act), control_period=self.dt,
                        frame_skip=self.frame_skip, max_episode_steps=self.max_steps, deployable=True,
                        extras=extras, joint_ranges=ranges)

    # goals -------------------------------------------------------------------------------------------
    def _fk(self, qpos: np.ndarray) -> np.ndarray:
        """The end effector's position at the joint positions `qpos` (a whole ``[nq]`` vector)."""
        d = self._scratch
        d.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, d)
        return (d.site_xpos[self._ee_site] if self._ee_site >= 0 else d.xpos[self._ee_body]).copy()

    def _draw_pose(self, rng: np.random.Generator, qpos: np.ndarray) -> np.ndarray:
        """`qpos` with the actuated joints drawn from the goal ranges (a joint whose range is one value is not
        drawn)."""
        q = qpos.copy()
        lo, hi = self._goal_low, self._goal_high
        free = hi > lo
        arm = lo.copy()
        arm[free] = rng.uniform(lo[free], hi[free])
        q[self._qa] = arm
        return q

    def _goal_heights(self, rng: np.random.Generator, n: int) -> list[float]:
        """Heights of the end effector at `n` random joint positions of the goal ranges (a check at start-up)."""
        rest = self.model.qpos0.copy()
        return [float(self._fk(self._draw_pose(rng, rest))[2]) for _ in range(n)]

    def _sample_goal(self, rng: np.random.Generator, qpos: np.ndarray) -> np.ndarray:
        for _ in range(GOAL_TRIES):
            goal = self._fk(self._draw_pose(rng, qpos))
            if goal[2] > self.min_goal_height:
                return goal
        return goal

    # episodes ----------------------------------------------------------------------------------------
    def seed(self, worlds: np.ndarray | list[int] | range, seeds: list[int | None]) -> None:
        """A new random generator for each world whose seed is not None (Gymnasium's, as `Env.reset(seed=)`)."""
        for i, s in zip(worlds, seeds, strict=True):
            if s is not None:
                self.rngs[i] = seeding.np_random(int(s))[0]

    def reset(self, worlds: np.ndarray | list[int]) -> None:
        """New episodes in `worlds`: at rest at the home pose (plus reset_noise), a new goal."""
        w, r = self.worlds, self.robot
        for i in worlds:
            rng = self.rngs[i]
            q = r.default.copy()
            if self.reset_noise > 0:
                q = q + rng.uniform(-self.reset_noise, self.reset_noise, len(self._qa))
            q = np.clip(q, self.low, self.high)
            w.state[i] = w.initial
            w.qpos[i, self._qa] = q
            self.ee[i] = self._fk(w.qpos[i])
            self.goal[i] = self._sample_goal(rng, w.qpos[i])  # last: the scratch keeps the goal's joint positions
            self.t[i] = 0
            self.ctrl[i] = 0.0
            self.ctrl[i, self._act] = q

    # stepping ----------------------------------------------------------------------------------------
    def observe(self) -> np.ndarray:
        """The observation of every world ``[N, 2n + 6]`` (the module docstring's), each element computed as its
        kind says (`robotrl.kinds`)."""
        return self._observer(self._frame)

    def apply(self, actions: np.ndarray) -> None:
        """Set the servo targets of every world from ``actions [N, n]`` (clipped to the action bounds)."""
        N = self.num_worlds
        self.ctrl[:, self._act] = np.clip(np.asarray(actions, dtype=np.float64).reshape(N, -1), self.low, self.high)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Observations, rewards, success and the episode clock after `simulate`."""
        w, N = self.worlds, self.num_worlds
        self.stop_if_diverged()
        self.t += 1
        self.ee[:] = w.sensordata[:, self._ee_cols]
        obs = self.observe()
        dist = np.sqrt(squared_norms(obs[:, -3:]))  # |end effector - goal|
        s = SimpleNamespace(n=N, distance=dist, qvel=w.qvel[:, self._va])
        terms = TERMS.evaluate(s, self.weights, 1.0)
        reward = np.zeros(N)
        for v in terms.values():
            reward = reward + v
        info = {"reward_terms": terms, "distance": dist, "is_success": dist < self.tolerance}
        return obs, reward, np.zeros(N, dtype=bool), self.t >= self.max_steps, info


class ReachEnv(gym.Env):
    """One world of `ReachTask` behind Gymnasium's API (evaluation, videos, the simulated robot, check_env).

    The keyword arguments are the task's. `data` holds the world's current state with its kinematics computed and
    the goal marker at the goal (for rendering and for readers of `MjData`); episodes are truncated by the
    TimeLimit that `make` wraps around (`max_steps`), not here."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012
    settings_class = ReachTask  # the [reach] table's keys are its keyword arguments
    batched = True  # one world of a batched task, which watches its own simulation for divergence

    def __init__(self, robot: Robot | str, *, render_mode: str | None = None, **settings: Any):
        self.task = t = ReachTask(robot, num_worlds=1, threads=0, **settings)
        self.robot, self.model, self.dt, self.frame_skip = t.robot, t.model, t.dt, t.frame_skip
        self.task_spec, self.max_steps, self.tolerance = t.task_spec, t.max_steps, t.tolerance
        self.low, self.high = t.low, t.high
        self._qa, self._va, self._act = t._qa, t._va, t._act
        self._ee_site, self._ee_body, self._goal_body, self._mocap = t._ee_site, t._ee_body, t._goal_body, t._mocap
        self._scratch = t._scratch  # after a reset: the joint positions the goal was drawn from
        self._data = mujoco.MjData(self.model)
        self._stale = True
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(t.low.astype(np.float32), t.high.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (t.obs_dim,), np.float64)
        self._renderer = None

    @property
    def goal(self) -> np.ndarray:
        return self.task.goal[0].copy()

    @goal.setter
    def goal(self, value: np.ndarray) -> None:
        self.task.goal[0] = value
        self._stale = True

    @property
    def data(self) -> mujoco.MjData:
        """The world's current state with its kinematics computed and the goal marker at the goal (copied from the
        task's arrays when asked for: training and evaluation do not need it at every step)."""
        if self._stale:
            self._data.mocap_pos[self._mocap] = self.task.goal[0]
            self._data.ctrl[:] = self.task.ctrl[0]
            self.task.worlds.load(0, self._data)
            self._stale = False
        return self._data

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.task.rngs[0] = self.np_random  # the task draws from the generator Gymnasium seeded
        self.task.reset([0])
        self._stale = True
        return self._observe(), {}

    def _observe(self) -> np.ndarray:
        return self.task.observe()[0]

    def step(self, action):
        obs, reward, _, _, info = self.task.step(np.asarray(action, dtype=np.float64)[None])
        self._stale = True
        terms = {k: float(v[0]) for k, v in info["reward_terms"].items()}
        info = {"distance": float(info["distance"][0]), "is_success": bool(info["is_success"][0]),
                "reward_distance": terms["distance"], "reward_velocity": terms["velocity"], "reward_terms": terms}
        return obs[0], float(reward[0]), False, False, info

    def render(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, 480, 640)
        self._renderer.update_scene(self.data)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.task.close()
