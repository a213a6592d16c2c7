"""The robot config: a small TOML file next to a user's MJCF model saying what the MJCF does not.

    config = RobotConfig.load("my_robot.toml")      # checked on its own; `Robot(config, template)` checks the rest

The config, one file next to the model (paths in it are relative to it)::

    model = "my_robot.xml"          # meshes resolve relative to the model, as MuJoCo does
    base = "trunk"                  # legged: the floating base (a body with a free joint)
    imu_site = "imu"                # legged: where the IMU sits (axes aligned with the base)
    feet = ["FL_foot", ...]         # legged: bodies, geoms or sites that touch the ground
    end_effector = "tool"           # reach: a site or body
    timestep = 0.005                # physics step [s] (default: the model's)
    decimation = 4                  # physics steps per control step
    actuated = ["*"]                # joint patterns the policy commands (default: every hinge/slide joint)

    [joints."*"]                    # a joint name or a pattern (* and ?); for each field the *last*
    kp = 40.0                       # matching table in the file wins, so put general ones first
    kd = 1.0
    effort_limit = 23.7             # [N m] or [N]
    action_scale = 0.5              # targets span default +- this (default: legged effort_limit / kp, reach the range)
    [joints."*_knee"]
    default = -1.5                  # the standing / home pose [rad or m]

    [legged]                        # settings of the task template (keyword arguments of
    command_x = [-0.6, 1.0]         # `robotrl.envs.legged.LeggedVelocityEnv`; `[reach]` likewise)
    episode_s = 20.0
    [legged.rewards]                # reward weights by term
    feet_air_time = 1.0

    [terrain]                       # legged: ground of tiles (rough, slopes, stairs) in place of the flat floor,
    levels = 10                     # with a curriculum over its levels (`robotrl.envs.terrain`); no table: flat

`RobotConfig.load` reads and checks the file on its own (types, ranges, known keys: the template tables
are the registered templates' names, `robotrl.envs.templates`); what needs the model (joint, body, site
and geom names, ranges) `robotrl.envs.robot.Robot` checks. Every mistake raises `RobotConfigError`, a
one-line `UserError` naming the file and the field.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from robotrl.errors import UserError
from robotrl.spec import finite_number
from robotrl.userfile import file_problem, one_toml_in, read_text

if TYPE_CHECKING:
    from robotrl.envs.terrain import TerrainSettings

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
ROBOT_FIELDS = ("model", "base", "imu_site", "feet", "end_effector", "timestep", "decimation", "actuated", "joints",
                "terrain")
"""The config's own keys; each registered template adds its table ([legged], [reach], ...)."""


class RobotConfigError(UserError):
    """The model or the robot config is unusable; the message names the file and the field."""


def top_fields() -> tuple[str, ...]:
    """The keys a robot config may have: its own, then a table for each registered template."""
    from robotrl.envs.templates import names

    return ROBOT_FIELDS + names()


def listing(names: list[str], limit: int = 12) -> str:
    """`names` for a message: the first `limit` of the non-empty ones, and how many there are in all."""
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
    terrain: TerrainSettings | None = None
    """The [terrain] table (`robotrl.envs.terrain`); None: the template's flat floor."""

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
        fields = top_fields()
        unknown = sorted(set(doc) - set(fields))
        if unknown:
            raise RobotConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
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
        if "terrain" in doc:
            from robotrl.envs.terrain import TerrainSettings

            try:
                kw["terrain"] = TerrainSettings.from_table(doc["terrain"])
            except ValueError as e:
                raise RobotConfigError(f"{where}: [terrain]: {e}") from None
        templates = {}
        for t in fields[len(ROBOT_FIELDS):]:
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

    def template_settings(self, template: str, env_class: type) -> dict[str, Any]:
        """The config's ``[template]`` table as keyword arguments of `env_class`: ``command_x/y/yaw`` become
        ``command_ranges``, ``[template.rewards]`` ``reward_weights``; unknown keys are named."""
        import inspect

        where = f"{self.where}: [{template}]"
        raw = dict(self.templates.get(template, {}))
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
            elif default is None and "float" in str(params[k].annotation):  # a number derived unless given
                ok, expected = finite_number(v), "a finite number"
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
