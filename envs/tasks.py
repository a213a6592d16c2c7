"""The joint-space task suite: Gymnasium's MuJoCo walkers and arms with every element named, and our
own arm. Registered with Gymnasium under the ``robotrl/`` namespace (``gymnasium.make("robotrl/Hopper-v5")``).

A walker task keeps the Gymnasium original's dynamics, observation and reward (returns stay
comparable with published figures) and changes one thing: actions are in robot units. Gymnasium's
motor actuators take a control in [-1, 1] that MuJoCo multiplies by the actuator's gear; here the
action *is* the joint torque in N m (bounds = gear x control range), so the policy card's action
bounds are what a robot's effort controller is sent. The wrapper divides by the gear before the
original env sees it, so the reward's control cost is unchanged.

Ant drops the contact forces (a robot cannot measure them) and so has 27 observations, not 105.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from robotrl.envs.robot import is_unstable
from robotrl.spec import ActElement, ObsElement, TaskSpec

_AX = ("x", "y", "z")


def _planar_walker(model: mujoco.MjModel, vel_clip: float | None) -> list[ObsElement]:
    """Hopper, Walker2d, HalfCheetah: qpos[1:] then qvel (rootx, rootz, rooty are the planar base)."""
    joints = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
    limbs = joints[3:]
    obs = [ObsElement("base_pos", "rootz", "m", axis="z", frame="world"),
           ObsElement("base_angle", "rooty", "rad", axis="y", frame="world")]
    obs += [ObsElement("joint_pos", j, "rad") for j in limbs]
    obs += [ObsElement("base_lin_vel", "rootx", "m/s", axis="x", frame="world", clip=vel_clip),
            ObsElement("base_lin_vel", "rootz", "m/s", axis="z", frame="world", clip=vel_clip),
            ObsElement("base_ang_vel", "rooty", "rad/s", axis="y", frame="world", clip=vel_clip)]
    obs += [ObsElement("joint_vel", j, "rad/s", clip=vel_clip) for j in limbs]
    return obs


def _ant(model: mujoco.MjModel) -> list[ObsElement]:
    """Ant without contact forces: qpos[2:] (height, quaternion, 8 joints) then qvel (14)."""
    joints = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(1, model.njnt)]
    obs = [ObsElement("base_pos", "root", "m", axis="z", frame="world")]
    obs += [ObsElement("base_quat", "root", "", axis=a, frame="world") for a in "wxyz"]
    obs += [ObsElement("joint_pos", j, "rad") for j in joints]
    obs += [ObsElement("base_lin_vel", "root", "m/s", axis=a, frame="world") for a in _AX]
    obs += [ObsElement("base_ang_vel", "root", "rad/s", axis=a, frame="base") for a in _AX]
    obs += [ObsElement("joint_vel", j, "rad/s") for j in joints]
    return obs


def _reacher(model: mujoco.MjModel) -> list[ObsElement]:
    """cos, sin of the two joints, target x y, joint velocities, fingertip - target (x, y)."""
    arm = ["joint0", "joint1"]
    return [*(ObsElement("joint_cos", j) for j in arm), *(ObsElement("joint_sin", j) for j in arm),
            ObsElement("goal", "target", "m", axis="x", frame="world"),
            ObsElement("goal", "target", "m", axis="y", frame="world"),
            *(ObsElement("joint_vel", j, "rad/s") for j in arm),
            ObsElement("body_pos", "fingertip", "m", axis="x", frame="target"),
            ObsElement("body_pos", "fingertip", "m", axis="y", frame="target")]


def _pusher(model: mujoco.MjModel) -> list[ObsElement]:
    """7 joint positions, 7 velocities, tip, object and goal positions (world x, y, z)."""
    arm = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(7)]
    return [*(ObsElement("joint_pos", j, "rad") for j in arm), *(ObsElement("joint_vel", j, "rad/s") for j in arm),
            *(ObsElement("body_pos", "tips_arm", "m", axis=a, frame="world") for a in _AX),
            *(ObsElement("object_pos", "object", "m", axis=a, frame="world") for a in _AX),
            *(ObsElement("goal", "goal", "m", axis=a, frame="world") for a in _AX)]


def actuator_elements(model: mujoco.MjModel) -> tuple[list[ActElement], np.ndarray]:
    """One action element per actuator, in robot units, and the per-actuator factor from robot units
    to MuJoCo's ``ctrl`` (1 / gear for motors, 1 for position servos)."""
    acts, to_ctrl = [], []
    for i in range(model.nu):
        joint = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[i, 0]))
        lo, hi = (float(x) for x in model.actuator_ctrlrange[i])
        gain_type, bias_type = int(model.actuator_gaintype[i]), int(model.actuator_biastype[i])
        is_position = bias_type == int(mujoco.mjtBias.mjBIAS_AFFINE) and model.actuator_biasprm[i, 1] != 0
        if is_position:
            acts.append(ActElement(joint, "position", lo, hi, "rad"))
            to_ctrl.append(1.0)
        elif gain_type == int(mujoco.mjtGain.mjGAIN_FIXED) and bias_type == int(mujoco.mjtBias.mjBIAS_NONE):
            gear = float(model.actuator_gear[i, 0]) * float(model.actuator_gainprm[i, 0])
            unit = "N m" if int(model.jnt_type[model.actuator_trnid[i, 0]]) == int(mujoco.mjtJoint.mjJNT_HINGE) else "N"
            acts.append(ActElement(joint, "effort", lo * gear, hi * gear, unit))
            to_ctrl.append(1.0 / gear)
        else:
            raise ValueError(f"actuator {i} of the model is neither a motor nor a position servo")
    return acts, np.asarray(to_ctrl)


def joint_ranges(model: mujoco.MjModel, observation: Any, action: Any) -> dict[str, tuple[float, float]]:
    """The model's range of every limited hinge/slide joint that the observation or action names."""
    names = {e.name for e in observation if e.kind.startswith("joint_")} | {a.joint for a in action}
    out = {}
    for name in sorted(names):
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if j < 0 or not model.jnt_limited[j]:
            continue
        if int(model.jnt_type[j]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            continue
        lo, hi = (float(x) for x in model.jnt_range[j])
        if lo < hi:
            out[name] = (lo, hi)
    return out


@dataclass(frozen=True)
class TaskDef:
    """How a robotrl task is made from a Gymnasium env (or our own)."""

    task_id: str
    entry: Any  # the Gymnasium id it wraps, or a callable making our own env
    summary: str
    observation: Any  # model -> list[ObsElement]
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None


class JointSpaceEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Actions in robot units (see the module docstring); ``env.get_wrapper_attr("task_spec")`` is the spec."""

    def __init__(self, env: gym.Env, spec: TaskSpec, to_ctrl: np.ndarray):
        to_ctrl = np.asarray(to_ctrl, dtype=np.float64)
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec, to_ctrl=tuple(to_ctrl.tolist()))
        gym.Wrapper.__init__(self, env)
        self.task_spec = spec
        self._to_ctrl = to_ctrl
        self.action_space = gym.spaces.Box(np.asarray(spec.action_low, dtype=np.float32),
                                           np.asarray(spec.action_high, dtype=np.float32), dtype=np.float32)

    def step(self, action):
        ctrl = np.asarray(action, dtype=np.float64) * self._to_ctrl
        out = self.env.step(ctrl)
        u = self.env.unwrapped
        robot = getattr(u, "robot", None)  # a batched template stops on a divergence itself (`stop_if_diverged`)
        if robot is not None and not getattr(u, "batched", False) and is_unstable(u.data):
            self._unstable(robot)
        return out

    def _unstable(self, robot: Any) -> None:
        """A robot template's simulation diverged in an episode although the build-time probe passed: stop. MuJoCo
        has reset the state, so the episode goes on from a state the robot never had, and a policy trained on
        such steps (or a return measured on them) is not one to put on a robot; the fix is in the robot config."""
        from robotrl.errors import UserError

        text = robot.unstable(self.env.unwrapped.data, "; it resets the state, and training on that learns "
                              "nothing", "in an episode")
        raise UserError(f"{robot.config.where}: {text}")


def _build_spec(task_id: str, env: gym.Env, observation: Any, max_steps: int | None
                ) -> tuple[TaskSpec, np.ndarray]:
    base = env.unwrapped
    model = base.model
    obs = tuple(observation(model))
    acts, to_ctrl = actuator_elements(model)
    spec = TaskSpec(task_id=task_id, observation=obs, action=tuple(acts), control_period=float(base.dt),
                    frame_skip=int(base.frame_skip),
                    max_episode_steps=max_steps or (env.spec.max_episode_steps if env.spec is not None else None),
                    deployable=True, joint_ranges=joint_ranges(model, obs, acts))
    return spec, to_ctrl


def make_wrapped(tdef: TaskDef, **kwargs: Any) -> JointSpaceEnv:
    if isinstance(tdef.entry, str):
        env = gym.make(tdef.entry, disable_env_checker=True, **{**tdef.kwargs, **kwargs})
    else:
        inner = tdef.entry(**{**tdef.kwargs, **kwargs})
        env = gym.wrappers.TimeLimit(inner, tdef.max_episode_steps or getattr(inner, "max_steps", None))
    own = getattr(env.unwrapped, "task_spec", None)
    if isinstance(own, TaskSpec):  # a template env names its own elements, actions already in robot units
        return JointSpaceEnv(env, own, np.ones(own.act_dim))
    spec, to_ctrl = _build_spec(tdef.task_id, env, tdef.observation, tdef.max_episode_steps)
    return JointSpaceEnv(env, spec, to_ctrl)


TASKS: dict[str, TaskDef] = {}


def _add(tdef: TaskDef) -> None:
    TASKS[tdef.task_id] = tdef


_add(TaskDef("robotrl/Hopper-v5", "Hopper-v5", "one-legged planar hopper, torque control",
             lambda m: _planar_walker(m, 10.0)))
_add(TaskDef("robotrl/Walker2d-v5", "Walker2d-v5", "two-legged planar walker, torque control",
             lambda m: _planar_walker(m, 10.0)))
_add(TaskDef("robotrl/HalfCheetah-v5", "HalfCheetah-v5", "planar cheetah, torque control",
             lambda m: _planar_walker(m, None)))
_add(TaskDef("robotrl/Ant-v5", "Ant-v5", "four-legged ant without contact forces, torque control", _ant,
             kwargs={"include_cfrc_ext_in_observation": False}))
_add(TaskDef("robotrl/Reacher-v5", "Reacher-v5", "two-joint planar arm reaching a target, torque control",
             _reacher))
_add(TaskDef("robotrl/Pusher-v5", "Pusher-v5", "seven-joint arm pushing an object to a goal, torque control",
             _pusher))


QUADRUPED_CONFIG = Path(__file__).resolve().parent / "assets" / "quadruped.toml"
ARM_CONFIG = Path(__file__).resolve().parent / "assets" / "arm6.toml"  # our arm (envs/arm.py)
ARM_HARD_CONFIG = Path(__file__).resolve().parent / "assets" / "arm6_hard.toml"


_PROBED: dict[tuple, str | None] = {}  # `Robot.probe`'s answers by robot (its whole model, bounds, start)


def _probe_once(robot: Any, start: np.ndarray) -> str | None:
    """`robot.probe(start)`, once per robot and process: a vector env builds many copies of one robot, and the
    probe is most of a copy's build time (70 of 130 ms for our quadruped)."""
    saved = np.zeros(mujoco.mj_sizeModel(robot.model), np.uint8)  # the whole compiled model, every option
    mujoco.mj_saveModel(robot.model, None, saved)
    key = (hashlib.sha256(saved.tobytes()).hexdigest(), robot.config.decimation, robot.action_low.tobytes(),
           robot.action_high.tobytes(), start.tobytes())
    if key not in _PROBED:
        _PROBED[key] = robot.probe(start)
    return _PROBED[key]


def template_env(template: str, config: Any, task_id: str, **kwargs: Any) -> gym.Env:
    """The registered template's env for the robot `config` (a `RobotConfig`); every refusal a `RobotConfigError`
    naming the file and the field. `robotrl robot inspect` calls a template ready only when this succeeds."""
    Env = _template_env_class(template)
    return _build(template, config, Env, getattr(Env, "settings_class", Env), task_id=task_id, **kwargs)


def template_task(template: str, config: Any, task_id: str, num_worlds: int, **kwargs: Any) -> Any | None:
    """The template's batched task over `num_worlds` worlds for the robot `config` (refusals as `template_env`'s),
    or None where the template has no batched form."""
    task_class = getattr(_template_env_class(template), "settings_class", None)
    if task_class is None or not hasattr(task_class, "observe"):
        return None
    return _build(template, config, task_class, task_class, task_id=task_id, num_worlds=num_worlds, **kwargs)


def _build(template: str, config: Any, cls: type, settings_class: type, **kwargs: Any) -> Any:
    """`cls(robot, **settings, **kwargs)` for the robot `config`: the config's table of the template ([legged],
    ...) checked against the keywords of `settings_class`, a bad value a RobotConfigError naming the table, and the
    build-time stability probe."""
    from robotrl.envs.robot import Robot
    from robotrl.envs.robot_config import RobotConfigError

    robot = Robot(config, template)
    settings = config.template_settings(template, settings_class)
    try:
        built = cls(robot, **{**settings, **kwargs})
    except ValueError as e:
        raise RobotConfigError(f"{robot.config.where}: [{template}]: {e}") from None
    _refuse_unstable(robot, built)
    return built


def _refuse_unstable(robot: Any, env: Any) -> None:
    """The build-time stability probe of a template env or batched task (closed, and a RobotConfigError, when the
    simulation is unstable)."""
    from robotrl.envs.robot_config import RobotConfigError

    start = getattr(env, "_rest_qpos", None)  # legged: settled on the floor; reach: the home pose
    if start is None:
        start = robot.model.qpos0.copy()
        start[robot.qpos_adr] = robot.default
    unstable = _probe_once(robot, start)
    if unstable:
        env.close()
        raise RobotConfigError(f"{robot.config.where}: {unstable}")


def _template_env_class(template: str) -> type:
    """The env class of the registered template `template` (a RobotConfigError naming the known ones if none)."""
    from robotrl.envs import templates
    from robotrl.envs.robot_config import RobotConfigError

    entry = templates.find(template)
    if entry is None:
        raise RobotConfigError(f"unknown task template {template!r}; known: {', '.join(templates.names())}")
    return entry.load_env()


def robot_task(template: str, config: str | Path, task_id: str):
    """A callable making the template's env for the robot described by the config file `config`; its `template`
    and `config` attributes say which (`robotrl.envs.make_vector` builds the batched task from them)."""
    def make(**kwargs: Any) -> gym.Env:
        from robotrl.envs.robot_config import RobotConfig

        return template_env(template, RobotConfig.load(config), task_id, **kwargs)

    make.template, make.config = template, config  # type: ignore[attr-defined]
    return make


_add(TaskDef("robotrl/Quadruped-v0", robot_task("legged", QUADRUPED_CONFIG, "robotrl/Quadruped-v0"),
             "our 12-joint quadruped, joint position targets, follow a velocity command (vx, vy, yaw rate)",
             None))
_add(TaskDef("robotrl/ArmReach-v0", robot_task("reach", ARM_CONFIG, "robotrl/ArmReach-v0"),
             "our 6-joint arm, position servos, reach a goal in front (5 cm)", None))
_add(TaskDef("robotrl/ArmReachHard-v0", robot_task("reach", ARM_HARD_CONFIG, "robotrl/ArmReachHard-v0"),
             "the arm with a 0.5 kg payload, random start, goals all around, reach and hold within 2 cm", None))


def register() -> None:
    """Register every task with Gymnasium (idempotent)."""
    from functools import partial

    for task_id, tdef in TASKS.items():
        if task_id not in gym.registry:
            gym.register(id=task_id, entry_point=partial(make_wrapped, tdef), disable_env_checker=True)
