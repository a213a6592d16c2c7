"""A user's robot as a model: the MJCF compiled with PD servos on the actuated joints and a task template's parts.

    robot = Robot.load("my_robot.toml", template="legged")   # or Robot.from_model("model.xml")
    robot.model                 # the compiled MjModel: the user's model + PD servos (+ a floor for legged)
    robot.joints, robot.default, robot.action_low, robot.action_high

The robot config (`robotrl.envs.robot_config`) says what the MJCF does not; a template
(`robotrl.envs.templates`) says what it needs of the robot and what it adds to the model.

Actuators: a joint the model drives with its own position servo keeps it (the config's kp/kd, if
given, override its gains); a joint with a motor, or with no actuator at all (common in published
models), gets a PD position servo from the config's kp and kd, so the policy always commands joint
position targets tracked at the physics rate, as legged_gym, mjlab and unitree_rl_gym do.

Every mistake (unknown joint, body, site or geom, a default pose outside a joint's range, what a template
lacks) raises `RobotConfigError`, a one-line `UserError` naming the file and the field.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator
from pathlib import Path

import mujoco
import numpy as np

from robotrl.envs import templates
from robotrl.envs.mjcf import FREE, HINGE, SLIDE, compile_spec, free_joint_name, is_position_servo, load_spec, names_of
from robotrl.envs.robot_config import MAX_TIMESTEP, MIN_TIMESTEP, TIMESTEP_WHY, RobotConfig, RobotConfigError, listing
from robotrl.spec import PHYSICS_FIELDS

PROBE_S, PROBE_STEPS = 1.0, 200  # `Robot.probe`: a second of random actions, and at least 200 of them,
PROBE_PHYSICS_STEPS = 20_000  # but no more than 20,000 physics steps (a few tens of ms for a quadruped)
MAX_EPISODE_PHYSICS_STEPS = 1_000_000  # an episode (evaluation runs whole ones): ~20 s of our quadruped's physics
_INSTABILITY = tuple(int(w) for w in (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQVEL,
                                      mujoco.mjtWarning.mjWARN_BADQPOS))


def is_unstable(data: mujoco.MjData) -> bool:
    """MuJoCo found NaN, Inf or a huge value in the positions, velocities or accelerations of `data` since its last
    reset (it then resets the state itself and counts the event: the counters survive that reset)."""
    return any(int(data.warning[w].number) for w in _INSTABILITY)


class Robot:
    """The compiled robot for a task template (`robotrl.envs.templates`) or, with template None, as it stands."""

    def __init__(self, config: RobotConfig, template: str | None = None):
        entry = templates.find(template) if template is not None else None
        if template is not None and entry is None:
            raise RobotConfigError(f"unknown task template {template!r}; known: {', '.join(templates.names())}")
        self.config, self.template = config, template
        where = config.where
        spec = load_spec(config)
        raw = compile_spec(spec, config)  # the user's model as written, for names and checks
        self.raw_model = raw
        self._degrees = bool(spec.compiler.degree)  # MJCF angles in degrees: MuJoCo's default
        self._select_joints(raw)
        self._check_names(raw)
        self.settings = {j: config.settings(j) for j in self.joints}
        if entry is not None:
            self._check_template(entry, raw)
        self._add_servos(spec, raw)
        if template is not None:
            self._check_commands()
        if config.timestep is not None:
            spec.option.timestep = config.timestep
        elif template is not None and not MIN_TIMESTEP <= raw.opt.timestep <= MAX_TIMESTEP:  # the MJCF's own
            raise RobotConfigError(f"{where}: the model's <option timestep=\"{raw.opt.timestep:g}\"> is outside "
                                   f"[{MIN_TIMESTEP:g}, {MAX_TIMESTEP:g}] s {TIMESTEP_WHY}; give timestep = ... in the "
                                   "robot config (or fix the MJCF)")
        if entry is not None:
            entry.add_to_model(self, spec, raw)
            if config.terrain is not None and not any(h.name == "robotrl_terrain" for h in spec.hfields):
                raise RobotConfigError(f"{where}: [terrain]: the {template} template has no floor to shape into "
                                       "terrain: remove the [terrain] table")
        self.model = compile_spec(spec, config)
        self.spec = spec  # the compiled model's MjSpec: a template adds its sensors to a copy
        self._index()

    # checks ------------------------------------------------------------------------------------------
    def _select_joints(self, raw: mujoco.MjModel) -> None:
        """`joints`: the `actuated` patterns over the model's hinge/slide joints, in model order, each named;
        `free_joint`: the model's first free joint, by `free_joint_name` (None: a fixed base); every joints table
        matches a joint."""
        config, where = self.config, self.config.where
        joint_names = names_of(raw, mujoco.mjtObj.mjOBJ_JOINT, raw.njnt)
        movable = [n for j, n in enumerate(joint_names) if int(raw.jnt_type[j]) in (HINGE, SLIDE)]
        free = [free_joint_name(raw, j) for j in range(raw.njnt) if int(raw.jnt_type[j]) == FREE]
        self.free_joint = free[0] if free else None
        # the actuated joints: `actuated` patterns over the hinge/slide joints, in model order
        if not movable:
            raise RobotConfigError(f"{where}: the model has no hinge or slide joint to command "
                                   f"({listing(joint_names) if joint_names else 'no joints at all'})")
        for pattern in config.actuated:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in movable):
                raise RobotConfigError(f"{where}: actuated pattern {pattern!r} matches no hinge or slide joint of "
                                       f"the model ({listing(movable)})")
        self.joints = [n for n in movable if any(fnmatch.fnmatchcase(n, p) for p in config.actuated)]
        if "" in self.joints:  # the card, the spec and the robot side know a joint by its name
            j = next(i for i, n in enumerate(joint_names) if n == "" and int(raw.jnt_type[i]) in (HINGE, SLIDE))
            body = mujoco.mj_id2name(raw, mujoco.mjtObj.mjOBJ_BODY, int(raw.jnt_bodyid[j])) or f"#{raw.jnt_bodyid[j]}"
            raise RobotConfigError(f"{where}: joint #{j} (on body {body!r}) has no name, and 'actuated' takes it: "
                                   "robotrl knows each commanded joint by its name (the policy's card, the robot's "
                                   "JointState): give it a name in the MJCF, or 'actuated' patterns that leave it out")
        for pattern, _ in config.joints:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in joint_names):
                raise RobotConfigError(f"{where}: joints.{pattern!r} matches no joint of the model "
                                       f"({listing(movable)})")

    def _check_names(self, raw: mujoco.MjModel) -> None:
        """The base, IMU site, feet and end effector the config names are objects of the model (a foot is no part
        of the base, nor named twice)."""
        config, where = self.config, self.config.where
        body_names = names_of(raw, mujoco.mjtObj.mjOBJ_BODY, raw.nbody)
        site_names = names_of(raw, mujoco.mjtObj.mjOBJ_SITE, raw.nsite)
        geom_names = names_of(raw, mujoco.mjtObj.mjOBJ_GEOM, raw.ngeom)
        if config.base is not None and config.base not in body_names:
            raise RobotConfigError(f"{where}: base names body {config.base!r}, which the model lacks "
                                   f"(bodies: {listing(body_names)})")
        if config.imu_site is not None and config.imu_site not in site_names:
            raise RobotConfigError(f"{where}: imu_site names site {config.imu_site!r}, which the model lacks "
                                   f"(sites: {listing(site_names)})")
        for foot in config.feet:
            if foot not in body_names and foot not in geom_names and foot not in site_names:
                raise RobotConfigError(f"{where}: feet names {foot!r}, which is neither a body, a geom nor a site of "
                                       f"the model (bodies: {listing(body_names)})")
        owner = {f: (body_names.index(f) if f in body_names else int(raw.geom_bodyid[geom_names.index(f)])
                     if f in geom_names else int(raw.site_bodyid[site_names.index(f)]))
                 for f in config.feet}  # each foot's body
        for f in config.feet:
            if config.base in body_names and owner[f] == body_names.index(config.base):
                raise RobotConfigError(f"{where}: feet names {f!r}, which is the base {config.base!r} or on it; "
                                       "feet are the lower-leg bodies or geoms that touch the ground (the base "
                                       "touching the ground ends an episode)")
            if f not in body_names and owner[f] in [owner[g] for g in config.feet if g in body_names]:
                what = "geom" if f in geom_names else "site"
                raise RobotConfigError(f"{where}: feet names {what} {f!r} and also its body "
                                       f"{body_names[owner[f]]!r}: the same foot twice (name one of them)")
        if config.end_effector is not None and config.end_effector not in site_names + body_names:
            raise RobotConfigError(f"{where}: end_effector names {config.end_effector!r}, which is neither a site "
                                   f"nor a body of the model (sites: {listing(site_names)})")

    def missing_for(self, template: str) -> list[str]:
        """What the config still has to say for the registered template `template` (empty when the robot is ready
        for it): a PD servo's gains for every actuated joint, then the template's `needs`."""
        out = []
        no_servo = [j for j, src in getattr(self, "servo_source", {}).items() if "give kp and kd" in src]
        if no_servo:
            out.append(f"kp and kd for {listing(no_servo, 6)} (a PD servo each)")
        entry = templates.find(template)
        return out + (entry.needs(self) if entry is not None else [])

    def lacking(self, field: str) -> list[str]:
        """The actuated joints whose config gives no `field` (``default``, ``action_scale``, ...)."""
        return [j for j in self.joints if field not in self.settings[j]]

    def _check_template(self, template: templates.Template, raw: mujoco.MjModel) -> None:
        """The template's needs are met and its checks of the model pass; every default pose is in its joint's
        range."""
        where = self.config.where
        missing = self.missing_for(template.name)
        if missing:
            raise RobotConfigError(f"{where}: the {template.name} template needs " + "; ".join(missing))
        template.check(self, raw)
        for j in self.joints:
            jid = mujoco.mj_name2id(raw, mujoco.mjtObj.mjOBJ_JOINT, j)
            d = self.settings[j].get("default")
            if d is not None and raw.jnt_limited[jid]:
                lo, hi = raw.jnt_range[jid]
                if not lo <= d <= hi:
                    hinge = int(raw.jnt_type[jid]) == HINGE
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
            if acts and is_position_servo(raw, acts[0]):
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
        act_of = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu) if is_position_servo(m, a)}
        self.actuator = np.array([act_of.get(j, -1) for j in jid], dtype=np.intp)  # -1: no servo (inspect only)
        self.range = np.array([m.jnt_range[j] if m.jnt_limited[j] else (-np.inf, np.inf) for j in jid], dtype=float)
        self.limited = np.array([bool(m.jnt_limited[j]) for j in jid])
        st = [self.settings[j] for j in self.joints]
        self.default = np.array([s.get("default", 0.0) for s in st])
        has = self.actuator >= 0
        a = np.where(has, self.actuator, 0)
        self.kp = np.where(has, m.actuator_gainprm[a, 0], np.nan) if m.nu else np.full(len(jid), np.nan)
        # 0.0 - x, not -x: a servo without damping has kd 0, not "-0"
        self.kd = np.where(has, 0.0 - m.actuator_biasprm[a, 2], np.nan) if m.nu else np.full(len(jid), np.nan)
        self.effort_limit = (np.where(has & m.actuator_forcelimited[a].astype(bool), m.actuator_forcerange[a, 1],
                                      np.inf) if m.nu else np.full(len(jid), np.inf))
        scale = np.array([s.get("action_scale", np.nan) for s in st])
        command = np.array([self.command_range.get(j, (-np.inf, np.inf)) for j in self.joints], dtype=float)
        command = command.reshape(len(self.joints), 2)
        entry = templates.find(self.template) if self.template is not None else None
        self.scale_derived = np.zeros(len(jid), dtype=bool)  # action_scale from effort_limit / kp (see Template)
        if entry is not None and entry.derive_action_scale:
            with np.errstate(divide="ignore", invalid="ignore"):
                derived = self.effort_limit / self.kp
                # symmetric about the default pose (a zero action holds it) where its nearer range end allows a
                # quarter of that at least; else the whole of it, cut by the range on one side
                room = np.minimum(self.default - command[:, 0], command[:, 1] - self.default)
                derived = np.where(room >= 0.25 * derived, np.minimum(derived, room), derived)
            self.scale_derived = np.isnan(scale) & np.isfinite(derived) & (derived > 0)
            scale = np.where(self.scale_derived, derived, scale)
        self.action_scale = scale  # nan: the joint's whole range of targets
        low = np.where(np.isnan(scale), command[:, 0], self.default - scale)
        high = np.where(np.isnan(scale), command[:, 1], self.default + scale)
        self.action_low = np.maximum(low, command[:, 0])
        self.action_high = np.minimum(high, command[:, 1])
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

    @classmethod
    def load(cls, path: str | Path, template: str | None = None) -> Robot:
        return cls(RobotConfig.load(path), template)

    @classmethod
    def from_model(cls, model: str | Path) -> Robot:
        return cls(RobotConfig(model=Path(model)), None)

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

