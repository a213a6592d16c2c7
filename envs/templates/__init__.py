"""Task templates: each turns a user's robot (an MJCF model and its robot config) into a task, ``NAME:CONFIG.toml``.

    register(Template("legged", "velocity tracking for a floating-base robot: ...", load_env, needs=..., ...))
    find("legged")      -> the entry, or None          names()  -> ("legged", "reach", ...)

A template is one `Template` entry, registered by the module that defines it: every module of this package
registers one when imported, and the first question to the registry imports them all; a module elsewhere (a
test's template, a user's) calls `register` on import itself. Whatever depends on the template of a task reads
its entry, and nothing else names a template: the robot config's ``[NAME]`` table
(`robotrl.envs.robot_config`), what the robot must give and what the template adds to its model
(`robotrl.envs.robot.Robot`), `robot inspect` (`robotrl.envs.robot_inspect`), the task id ``NAME:CONFIG.toml``
and its env (`robotrl.envs`), the per-task defaults (`robotrl.algorithms.registry`), the sim-to-real settings its
tasks train with (`Template.sim2real`). A new template is a module here (its env, or a function that imports it, and
its entry) and its tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mujoco

    from robotrl.envs.robot import Robot


def _needs_nothing(robot: Robot) -> list[str]:
    return []


def _no_check(robot: Robot, raw: mujoco.MjModel) -> None:
    return None


def _adds_nothing(robot: Robot, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    return None


@dataclass(frozen=True)
class Template:
    """One task template: what it asks of a robot, what it adds to the robot's model, and its env."""

    name: str
    """The task's prefix (``legged`` in ``legged:my_robot.toml``) and the robot config's table of its settings
    (``[legged]``): lowercase letters, digits and ``_``."""
    meaning: str
    """One line for `robot inspect`: the task, and what the robot config gives for it."""
    load_env: Callable[[], type]
    """Returns the single-world Gymnasium env class, called ``Env(robot, task_id=..., render_mode=..., **settings)``
    with the `Robot` built for this template. The keyword arguments of its ``settings_class`` (the env class itself
    where it has none) are the keys of the ``[NAME]`` table; a ``settings_class`` with ``observe`` is the batched
    task over worlds that `robotrl.envs.make_vector` builds (``Task(robot, num_worlds=N, **settings)``)."""
    needs: Callable[[Robot], list[str]] = _needs_nothing
    """What the robot config still has to say for this template, one phrase each ("base = BODY (the floating
    base)"); empty when the robot is ready. `robot inspect` lists them; building the task refuses with them."""
    check: Callable[[Robot, mujoco.MjModel], None] = _no_check
    """Further checks of the user's compiled model (the second argument) once `needs` is empty: a
    `RobotConfigError` naming the file and the field on a refusal."""
    add_to_model: Callable[[Robot, mujoco.MjSpec, mujoco.MjModel], None] = _adds_nothing
    """Adds the template's parts (a floor, a goal marker) to the model's MjSpec before its last compile; a name it
    needs that the user's model (the third argument) already has is a `RobotConfigError`."""
    signs: tuple[str, ...] = ()
    """Robot config fields that show a config is written for this template (as its ``[NAME]`` table does): `robot
    inspect` then exits 2 while the template lacks something."""
    family: str = ""
    """The task family its tasks share in `robotrl.algorithms.registry.TASK_DEFAULTS` (per-task defaults); empty: the
    name."""
    at_rest: Callable[[Any], None] | None = None
    """Makes a built env ask for no motion before `robot inspect` holds the default pose for a second (legged: a
    zero velocity command); None: nothing to do."""
    held_ends: str = ""
    """What an episode that ends while the robot holds its default pose means, and what to check, for `robot
    inspect`'s warning; empty: such an episode end is not reported."""
    derive_action_scale: bool = False
    """A joint whose config gives no ``action_scale`` gets ``effort_limit / kp`` (the target offset at which its
    servo, holding still, gives its whole torque: beyond it a target only saturates the motor), less where the
    default pose is nearer an end of the joint's range (targets symmetric about the default, so a zero action holds
    it) unless that leaves under a quarter of it; False, or a joint without an effort limit: its whole range of
    targets."""
    sim2real: dict[str, Any] = field(default_factory=dict, hash=False)
    """The sim-to-real settings (`robotrl.envs.sim2real.Sim2Real`'s fields) its tasks train with unless the run sets
    them or turns them off (``--no-randomize``, `robotrl.run.settings.with_task_sim2real`); empty: none."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"template name {self.name!r}: lowercase letters, digits and _, starting with a letter")
        if not self.family:
            object.__setattr__(self, "family", self.name)


_REGISTERED: dict[str, Template] = {}
_LOADED = False


def register(template: Template) -> Template:
    """Add `template` to the registry, after this package's own (ValueError if its name is taken, or is a key of
    the robot config's own)."""
    from robotrl.envs.robot_config import ROBOT_FIELDS

    _load()
    if template.name in ROBOT_FIELDS:
        raise ValueError(f"template name {template.name!r} is a robot config key; choose another")
    if template.name in _REGISTERED:
        raise ValueError(f"a template named {template.name!r} is registered already")
    _REGISTERED[template.name] = template
    return template


def unregister(name: str) -> None:
    """Remove the template `name` (a test's own, when the test ends)."""
    _REGISTERED.pop(name, None)


def _load() -> None:
    """Import every module of this package once (each registers its template)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def registered() -> dict[str, Template]:
    """Every template by name, in the order of registration (this package's modules by name first)."""
    _load()
    return dict(_REGISTERED)


def names() -> tuple[str, ...]:
    return tuple(registered())


def find(name: str) -> Template | None:
    """The template called `name`, or None."""
    return registered().get(name)


def default_pose_needed(robot: Robot) -> list[str]:
    """`needs` of a template whose episodes start from the default pose: one phrase if a joint has none."""
    from robotrl.envs.robot_config import listing

    lacking = robot.lacking("default")
    return [f"a default pose for {listing(lacking, 6)} ([joints.\"PATTERN\"] default = ...)"] if lacking else []
