"""A user's robot as data: an MJCF model plus a small robot config (TOML) saying what the MJCF does not.

    robot = Robot.load("my_robot.toml", template="legged")   # or Robot.from_model("model.xml")
    robot.model                 # the compiled MjModel: the user's model + PD servos (+ a floor for legged)
    robot.joints, robot.default, robot.action_low, robot.action_high

The config, one file next to the model (paths in it are relative to it)::

    model = "my_robot.xml"          # meshes resolve relative to the model, as MuJoCo does
    base = "trunk"                  # legged: the floating base (a body with a free joint)
    imu_site = "imu"                # legged: where the IMU sits (axes aligned with the base)
    feet = ["FL_foot", ...]         # legged: bodies or geoms that touch the ground
    end_effector = "tool"           # reach: a site or body
    timestep = 0.005                # physics step [s] (default: the model's)
    decimation = 4                  # physics steps per control step
    actuated = ["*"]                # joint patterns the policy commands (default: every hinge/slide joint)

    [joints."*"]                    # a joint name or a pattern (* and ?); for each field the *last*
    kp = 40.0                       # matching table in the file wins, so put general ones first
    kd = 1.0
    effort_limit = 23.7             # [N m] or [N]
    action_scale = 0.5              # the policy's targets span default +- this (default: the joint's range)
    [joints."*_knee"]
    default = -1.5                  # the standing / home pose [rad or m]

    [legged]                        # settings of the task template (keyword arguments of
    command_x = [-0.6, 1.0]         # `robotrl.envs.legged.LeggedVelocityEnv`; `[reach]` likewise)
    episode_s = 20.0
    [legged.rewards]                # reward weights by term
    feet_air_time = 1.0

Actuators: a joint the model drives with its own position servo keeps it (the config's kp/kd, if
given, override its gains); a joint with a motor, or with no actuator at all (common in published
models), gets a PD position servo from the config's kp and kd, so the policy always commands joint
position targets tracked at the physics rate, as legged_gym, mjlab and unitree_rl_gym do.

Every mistake (missing file, unknown key, unknown joint, body, site or geom, a value of the wrong
type, a default pose outside a joint's range, a legged robot without a free joint) raises
`RobotConfigError`, a one-line `UserError` naming the file and the field.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import tomllib

from robotrl.errors import UserError, shorten_numbers
from robotrl.spec import PHYSICS_FIELDS, finite_number
from robotrl.userfile import file_problem, one_toml_in, read_text

JOINT_FIELDS = {
    "default": "the standing / home position [rad or m]",
    "kp": "PD stiffness of the position servo [N m/rad or N/m]",
    "kd": "PD damping [N m s/rad or N s/m]",
    "effort_limit": "torque (force) limit of the servo [N m or N]",
    "action_scale": "the policy's targets span default +- this [rad or m]",
}
JOINT_FIELD_MAX = {  # beyond these a value is a typo (MuJoCo's arithmetic overflows or the simulation blows up)
    "default": (1e3, "rad or m"),
    "kp": (1e6, "N m/rad or N/m; a large industrial joint is ~1e4"),
    "kd": (1e5, "N m s/rad or N s/m"),
    "effort_limit": (1e6, "N m or N"),
    "action_scale": (100.0, "rad or m"),
}
MAX_REWARD_WEIGHT = 1e6
# the physics step: start-up (settling, the stability probe, inspect's trial) simulates seconds, so its work
# grows as 1 / timestep; below 0.1 ms a second is over 10,000 steps per environment, and published models use
# 0.5 to 10 ms. Above 50 ms a servo's PD loop diverges at any useful gain.
MIN_TIMESTEP, MAX_TIMESTEP = 1e-4, 0.05
TIMESTEP_WHY = "(published models use 0.001 to 0.01)"
TOP_FIELDS = ("model", "base", "imu_site", "feet", "end_effector", "timestep", "decimation", "actuated", "joints",
              "legged", "reach")
TEMPLATES = {
    "legged": "velocity tracking for a floating-base robot: base, feet, a default pose, PD gains",
    "reach": "reaching goals with an arm: end_effector, a home (default) pose",
}
GOAL_BODY = "goal"  # the reach template's goal marker (a mocap body it adds)
_HINGE, _SLIDE, _FREE = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE),
                         int(mujoco.mjtJoint.mjJNT_FREE))


class RobotConfigError(UserError):
    """The model or the robot config is unusable; the message names the file and the field."""


PROBE_S, PROBE_STEPS = 1.0, 200  # `Robot.probe`: a second of random actions, and at least 200 of them,
PROBE_PHYSICS_STEPS = 20_000  # but no more than 20,000 physics steps (a few tens of ms for a quadruped)
MAX_EPISODE_PHYSICS_STEPS = 1_000_000  # an episode (evaluation runs whole ones): ~20 s of our quadruped's physics
_INSTABILITY = tuple(int(w) for w in (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQVEL,
                                      mujoco.mjtWarning.mjWARN_BADQPOS))


def is_unstable(data: mujoco.MjData) -> bool:
    """MuJoCo found NaN, Inf or a huge value in the positions, velocities or accelerations of `data` since its last
    reset (it then resets the state itself and counts the event: the counters survive that reset)."""
    return any(int(data.warning[w].number) for w in _INSTABILITY)


def _names(model: mujoco.MjModel, objtype: mujoco.mjtObj, n: int) -> list[str]:
    try:
        return [mujoco.mj_id2name(model, objtype, i) or "" for i in range(n)]
    except UnicodeDecodeError as e:  # a name from an included file in another encoding (the main one is checked)
        raise RobotConfigError(f"the model has a {objtype.name[7:].lower()} name that is not UTF-8 text "
                               f"(byte 0x{e.object[e.start]:02x}): save the MJCF files as UTF-8") from None


def _listing(names: list[str], limit: int = 12) -> str:
    names = [n for n in names if n]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "") or "none"


@dataclass(frozen=True)
class RobotConfig:
    model: Path
    path: Path | None = None
    base: str | None = None
    imu_site: str | None = None
    feet: tuple[str, ...] = ()
    end_effector: str | None = None
    timestep: float | None = None
    decimation: int = 4
    actuated: tuple[str, ...] = ("*",)
    joints: tuple[tuple[str, dict[str, float]], ...] = field(default_factory=tuple)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Settings of each task template ([legged], [reach]): keyword arguments of its env."""

    @property
    def where(self) -> str:
        return f"robot config {self.path}" if self.path else f"model {self.model}"

    @classmethod
    def load(cls, path: str | Path) -> RobotConfig:
        p = Path(path)
        where = f"robot config {p}"
        problem = file_problem(p)
        if problem == "is a directory":
            inside = one_toml_in(p)
            raise RobotConfigError(f"{where}: is a directory; give the robot config file (TOML)"
                                   + (f" in it: {str(inside)!r}" if inside else ""))
        if problem == "does not exist":
            raise RobotConfigError(f"{where}: no such file")
        try:
            doc = tomllib.loads(read_text(p, where, error=RobotConfigError))
        except tomllib.TOMLDecodeError as e:
            raise RobotConfigError(f"{where}: not valid TOML ({e})") from None
        unknown = sorted(set(doc) - set(TOP_FIELDS))
        if unknown:
            raise RobotConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(TOP_FIELDS)}")
        if "model" not in doc:
            raise RobotConfigError(f"{where}: 'model' (the MJCF file, relative to the config) is missing")

        def text(key: str, value: Any) -> str:
            if not isinstance(value, str) or not value:
                raise RobotConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
            return value

        def names(key: str, value: Any) -> tuple[str, ...]:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise RobotConfigError(f"{where}: {key} must be a list of names, got {value!r}")
            return tuple(value)

        model = p.parent / text("model", doc["model"])
        kw: dict[str, Any] = {}
        for key in ("base", "imu_site", "end_effector"):
            if key in doc:
                kw[key] = text(key, doc[key])
        for key in ("feet", "actuated"):
            if key in doc:
                kw[key] = names(key, doc[key])
                twice = sorted({n for n in kw[key] if kw[key].count(n) > 1})
                if twice:
                    raise RobotConfigError(f"{where}: {key} names {twice[0]!r} twice")
        if "actuated" in kw and not kw["actuated"]:
            raise RobotConfigError(f"{where}: actuated is empty: the policy would command no joint (leave it out "
                                   "for every hinge and slide joint, or give patterns like [\"*_hip\", \"*_knee\"])")
        if "timestep" in doc:
            v = doc["timestep"]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not MIN_TIMESTEP <= v <= MAX_TIMESTEP:
                raise RobotConfigError(f"{where}: timestep must be seconds in [{MIN_TIMESTEP:g}, {MAX_TIMESTEP:g}] "
                                       f"{TIMESTEP_WHY}, got {v!r}")
            kw["timestep"] = float(v)
        if "decimation" in doc:
            v = doc["decimation"]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                raise RobotConfigError(f"{where}: decimation must be an integer in [1, 1000], got {v!r}")
            kw["decimation"] = v
        tables = doc.get("joints", {})
        if not isinstance(tables, dict):
            raise RobotConfigError(f"{where}: joints must be tables [joints.\"PATTERN\"], got {tables!r}")
        joints = []
        for pattern, settings in tables.items():
            if not isinstance(settings, dict):
                raise RobotConfigError(f"{where}: joints.{pattern!r} must be a table of "
                                       f"{', '.join(JOINT_FIELDS)}, got {settings!r}")
            bad = sorted(set(settings) - set(JOINT_FIELDS))
            if bad:
                raise RobotConfigError(f"{where}: joints.{pattern!r}: unknown field(s) {', '.join(bad)}; known: "
                                       f"{', '.join(JOINT_FIELDS)}")
            for k, v in settings.items():
                if not finite_number(v):
                    raise RobotConfigError(f"{where}: joints.{pattern!r}.{k} must be a finite number, got {v!r}")
                if k == "kd" and v < 0:  # no damping is a servo; no stiffness is not
                    raise RobotConfigError(f"{where}: joints.{pattern!r}.kd must be >= 0, got {v!r}")
                if k in ("kp", "effort_limit", "action_scale") and v <= 0:
                    raise RobotConfigError(f"{where}: joints.{pattern!r}.{k} must be positive, got {v!r}")
                if abs(v) > JOINT_FIELD_MAX[k][0]:
                    raise RobotConfigError(f"{where}: joints.{pattern!r}.{k} must be at most {JOINT_FIELD_MAX[k][0]:g}"
                                           f"{'' if k in ('kp', 'kd', 'effort_limit') else ' in size'} "
                                           f"({JOINT_FIELD_MAX[k][1]}), got {v!r}")
            joints.append((pattern, {k: float(v) for k, v in settings.items()}))
        templates = {}
        for t in TEMPLATES:
            if t in doc:
                if not isinstance(doc[t], dict):
                    raise RobotConfigError(f"{where}: [{t}] must be a table of the template's settings, got {doc[t]!r}")
                templates[t] = dict(doc[t])
        return cls(model=model, path=p, joints=tuple(joints), templates=templates, **kw)

    def settings(self, joint: str) -> dict[str, float]:
        """The joint's fields, each from the last table whose pattern matches it."""
        out: dict[str, float] = {}
        for pattern, values in self.joints:
            if fnmatch.fnmatchcase(joint, pattern):
                out.update(values)
        return out


def _load_spec(config: RobotConfig) -> mujoco.MjSpec:
    path = config.model
    problem = file_problem(path)
    if problem == "is a directory":
        inside = one_toml_in(path) if config.path is None else None  # `robot inspect DIR`
        raise RobotConfigError(f"{config.where}: model {str(path)!r} is a directory; give the MJCF file (.xml)"
                               + (f" or the robot config in it: {str(inside)!r}" if inside else ""))
    if problem == "does not exist":
        raise RobotConfigError(f"{config.where}: model file {str(path)!r} not found")
    if problem is not None:  # a pipe or a device: MuJoCo's reader would block on it or read it for ever
        raise RobotConfigError(f"{config.where}: model {str(path)!r} {problem}")
    _check_model_files(path, config.where)
    # UTF-8, as MuJoCo decodes names (a Latin-1 body name was a UnicodeDecodeError traceback)
    read_text(path, config.where if config.path is None else f"{config.where}: model {str(path)!r}",
              error=RobotConfigError)
    said: list[str] = []
    before = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(said.append)  # the parser's own warnings, every time (the usual handler says each once)
    try:
        spec = mujoco.MjSpec.from_file(str(path))
    except Exception as e:  # MuJoCo's parser: ValueError / mujoco.FatalError with the line number
        raise RobotConfigError(f"{config.where}: MuJoCo cannot load {str(path)!r} ({_mujoco_message(e)})") from None
    finally:
        mujoco.set_mju_user_warning(before)
    for text in said:
        if "NaN" in text:  # a NaN in a number is a mistake: said as one
            raise RobotConfigError(f"{config.where}: {str(path)!r} has 'nan' where MuJoCo expects a number ({text})")
        if before is not None:
            before(text)
    return spec


_FILE_ATTRIBUTES = ("file", "fileright", "fileleft", "fileup", "filedown", "filefront", "fileback")


def _check_model_files(path: Path, where: str, depth: int = 0) -> None:
    """Every file the MJCF names (``<include>``, meshes, height fields, textures, skins) that exists must be a regular
    file: MuJoCo reads them as it parses and compiles, and would block on a named pipe or read a device for ever.
    A missing file is left to MuJoCo's own error; so is an MJCF that does not parse."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, ValueError, RecursionError):
        return
    folder = path.parent
    dirs = {folder}
    for c in root.iter("compiler"):
        for key in ("assetdir", "meshdir", "texturedir"):
            if c.get(key):
                dirs.add(folder / c.get(key))
    for el in root.iter():
        for key in _FILE_ATTRIBUTES:
            name = el.get(key)
            if not name:
                continue
            for candidate in sorted({d / name for d in dirs}):
                problem = file_problem(candidate)
                if problem is not None and not problem.startswith("does not exist"):
                    raise RobotConfigError(f"{where}: {str(path)!r} names {key}={name!r} ({el.tag}), which {problem}")
                if problem is None and el.tag == "include" and depth < 8:
                    _check_model_files(candidate, where, depth + 1)


def _compile(spec: mujoco.MjSpec, config: RobotConfig) -> mujoco.MjModel:
    try:
        return spec.compile()
    except Exception as e:
        raise RobotConfigError(f"{config.where}: MuJoCo cannot compile {str(config.model)!r} "
                               f"({_mujoco_message(e)})") from None


def _mujoco_message(e: Exception) -> str:
    """MuJoCo's error on one line, with the line number it gives on a later line (``XML parse error 6:`` then
    ``Error=XML_ERROR_PARSING_ELEMENT ErrorID=6 (0x6) Line number=22``)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _is_position_servo(model: mujoco.MjModel, a: int) -> bool:
    return (int(model.actuator_biastype[a]) == int(mujoco.mjtBias.mjBIAS_AFFINE)
            and int(model.actuator_gaintype[a]) == int(mujoco.mjtGain.mjGAIN_FIXED)
            and model.actuator_biasprm[a, 1] != 0
            and math.isclose(model.actuator_biasprm[a, 1], -model.actuator_gainprm[a, 0], rel_tol=1e-9))


class Robot:
    """The compiled robot for a task template (`legged`, `reach`) or, with template None, as it stands."""

    def __init__(self, config: RobotConfig, template: str | None = None):
        if template is not None and template not in TEMPLATES:
            raise RobotConfigError(f"unknown task template {template!r}; known: {', '.join(TEMPLATES)}")
        self.config, self.template = config, template
        where = config.where
        spec = _load_spec(config)
        raw = _compile(spec, config)  # the user's model as written, for names and checks
        self.raw_model = raw
        self._degrees = bool(spec.compiler.degree)  # MJCF angles in degrees: MuJoCo's default
        joint_names = _names(raw, mujoco.mjtObj.mjOBJ_JOINT, raw.njnt)
        movable = [n for j, n in enumerate(joint_names) if int(raw.jnt_type[j]) in (_HINGE, _SLIDE)]
        free = [n for j, n in enumerate(joint_names) if int(raw.jnt_type[j]) == _FREE]
        self.free_joint = free[0] if free else None
        # the actuated joints: `actuated` patterns over the hinge/slide joints, in model order
        if not movable:
            raise RobotConfigError(f"{where}: the model has no hinge or slide joint to command "
                                   f"({_listing(joint_names) if joint_names else 'no joints at all'})")
        for pattern in config.actuated:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in movable):
                raise RobotConfigError(f"{where}: actuated pattern {pattern!r} matches no hinge or slide joint of "
                                       f"the model ({_listing(movable)})")
        self.joints = [n for n in movable if any(fnmatch.fnmatchcase(n, p) for p in config.actuated)]
        if "" in self.joints:  # the card, the spec and the robot side know a joint by its name
            j = next(i for i, n in enumerate(joint_names) if n == "" and int(raw.jnt_type[i]) in (_HINGE, _SLIDE))
            body = mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_BODY, int(raw.jnt_bodyid[j])) or f"#{raw.jnt_bodyid[j]}"
            raise RobotConfigError(f"{where}: joint #{j} (on body {body!r}) has no name, and 'actuated' takes it: "
                                   "robotrl knows each commanded joint by its name (the policy's card, the robot's "
                                   "JointState): give it a name in the MJCF, or 'actuated' patterns that leave it out")
        for pattern, _ in config.joints:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in joint_names):
                raise RobotConfigError(f"{where}: joints.{pattern!r} matches no joint of the model "
                                       f"({_listing(movable)})")
        body_names = _names(raw, mujoco.mjtObj.mjOBJ_BODY, raw.nbody)
        site_names = _names(raw, mujoco.mjtObj.mjOBJ_SITE, raw.nsite)
        geom_names = _names(raw, mujoco.mjtObj.mjOBJ_GEOM, raw.ngeom)
        if config.base is not None and config.base not in body_names:
            raise RobotConfigError(f"{where}: base names body {config.base!r}, which the model lacks "
                                   f"(bodies: {_listing(body_names)})")
        if config.imu_site is not None and config.imu_site not in site_names:
            raise RobotConfigError(f"{where}: imu_site names site {config.imu_site!r}, which the model lacks "
                                   f"(sites: {_listing(site_names)})")
        for foot in config.feet:
            if foot not in body_names and foot not in geom_names:
                raise RobotConfigError(f"{where}: feet names {foot!r}, which is neither a body nor a geom of the "
                                       f"model (bodies: {_listing(body_names)})")
        owner = {f: (body_names.index(f) if f in body_names else int(raw.geom_bodyid[geom_names.index(f)]))
                 for f in config.feet}  # each foot's body
        for f in config.feet:
            if config.base in body_names and owner[f] == body_names.index(config.base):
                raise RobotConfigError(f"{where}: feet names {f!r}, which is the base {config.base!r} or on it; "
                                       "feet are the lower-leg bodies or geoms that touch the ground (the base "
                                       "touching the ground ends an episode)")
            if f not in body_names and owner[f] in [owner[g] for g in config.feet if g in body_names]:
                raise RobotConfigError(f"{where}: feet names geom {f!r} and also its body "
                                       f"{body_names[owner[f]]!r}: the same foot twice (name one of them)")
        if config.end_effector is not None and config.end_effector not in site_names + body_names:
            raise RobotConfigError(f"{where}: end_effector names {config.end_effector!r}, which is neither a site "
                                   f"nor a body of the model (sites: {_listing(site_names)})")
        self.settings = {j: config.settings(j) for j in self.joints}
        if template is not None:
            self._check_template(template, raw, joint_names)
        self._add_servos(spec, raw)
        if template is not None:
            self._check_commands()
        if config.timestep is not None:
            spec.option.timestep = config.timestep
        elif template is not None and not MIN_TIMESTEP <= raw.opt.timestep <= MAX_TIMESTEP:  # the MJCF's own
            raise RobotConfigError(f"{where}: the model's <option timestep=\"{raw.opt.timestep:g}\"> is outside "
                                   f"[{MIN_TIMESTEP:g}, {MAX_TIMESTEP:g}] s {TIMESTEP_WHY}; give timestep = ... in the "
                                   "robot config (or fix the MJCF)")
        if template == "legged":
            _add_floor(spec, raw)
        if template == "reach":
            if GOAL_BODY in body_names:
                raise RobotConfigError(f"{where}: the model has a body named {GOAL_BODY!r}; the reach template "
                                       "adds its goal marker under that name")
            _add_goal_marker(spec)
        self.model = _compile(spec, config)
        self.spec = spec  # the compiled model's MjSpec: a template adds its sensors to a copy
        self._index()

    # checks ------------------------------------------------------------------------------------------
    def missing_for(self, template: str) -> list[str]:
        """What the config still has to say for `template` (empty when the robot is ready for it)."""
        c, out = self.config, []
        no_servo = [j for j, src in getattr(self, "servo_source", {}).items() if "give kp and kd" in src]
        if no_servo:
            out.append(f"kp and kd for {_listing(no_servo, 6)} (a PD servo each)")
        if template == "legged":
            if self.free_joint is None:
                out.append("a free joint (a legged robot's floating base; the model has none)")
            if c.base is None:
                out.append("base = BODY (the floating base)")
            if not c.feet:
                out.append("feet = [BODY or GEOM, ...]")
        if template == "reach" and c.end_effector is None:
            out.append("end_effector = SITE or BODY")
        if template == "reach" and self.free_joint is not None:
            out.append(f"a fixed base (the model's free joint {self.free_joint!r} lets the arm fall and float: "
                       "remove it)")
        model = getattr(self, "model", None)  # inspect's robot, compiled without a template's additions
        if template == "reach" and model is not None and self.template is None and \
                mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, GOAL_BODY) >= 0:
            out.append(f"a model without a body named {GOAL_BODY!r} (the template adds its goal marker under that "
                       "name: rename the body)")
        if template in ("legged", "reach"):
            lacking = [j for j in self.joints if "default" not in self.settings[j]]
            if lacking:
                out.append(f"a default pose for {_listing(lacking, 6)} ([joints.\"PATTERN\"] default = ...)")
        if template == "legged":
            no_scale = [j for j in self.joints if "action_scale" not in self.settings[j]]
            if no_scale:
                out.append(f"action_scale for {_listing(no_scale, 6)} (targets span default +- scale)")
        return out

    def _check_template(self, template: str, raw: mujoco.MjModel, joint_names: list[str]) -> None:
        where = self.config.where
        missing = self.missing_for(template)
        if missing:
            raise RobotConfigError(f"{where}: the {template} template needs " + "; ".join(missing))
        if template == "legged":
            b = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_BODY, self.config.base)
            jnts = [j for j in range(raw.njnt) if int(raw.jnt_bodyid[j]) == b and int(raw.jnt_type[j]) == _FREE]
            if not jnts:
                owner = int(raw.jnt_bodyid[joint_names.index(self.free_joint)])
                raise RobotConfigError(f"{where}: base body {self.config.base!r} has no free joint (the free joint "
                                       f"is on body {mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_BODY, owner)!r})")
            self.free_joint = joint_names[jnts[0]]
            if not self.free_joint:
                raise RobotConfigError(f"{where}: the free joint of base body {self.config.base!r} has no name; "
                                       "robotrl names the base's observations after it: give it one in the MJCF "
                                       "(<freejoint name=\"root\"/>)")
            if self.config.imu_site is not None:
                s = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_SITE, self.config.imu_site)
                q = raw.site_quat[s]
                if int(raw.site_bodyid[s]) != b or not np.allclose(np.abs(q[0]), 1.0, atol=1e-6):
                    raise RobotConfigError(f"{where}: imu_site {self.config.imu_site!r} must sit on the base body "
                                           f"{self.config.base!r} with its axes aligned to it")
        for j in self.joints:
            jid = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_JOINT, j)
            d = self.settings[j].get("default")
            if d is not None and raw.jnt_limited[jid]:
                lo, hi = raw.jnt_range[jid]
                if not lo <= d <= hi:
                    hinge = int(raw.jnt_type[jid]) == _HINGE
                    hint = ("; the MJCF has no <compiler angle=\"radian\"/>, so MuJoCo read its ranges in degrees"
                            if hinge and self._degrees else "")
                    raise RobotConfigError(f"{where}: the default position of {j!r} ({d:g}) is outside its range "
                                           f"[{lo:g}, {hi:g}] (rad or m){hint}")

    def _check_commands(self) -> None:
        """Every actuated joint has a range of targets (its joint range, or its servo's ctrlrange, or default +-
        action_scale) and its default pose is a target its servo takes."""
        where = self.config.where
        for j in self.joints:
            s = self.settings[j]
            if j not in self.command_range:
                if "action_scale" not in s:
                    raise RobotConfigError(f"{where}: joint {j!r} has no range, so it needs an action_scale")
                continue
            lo, hi = self.command_range[j]
            d = s.get("default")
            if d is not None and not lo <= d <= hi:
                raise RobotConfigError(f"{where}: the default position of {j!r} ({d:g}) is outside [{lo:g}, {hi:g}], "
                                       f"the targets its servo takes (the model's ctrlrange)")

    def _add_servos(self, spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
        """Every actuated joint ends up driven by a position servo (see the module docstring)."""
        where = self.config.where
        by_joint: dict[str, list[int]] = {}
        for a in range(raw.nu):
            if int(raw.actuator_trntype[a]) in (int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_JOINTINPARENT)):
                j = mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_JOINT, int(raw.actuator_trnid[a, 0]))
                by_joint.setdefault(j, []).append(a)
            else:
                name = mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
                raise RobotConfigError(f"{where}: actuator {a} ({name!r}) does not drive a joint directly (tendon, "
                                       "site or body transmission); robotrl's templates command joints")
        outside = sorted(j for j in by_joint if j not in self.joints)
        if outside:
            raise RobotConfigError(f"{where}: the model has actuators on {', '.join(outside)}, which 'actuated' "
                                   "leaves out")
        self.servo_source: dict[str, str] = {}
        self.command_range: dict[str, tuple[float, float]] = {}  # where the servo takes targets: joint range, or
        for j in self.joints:  # narrower where the model's own position servo has a ctrlrange
            s = self.settings[j]
            acts = by_joint.get(j, [])
            if len(acts) > 1:
                raise RobotConfigError(f"{where}: joint {j!r} has {len(acts)} actuators; robotrl expects one")
            jid = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_JOINT, j)
            lo, hi = (float(x) for x in raw.jnt_range[jid]) if raw.jnt_limited[jid] else (-math.inf, math.inf)
            if acts and _is_position_servo(raw, acts[0]):
                gear = float(raw.actuator_gear[acts[0], 0])
                if gear != 1.0:  # MuJoCo drives the joint to ctrl / gear: the card's targets would be off by gear
                    raise RobotConfigError(f"{where}: the position servo of {j!r} has gear {gear:g}; robotrl's "
                                           "targets are joint positions (rad or m): give it gear 1, or remove it "
                                           "and give kp and kd in the config")
                act = spec.actuators[acts[0]]
                if raw.actuator_ctrllimited[acts[0]]:
                    clo, chi = (float(x) for x in raw.actuator_ctrlrange[acts[0]])
                    if clo > hi or chi < lo:
                        raise RobotConfigError(f"{where}: the servo of {j!r} takes targets in [{clo:g}, {chi:g}] "
                                               f"(its ctrlrange), outside the joint's range [{lo:g}, {hi:g}]")
                    lo, hi = max(lo, clo), min(hi, chi)
                if "kp" in s or "kd" in s:
                    kp = s.get("kp", float(raw.actuator_gainprm[acts[0], 0]))
                    kd = s.get("kd", -float(raw.actuator_biasprm[acts[0], 2]))
                    act.set_to_position(kp=kp, kv=kd)
                    self.servo_source[j] = "the model's position servo, gains from the config"
                else:
                    self.servo_source[j] = "the model's position servo"
            else:
                if ("kp" not in s or "kd" not in s) and self.template is None:  # inspecting: report, do not fail
                    self.servo_source[j] = ("the model's motor" if acts else "none") + ": give kp and kd for a servo"
                    continue
                if "kp" not in s or "kd" not in s:
                    what = "a motor" if acts else "no actuator"
                    raise RobotConfigError(f"{where}: joint {j!r} has {what} in the model; give kp and kd for it "
                                           f"([joints.\"PATTERN\"] kp = ..., kd = ...) to make it a PD position servo")
                if acts:
                    a = acts[0]
                    act = spec.actuators[a]
                    act.gear = [1.0, 0, 0, 0, 0, 0]
                    self.servo_source[j] = "a PD servo from the config (replacing the model's motor)"
                    # the motor's torque limit, gear x its control or force bound, stays the servo's unless the
                    # config gives effort_limit: a policy must not learn torques the real motor cannot give
                    bounds = [abs(float(raw.actuator_gear[a, 0])) * float(np.max(np.abs(r)))
                              for r, on in ((raw.actuator_ctrlrange[a], raw.actuator_ctrllimited[a]),
                                            (raw.actuator_forcerange[a], raw.actuator_forcelimited[a])) if on]
                    if "effort_limit" not in s and bounds and min(bounds) > 0:
                        act.forcelimited = 1
                        act.forcerange = [-min(bounds), min(bounds)]
                        self.servo_source[j] += f", torque limit {min(bounds):g} from the motor"
                else:
                    act = spec.add_actuator()
                    act.name = f"{j}_servo"
                    act.target = j
                    act.trntype = mujoco.mjtTrn.mjTRN_JOINT
                    self.servo_source[j] = "a PD servo from the config (the model has none)"
                act.set_to_position(kp=s["kp"], kv=s["kd"])
            if math.isfinite(lo):
                act.ctrllimited = 1
                act.ctrlrange = [lo, hi]
                self.command_range[j] = (lo, hi)
            else:
                act.ctrllimited = 0
            if "effort_limit" in s:
                act.forcelimited = 1
                act.forcerange = [-s["effort_limit"], s["effort_limit"]]

    def _index(self) -> None:
        m = self.model
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in self.joints]
        self.qpos_adr = np.array([m.jnt_qposadr[j] for j in jid], dtype=np.intp)
        self.dof_adr = np.array([m.jnt_dofadr[j] for j in jid], dtype=np.intp)
        act_of = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu) if _is_position_servo(m, a)}
        self.actuator = np.array([act_of.get(j, -1) for j in jid], dtype=np.intp)  # -1: no servo (inspect only)
        self.range = np.array([m.jnt_range[j] if m.jnt_limited[j] else (-np.inf, np.inf) for j in jid], dtype=float)
        self.limited = np.array([bool(m.jnt_limited[j]) for j in jid])
        st = [self.settings[j] for j in self.joints]
        self.default = np.array([s.get("default", 0.0) for s in st])
        scale = np.array([s.get("action_scale", np.nan) for s in st])
        command = np.array([self.command_range.get(j, (-np.inf, np.inf)) for j in self.joints], dtype=float)
        command = command.reshape(len(self.joints), 2)
        low = np.where(np.isnan(scale), command[:, 0], self.default - scale)
        high = np.where(np.isnan(scale), command[:, 1], self.default + scale)
        self.action_low = np.maximum(low, command[:, 0])
        self.action_high = np.minimum(high, command[:, 1])
        has = self.actuator >= 0
        a = np.where(has, self.actuator, 0)
        self.kp = np.where(has, m.actuator_gainprm[a, 0], np.nan) if m.nu else np.full(len(jid), np.nan)
        # 0.0 - x, not -x: a servo without damping has kd 0, not "-0"
        self.kd = np.where(has, 0.0 - m.actuator_biasprm[a, 2], np.nan) if m.nu else np.full(len(jid), np.nan)
        self.effort_limit = (np.where(has & m.actuator_forcelimited[a].astype(bool), m.actuator_forcerange[a, 1],
                                      np.inf) if m.nu else np.full(len(jid), np.inf))
        self.control_period = float(m.opt.timestep) * self.config.decimation

    def physics_fingerprint(self) -> str:
        """A digest of the compiled model's physics (masses, inertias, geometry, joints, damping, servos, sites,
        gravity, timestep): recorded in the task's spec, so that an MJCF edited after training is noticed."""
        import hashlib

        h = hashlib.sha256()
        for name, values in self._physics_arrays():
            h.update(name.encode())
            h.update(values.tobytes())
        h.update(self._physics_options().tobytes())
        return h.hexdigest()[:16]

    def _physics_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """(field, values rounded to 1e-9 as contiguous float64) for each of `PHYSICS_FIELDS`: what the digests hash."""
        for name in PHYSICS_FIELDS:
            yield name, np.ascontiguousarray(np.round(getattr(self.model, name), 9), dtype=np.float64)

    def _physics_options(self) -> np.ndarray:
        m = self.model
        return np.round(np.asarray([*m.opt.gravity, m.opt.timestep]), 12)

    def physics_parts(self) -> dict[str, str]:
        """`physics_fingerprint` by field and element, for saying what an edit changed: ``{"body_mass":
        "base=1f3a,thigh=09bc,..."}`` (a 4-hex digest of each element's row, named as in the model, or ``#i``)."""
        import hashlib

        m = self.model
        out = {}
        for name, values in self._physics_arrays():
            kind = PHYSICS_FIELDS[name][0]
            rows = values.reshape(values.shape[0], -1 if values.size else 0)  # a model without sites has none
            obj = {"body": mujoco.mjtObj.mjOBJ_BODY, "geom": mujoco.mjtObj.mjOBJ_GEOM,
                   "joint": mujoco.mjtObj.mjOBJ_JOINT, "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR,
                   "site": mujoco.mjtObj.mjOBJ_SITE}.get(kind)
            if kind == "dof":  # a dof is named after its joint
                names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.dof_jntid[i])) for i in range(len(rows))]
            else:
                names = [mujoco.mj_id2name(m, obj, i) for i in range(len(rows))]
            out[name] = ",".join(f"{(n or f'#{i}').replace(',', ';').replace('=', ':')}="
                                 f"{hashlib.sha256(r.tobytes()).hexdigest()[:4]}"
                                 for i, (n, r) in enumerate(zip(names, rows, strict=True)))
        opt = self._physics_options()
        out["option"] = f"gravity={hashlib.sha256(opt[:3].tobytes()).hexdigest()[:4]}," \
                        f"timestep={hashlib.sha256(opt[3:].tobytes()).hexdigest()[:4]}"
        return out

    def template_settings(self, template: str, env_class: type) -> dict[str, Any]:
        """The config's ``[template]`` table as keyword arguments of `env_class`: ``command_x/y/yaw`` become
        ``command_ranges``, ``[template.rewards]`` ``reward_weights``; unknown keys are named."""
        import inspect

        where = f"{self.config.where}: [{template}]"
        raw = dict(self.config.templates.get(template, {}))
        params = inspect.signature(env_class.__init__).parameters
        known = [k for k in params if k not in ("self", "robot", "task_id", "render_mode", "command_ranges",
                                                "reward_weights", "num_worlds", "threads")]
        out: dict[str, Any] = {}
        ranges = {a: raw.pop(f"command_{a}") for a in ("x", "y", "yaw") if f"command_{a}" in raw}
        if ranges:
            if "command_ranges" not in params:
                raise RobotConfigError(f"{where}: this template has no velocity command")
            for a, r in ranges.items():
                if not (isinstance(r, list) and len(r) == 2 and all(finite_number(v) for v in r) and r[0] <= 0 <= r[1]):
                    raise RobotConfigError(f"{where}: command_{a} must be [low, high] with low <= 0 <= high, got {r!r}")
            out["command_ranges"] = {a: (float(r[0]), float(r[1])) for a, r in ranges.items()}
        if "rewards" in raw:
            w = raw.pop("rewards")
            numbers = isinstance(w, dict) and all(finite_number(v) for v in w.values())
            if "reward_weights" not in params or not numbers:
                raise RobotConfigError(f"{where}: rewards must be a table of numbers (weights by term), got {w!r}")
            huge = [k for k, v in w.items() if abs(v) > MAX_REWARD_WEIGHT]
            if huge:
                raise RobotConfigError(f"{where}: rewards.{huge[0]} must be within +-{MAX_REWARD_WEIGHT:g}, got "
                                       f"{w[huge[0]]!r}")
            out["reward_weights"] = {k: float(v) for k, v in w.items()}
        for k, v in raw.items():
            if k not in known:
                extra = ", command_x, command_y, command_yaw, rewards" if "command_ranges" in params else ""
                raise RobotConfigError(f"{where}: unknown setting {k!r}; known: {', '.join(known)}{extra}")
            default = params[k].default
            if isinstance(default, bool):
                ok, expected = isinstance(v, bool), "true or false"
            elif default is None:  # a table (the reach template's goal_ranges), its entries checked by the template
                ok, expected = isinstance(v, dict), "a table"
            elif isinstance(default, tuple):
                ok = isinstance(v, list) and len(v) == len(default) and all(finite_number(x) for x in v)
                expected = f"a list of {len(default)} finite numbers like {list(default)}"
                v = tuple(float(x) for x in v) if ok else v
            else:
                ok, expected = finite_number(v), f"a finite number like {default!r}"
            if not ok:
                raise RobotConfigError(f"{where}: {k} must be {expected}, got {v!r}")
            out[k] = v
        return out

    @classmethod
    def load(cls, path: str | Path, template: str | None = None) -> Robot:
        return cls(RobotConfig.load(path), template)

    @classmethod
    def from_model(cls, model: str | Path) -> Robot:
        return cls(RobotConfig(model=Path(model)), None)

    # report ------------------------------------------------------------------------------------------
    def _trial(self, template: str) -> tuple[str | None, list[str]]:
        """Build the template's env as training does, so that 'ready' is never a promise training breaks: the
        reason it refuses the robot (a base without the free joint, a default pose outside a joint's range, a
        [template] table with an unknown key, ...), or None and notes on what a first episode shows: geoms of
        the robot that overlap at the default pose, a walker that cannot hold its default pose for a second."""
        import warnings

        from robotrl.envs.tasks import template_env

        with warnings.catch_warnings():  # MuJoCo's own instability warnings: said once, as a note
            warnings.simplefilter("ignore")
            return self._trial_run(template, template_env)

    def _trial_run(self, template: str, template_env: Any) -> tuple[str | None, list[str]]:
        try:
            env = template_env(template, self.config, f"{template}:{self.config.path or self.config.model}")
        except RobotConfigError as e:
            text, prefix = str(e), f"{self.config.where}: "
            return (text[len(prefix):] if text.startswith(prefix) else text), []
        notes = []
        try:
            env.reset(seed=0)
            m, d = env.model, env.data
            body = lambda g: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[g]))  # noqa: E731
            root = m.body_rootid[m.geom_bodyid]
            pairs = sorted({tuple(sorted((body(a), body(b)))) for a, b in d.contact.geom[:d.ncon]
                            if root[a] == root[b] != 0 and m.geom_bodyid[a] != m.geom_bodyid[b]})
            if pairs:
                notes.append(f"geoms overlap at the default pose ({_listing([f'{a}/{b}' for a, b in pairs], 6)}): "
                             "the physics pushes them apart; exclude the pairs (<contact><exclude body1=... "
                             "body2=.../></contact>) or give the geoms contype/conaffinity that do not collide")
            if template == "legged":
                env.set_command(0.0, 0.0, 0.0)
            second = max(1, round(1.0 / env.dt))
            for t in range(second):
                if env.step(self.default)[2] and template == "legged":
                    notes.append(f"holding the default pose, an episode ends after {t + 1} step(s) of "
                                 f"{second} (the base touches the ground or tilts beyond max_tilt): check the "
                                 "default pose and the base")
                    break
            unstable = self.unstable(d, "; it resets the state and training learns nothing")
            if unstable:
                notes.append(unstable)
        finally:
            env.close()
        return None, notes

    def unstable(self, data: mujoco.MjData, why: str, doing: str = "holding the default pose") -> str | None:
        """What to say where MuJoCo found the simulation of `data` unstable (NaN, Inf or huge positions, velocities
        or accelerations: it then resets the state), else None. `why` follows MuJoCo's words in the parentheses."""
        return self.instability(why, doing) if is_unstable(data) else None

    def instability(self, why: str, doing: str) -> str:
        """The words for a simulation MuJoCo found unstable (and reset) while `doing`: the gains and timestep to
        lower."""
        return (f"the simulation is unstable {doing} (MuJoCo: NaN, Inf or huge accelerations{why}): "
                f"lower kp and kd (largest {np.nanmax(self.kp):g}, {np.nanmax(self.kd):g}) or the timestep "
                f"({self.model.opt.timestep:g} s)")

    def probe(self, qpos: np.ndarray, seed: int = 0) -> str | None:
        """Whether the simulation stays stable under actions a policy can send, from the start state `qpos`:
        `PROBE_S` seconds (at least `PROBE_STEPS` control steps, at most `PROBE_PHYSICS_STEPS` physics steps) of
        random position targets within the action bounds, a new one each control step, as exploration sends them.
        What `unstable` says if it does not, else None. A timestep too large for the gains shows here at build
        time, not as a training that learns from reset states."""
        import warnings

        m = self.model
        d = mujoco.MjData(m)
        d.qpos[:] = qpos
        mujoco.mj_forward(m, d)
        rng = np.random.default_rng(seed)
        steps = max(PROBE_STEPS, round(PROBE_S / self.control_period))
        steps = min(steps, max(1, PROBE_PHYSICS_STEPS // self.config.decimation))
        with warnings.catch_warnings():  # MuJoCo's own warning: said below, in one line
            warnings.simplefilter("ignore")
            for _ in range(steps):
                d.ctrl[self.actuator] = rng.uniform(self.action_low, self.action_high)
                mujoco.mj_step(m, d, self.config.decimation)
                if is_unstable(d):
                    break
        return self.unstable(d, "; it resets the state and training would learn from that",
                             "under the policy's actions (random targets within the action bounds)")

    def inspect(self) -> str:
        """What `robotrl robot inspect` prints: the model as robotrl sees it, and what each template lacks."""
        return self.inspect_report()[0]

    def inspect_report(self) -> tuple[str, list[str]]:
        """`inspect`'s text, and the templates that cannot train on this robot although they should: one refused
        (the robot meets its needs but training it would fail: a bad setting, a default pose out of range), or
        one that the config is written for (its own table, ``[legged]`` or ``[reach]``; ``base``/``feet``;
        ``end_effector``) and that still lacks something. `robotrl robot inspect` exits 2 when there are any,
        so that a script can check a config."""
        m, c = self.raw_model, self.config
        step = c.timestep or m.opt.timestep
        out = [f"model     {c.model}  (timestep {m.opt.timestep:g} s"
               + (f", config: {c.timestep:g} s" if c.timestep else "") + f", decimation {c.decimation}: control "
               + (f"{1.0 / (step * c.decimation):.0f} Hz)" if MIN_TIMESTEP <= step <= MAX_TIMESTEP else
                  f"rate undefined: robotrl needs a timestep in [{MIN_TIMESTEP:g}, {MAX_TIMESTEP:g}] s)")]
        if c.path:
            out[0] += f"\nconfig    {c.path}"
        if self._degrees and any(int(t) == _HINGE for t in m.jnt_type):
            out.append("angles    in degrees in the MJCF (MuJoCo's default without <compiler angle=\"radian\"/>); "
                       "robotrl shows and takes radians: a range of 0.7 degrees is 0.0122 rad")
        free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == _FREE]
        jname = lambda j: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)  # noqa: E731
        bname = lambda b: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)  # noqa: E731
        out.append("base      " + (", ".join(f"free joint {jname(j)!r} on body {bname(int(m.jnt_bodyid[j]))!r}"
                                             for j in free) or "fixed (no free joint)"))
        out.append(f"mass      {float(m.body_mass.sum()):.2f} kg in {m.nbody - 1} bodies")
        out.append(f"joints ({sum(1 for j in range(m.njnt) if int(m.jnt_type[j]) in (_HINGE, _SLIDE))} hinge/slide"
                   f", {len(self.joints)} actuated):")
        out.append(f"    {'name':24s} {'type':6s} {'range':>18s}  {'default':>8s} {'kp':>7s} {'kd':>6s} "
                   f"{'limit':>7s}  servo")
        for j in range(m.njnt):
            t = int(m.jnt_type[j])
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
            if t == int(mujoco.mjtJoint.mjJNT_BALL):
                out.append(f"    {name or f'(joint {j})':24s} ball   {'':>18s}  (passive: a ball joint is neither "
                           "observed nor commanded; the templates drive hinge and slide joints)")
            if t not in (_HINGE, _SLIDE):
                continue
            rng = f"[{m.jnt_range[j, 0]:.3g}, {m.jnt_range[j, 1]:.3g}]" if m.jnt_limited[j] else "unlimited"
            if name in self.joints:
                k = self.joints.index(name)
                d = self.settings[name].get("default")
                lim = self.effort_limit[k]
                kp, kd = (("-" if np.isnan(x) else f"{x:.3g}") for x in (self.kp[k], self.kd[k]))
                out.append(f"    {name:24s} {'hinge' if t == _HINGE else 'slide':6s} {rng:>18s}  "
                           f"{'-' if d is None else f'{d:.3g}':>8s} {kp:>7s} {kd:>6s} "
                           f"{'-' if not np.isfinite(lim) else f'{lim:.3g}':>7s}  {self.servo_source[name]}")
            else:
                out.append(f"    {name:24s} {'hinge' if t == _HINGE else 'slide':6s} {rng:>18s}  (passive)")
        acts = []
        for a in range(m.nu):
            kind = "position servo" if _is_position_servo(m, a) else (
                "motor" if int(m.actuator_biastype[a]) == int(mujoco.mjtBias.mjBIAS_NONE) else "actuator")
            target = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[a, 0])) \
                if int(m.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT) else "(not a joint)"
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            acts.append(f"{name + ': ' if name else ''}{kind} on {target}")
        out.append(f"actuators in the model ({m.nu}): {_listing(acts) if m.nu else 'none'}")
        out.append(f"bodies ({m.nbody - 1}): {_listing(_names(m, mujoco.mjtObj.mjOBJ_BODY, m.nbody)[1:], 20)}")
        out.append(f"sites ({m.nsite}): {_listing(_names(m, mujoco.mjtObj.mjOBJ_SITE, m.nsite), 20)}")
        out.append(f"sensors ({m.nsensor}): {_listing(_names(m, mujoco.mjtObj.mjOBJ_SENSOR, m.nsensor), 20)}")
        failing = []
        for t, what in TEMPLATES.items():
            missing = self.missing_for(t)
            refusal, notes = (None, []) if missing else self._trial(t)
            state = ("needs: " + "; ".join(missing) if missing else f"refused: {refusal}" if refusal else "ready")
            out.append(f"template {t:7s} {state}   ({what})")
            out.extend(f"         warning: {n}" for n in notes)
            meant = t in c.templates or (c.base or c.feet if t == "legged" else c.end_effector)
            if refusal or (missing and meant):
                failing.append(t)
        return shorten_numbers("\n".join(out)), failing  # a 400-digit number from the config quoted in a refusal


def _add_floor(spec: mujoco.MjSpec, raw: mujoco.MjModel) -> None:
    """A checkered ground plane and a light, unless the model has a plane already."""
    if any(int(raw.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_PLANE) for g in range(raw.ngeom)):
        return
    tex = spec.add_texture()
    tex.name, tex.type = "robotrl_grid", mujoco.mjtTexture.mjTEXTURE_2D
    tex.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
    tex.width = tex.height = 256
    tex.rgb1, tex.rgb2 = [0.20, 0.30, 0.40], [0.10, 0.20, 0.30]
    mat = spec.add_material()
    mat.name = "robotrl_grid"
    mat.textures[int(mujoco.mjtTextureRole.mjTEXROLE_RGB)] = "robotrl_grid"
    mat.texrepeat = [1.0, 1.0]
    mat.texuniform = True
    floor = spec.worldbody.add_geom()
    floor.name, floor.type, floor.size = "floor", mujoco.mjtGeom.mjGEOM_PLANE, [0, 0, 0.05]
    floor.material = "robotrl_grid"
    floor.contype = floor.conaffinity = 1
    floor.condim = 3
    if raw.nlight == 0:
        light = spec.worldbody.add_light()
        light.pos, light.dir = [0, 0, 3], [0, 0, -1]
        light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL


def _add_goal_marker(spec: mujoco.MjSpec) -> None:
    """A mocap body carrying a small green sphere that collides with nothing: the reach goal."""
    body = spec.worldbody.add_body()
    body.name, body.mocap = GOAL_BODY, True
    g = body.add_geom()
    g.type, g.size, g.rgba = mujoco.mjtGeom.mjGEOM_SPHERE, [0.02, 0, 0], [0.1, 0.9, 0.2, 0.6]
    g.contype = g.conaffinity = 0
    g.mass = 0.0
