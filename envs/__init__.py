"""Tasks: Gymnasium environments plus the spec that names their observation and action elements.

    make(task_id, sim2real=None)  -> a Gymnasium env (any registered Gymnasium id, or a robotrl task)
    task_spec(task_id)            -> the task's `TaskSpec` (the policy card's source)
    EnvFactory(task_id)           -> picklable zero-argument callable for vector-env worker processes
    list_tasks()                  -> the robotrl task suite (`robotrl tasks`)
    Observer(model, elements)     -> recomputes observation elements from MuJoCo state by name

A user's robot is a task too: ``TEMPLATE:CONFIG.toml`` for each registered template
(`robotrl.envs.templates`), e.g. ``legged:my_robot.toml`` (velocity tracking, `robotrl.envs.legged`) or
``reach:my_arm.toml`` (`robotrl.envs.reach`), built from the MJCF model and robot config
(`robotrl.envs.robot_config`, `robotrl.envs.robot`).

The suite (`robotrl/Hopper-v5`, ..., `robotrl/ArmReach-v0`) is registered with Gymnasium on import:
every observation and action element is named (see `robotrl.envs.tasks`). A plain Gymnasium id
gets a generic spec: elements named by index, kind "obs", not deployable on a robot.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from robotrl.envs.observation import Observer
from robotrl.envs.sim2real import Sim2Real
from robotrl.envs.tasks import TASKS, register
from robotrl.errors import UserError
from robotrl.spec import ActElement, ObsElement, TaskSpec

__all__ = ["TASKS", "EnvFactory", "Observer", "Sim2Real", "canonical_task", "check_task", "list_tasks", "make",
           "make_vector", "task_spec", "task_template"]


def _quiet_known_mujoco_warnings() -> None:
    """MuJoCo >= 4 warns at every load of Gymnasium's half_cheetah.xml that `settotalmass` is
    deprecated: nothing a user can act on, printed once per env. Drop that one message, and MuJoCo's
    "simulation is unstable" (it comes once per episode, with the time: 45 lines in a short run; a robot
    template says it in one line of its own and stops, see `robotrl.envs.robot.Robot.probe`); pass every
    other MuJoCo warning on, once per kind (its numbers aside), through Python's `warnings`."""
    import re
    import warnings

    import mujoco

    if mujoco.get_mju_user_warning() is not None:  # someone else installed a handler: leave it
        return
    seen: set[str] = set()

    def handler(msg: str) -> None:
        if "settotalmass" in msg or msg.startswith(UNSTABLE):
            return
        key = re.sub(r"-?\d[\d.e+-]*", "#", msg)  # "... at DOF 3 ... Time = 0.5500.": once per kind, not per time
        if key in seen:
            return
        seen.add(key)
        warnings.warn(f"MuJoCo: {msg}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)


UNSTABLE = "Nan, Inf or huge value in"  # MuJoCo's words for mjWARN_BADQPOS, BADQVEL, BADQACC (and BADCTRL)
_quiet_known_mujoco_warnings()
register()


def _known_ids() -> list[str]:
    return sorted(gym.registry.keys())


def robot_task_parts(task_id: str) -> tuple[str, str] | None:
    """``TEMPLATE:PATH.toml`` (``legged:my_robot.toml``) -> (template, path) for a registered template; anything
    else -> None."""
    from robotrl.envs import templates

    head, sep, tail = task_id.partition(":")
    return (head, tail) if sep and templates.find(head) is not None else None


def task_template(task_id: str) -> Any | None:
    """The template (`robotrl.envs.templates.Template`) a task is made with: ``legged:my_robot.toml``'s, or a suite
    task's (``robotrl/Quadruped-v0``: legged); None for any other task."""
    from robotrl.envs import templates

    parts = robot_task_parts(task_id)
    entry = TASKS[task_id].entry if task_id in TASKS else None
    name = parts[0] if parts is not None else getattr(entry, "template", None)
    return templates.find(name) if name is not None else None


def canonical_task(task_id: str) -> str:
    """The id to store in a run: a robot config's path made absolute, so eval and resume work from anywhere."""
    parts = robot_task_parts(task_id)
    if parts is None:
        return task_id
    from pathlib import Path

    return f"{parts[0]}:{Path(parts[1]).expanduser().resolve()}"


def check_task(task_id: str) -> None:
    """Raise UserError unless `task_id` is a registered continuous-control task or a robot config with a
    registered template (``legged:my_robot.toml``, ``reach:my_arm.toml``)."""
    parts = robot_task_parts(task_id)
    if parts is not None:
        from pathlib import Path

        from robotrl.userfile import file_problem, one_toml_in

        problem = file_problem(Path(parts[1]).expanduser()) if parts[1] else "does not exist"
        if problem == "is a directory":
            inside = one_toml_in(Path(parts[1]).expanduser())
            raise UserError(f"task {task_id!r}: {parts[1]!r} is a directory; give the robot config file (TOML)"
                            + (f" in it: {parts[0]}:{inside}" if inside else ""))
        if problem is not None and problem != "does not exist":
            raise UserError(f"task {task_id!r}: robot config {parts[1]!r} {problem}")
        if problem is not None:
            absolute = Path(parts[1]).is_absolute()  # as a run or a card records it
            new = f"{parts[0]}:NEW.toml"
            raise UserError(f"task {task_id!r}: no robot config file {parts[1]!r} ("
                            + ("moved or deleted since a run or card recorded it? Put it back there, or give an "
                               f"exported actor the new path: robotrl eval --onnx ACTOR {new} (or sim2sim ACTOR "
                               f"{new}); " if absolute else "")
                            + "a new robot: write one next to its MJCF model, 'robotrl robot inspect MODEL.xml' says "
                              "what it needs)")
        return
    if task_id not in gym.registry:
        close = difflib.get_close_matches(task_id, _known_ids(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            "; use a Gymnasium id such as Hopper-v5 or a task listed by 'robotrl tasks'")
        raise UserError(f"unknown task {task_id!r}{hint}")


def _sim2real_settings(sim2real: Sim2Real | dict[str, Any] | None) -> Sim2Real:
    """`sim2real` as `Sim2Real` settings; bad ones a UserError."""
    if isinstance(sim2real, Sim2Real):
        return sim2real
    try:
        return Sim2Real.from_dict(sim2real)
    except (TypeError, ValueError) as e:
        raise UserError(f"sim-to-real settings: {e}") from None


def make(task_id: str, sim2real: Sim2Real | dict[str, Any] | None = None, **kwargs: Any) -> gym.Env:
    """Create the task's env, with the sim-to-real wrappers `sim2real` switches on. Errors in the id or
    the keyword arguments are UserErrors."""
    check_task(task_id)
    sim2real = _sim2real_settings(sim2real)
    try:
        parts = robot_task_parts(task_id)
        if parts is not None:
            from pathlib import Path

            from robotrl.envs.tasks import TaskDef, make_wrapped, robot_task

            path = Path(parts[1]).expanduser()
            env = make_wrapped(TaskDef(task_id, robot_task(parts[0], path, task_id), "", None), **kwargs)
        else:
            env = gym.make(task_id, disable_env_checker=True, **kwargs)
    except (gym.error.Error, TypeError) as e:
        raise UserError(f"cannot make task {task_id!r}: {e}") from None
    except ModuleNotFoundError as e:
        raise UserError(f"task {task_id!r} needs the Python package {e.name!r}, which is not installed") from None
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise UserError(f"task {task_id!r} has a {type(env.action_space).__name__} action space; "
                        "robotrl trains continuous-control (Box) tasks")
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        env.close()
        raise UserError(f"task {task_id!r} must have a flat Box observation space, "
                        f"got {env.observation_space}")
    if sim2real.enabled:
        from robotrl.envs.sim2real import apply

        env = apply(env, sim2real)
    return env


def make_vector(task_id: str, num_envs: int, sim2real: Sim2Real | dict[str, Any] | None = None,
                threads: int | None = None, training: bool = False, config_change: Any = None,
                **kwargs: Any) -> Any | None:
    """`num_envs` worlds of `task_id` stepped as one batch in this process (`robotrl.envs.vector.TaskVectorEnv`)
    where the task's template is batched; None otherwise (the caller then steps copies of `make(task_id, sim2real)`).
    `kwargs` are the template's settings, as `make(task_id, **kwargs)` takes. The sim-to-real settings apply to the
    worlds as arrays (`robotrl.envs.sim2real.WorldsSim2Real`): world i gives what `make(task_id, sim2real)` reset with
    world i's seed gives. `training`: the task's training-only behaviour is on (the legged template's command
    curriculum: `set_training`). `config_change(robot_config) -> robot_config`: the robot built changed (an evaluation
    on rough ground, `robotrl.envs.perturb.rebuilt`)."""
    check_task(task_id)
    s2r = _sim2real_settings(sim2real)
    parts = robot_task_parts(task_id)
    from robotrl.envs.tasks import TASKS, template_task

    if parts is not None:
        from pathlib import Path

        template, config = parts[0], Path(parts[1]).expanduser()
    else:
        entry = TASKS[task_id].entry if task_id in TASKS else None
        template, config = getattr(entry, "template", None), getattr(entry, "config", None)
        if template is None:
            return None
    from robotrl.envs.robot_config import RobotConfig
    from robotrl.envs.vector import TaskVectorEnv

    robot_config = RobotConfig.load(config)
    if config_change is not None:
        robot_config = config_change(robot_config)
    task = _with_sim2real(template_task(template, robot_config, task_id, num_envs, threads=threads, **kwargs), s2r)
    if task is None:
        return None
    if training and hasattr(task, "set_training"):
        task.set_training(True)
    return TaskVectorEnv(task)


def _with_sim2real(task: Any | None, settings: Sim2Real) -> Any | None:
    """`task` with the sim-to-real `settings` applied over its worlds; None (closed) where they cannot be."""
    from robotrl.envs.sim2real import batched

    if task is None:
        return None
    out = batched(task, settings)
    if out is None:
        task.close()
    return out


@dataclass(frozen=True)
class EnvFactory:
    """Picklable `make(task_id, **kwargs)` for worker processes."""

    task_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> gym.Env:
        return make(self.task_id, **self.kwargs)


def _generic_spec(task_id: str, env: gym.Env) -> TaskSpec:
    obs_dim = int(np.prod(env.observation_space.shape))
    low = np.asarray(env.action_space.low, dtype=np.float64).reshape(-1)
    high = np.asarray(env.action_space.high, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UserError(f"task {task_id!r} has unbounded actions; robotrl needs finite action bounds")
    unwrapped = env.unwrapped
    dt = getattr(unwrapped, "dt", None)
    return TaskSpec(
        task_id=task_id,
        observation=tuple(ObsElement("obs", str(i)) for i in range(obs_dim)),
        action=tuple(ActElement(f"action_{i}", "generic", float(lo), float(hi))
                     for i, (lo, hi) in enumerate(zip(low, high, strict=True))),
        control_period=float(dt) if dt is not None else None,
        frame_skip=getattr(unwrapped, "frame_skip", None),
        max_episode_steps=env.spec.max_episode_steps if env.spec is not None else None,
        deployable=False,
    )


def task_spec(task_id: str, sim2real: Sim2Real | dict[str, Any] | None = None, **kwargs: Any) -> TaskSpec:
    """The observation/action spec of `task_id`; the sim-to-real settings, if any, in ``extras``."""
    import dataclasses

    env = make(task_id, sim2real=sim2real, **kwargs)  # with its wrappers: a setting the task cannot have fails now
    try:
        try:
            spec = env.get_wrapper_attr("task_spec")
        except AttributeError:
            spec = _generic_spec(task_id, env)
    finally:
        env.close()
    s2r = sim2real if isinstance(sim2real, Sim2Real) else Sim2Real.from_dict(sim2real)
    if s2r.enabled:
        spec = dataclasses.replace(spec, extras={**spec.extras, "sim2real": s2r.to_dict()})
    return spec


def list_tasks() -> list[dict[str, Any]]:
    """One row per task of the suite: id, summary, observation and action sizes, control rate."""
    rows = []
    for task_id, tdef in TASKS.items():
        spec = task_spec(task_id)
        kinds = sorted({a.kind for a in spec.action})
        rows.append({"task": task_id, "summary": tdef.summary, "obs_dim": spec.obs_dim, "act_dim": spec.act_dim,
                     "action": "/".join(kinds), "control_hz": 1.0 / spec.control_period,
                     "episode_steps": spec.max_episode_steps})
    return rows
