"""`robotrl robot inspect`: the model as robotrl sees it (joints, servos, actuators, bodies, sites, sensors) and,
for each registered template (`robotrl.envs.templates`), what the robot config still has to say, why training
would refuse the robot, or that it is ready: the template's env built as training builds it, holding the default
pose for a second.

    text, failing = inspect_report(Robot(config))      # failing: the templates that make the command exit 2
"""

from __future__ import annotations

import warnings
from typing import Any

import mujoco
import numpy as np

from robotrl.envs import templates
from robotrl.envs.mjcf import FREE, HINGE, SLIDE, free_joint_name, is_position_servo, names_of
from robotrl.envs.robot import Robot
from robotrl.envs.robot_config import MAX_TIMESTEP, MIN_TIMESTEP, RobotConfigError, listing
from robotrl.errors import shorten_numbers


def inspect_report(robot: Robot) -> tuple[str, list[str]]:
    """The report's text, and the templates that cannot train on this robot although they should: one refused
    (the robot meets its needs but training it would fail: a bad setting, a default pose out of range), or
    one that the config is written for (its own table, ``[legged]``; a field among the template's `signs`,
    ``base``, ``end_effector``) and that still lacks something. `robotrl robot inspect` exits 2 when there are
    any, so that a script can check a config."""
    lines = _model_lines(robot) + _joint_lines(robot) + _object_lines(robot.raw_model)
    failing = []
    for template in templates.registered().values():
        text, fails = _template_lines(robot, template)
        lines += text
        if fails:
            failing.append(template.name)
    return shorten_numbers("\n".join(lines)), failing  # a 400-digit number from the config quoted in a refusal


def _model_lines(robot: Robot) -> list[str]:
    """The model and config files, the control rate, the angle unit, the floating base and the mass."""
    m, c = robot.raw_model, robot.config
    step = c.timestep or m.opt.timestep
    out = [f"model     {c.model}  (timestep {m.opt.timestep:g} s"
           + (f", config: {c.timestep:g} s" if c.timestep else "") + f", decimation {c.decimation}: control "
           + (f"{1.0 / (step * c.decimation):.0f} Hz)" if MIN_TIMESTEP <= step <= MAX_TIMESTEP else
              f"rate undefined: robotrl needs a timestep in [{MIN_TIMESTEP:g}, {MAX_TIMESTEP:g}] s)")]
    if c.path:
        out[0] += f"\nconfig    {c.path}"
    if robot._degrees and any(int(t) == HINGE for t in m.jnt_type):
        out.append("angles    in degrees in the MJCF (MuJoCo's default without <compiler angle=\"radian\"/>); "
                   "robotrl shows and takes radians: a range of 0.7 degrees is 0.0122 rad")
    free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == FREE]
    bname = lambda b: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)  # noqa: E731

    def jname(j: int) -> str:  # an unnamed one (<freejoint/>) by the name the base's observations get
        own = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        return repr(own) if own else f"(unnamed; robotrl calls it {free_joint_name(m, j)!r})"
    out.append("base      " + (", ".join(f"free joint {jname(j)} on body {bname(int(m.jnt_bodyid[j]))!r}"
                                         for j in free) or "fixed (no free joint)"))
    out.append(f"mass      {float(m.body_mass.sum()):.2f} kg in {m.nbody - 1} bodies")
    return out


def _joint_lines(robot: Robot) -> list[str]:
    """A table of the joints: type, range, and for an actuated one its default, gains, limit and servo."""
    m = robot.raw_model
    out = [f"joints ({sum(1 for j in range(m.njnt) if int(m.jnt_type[j]) in (HINGE, SLIDE))} hinge/slide"
           f", {len(robot.joints)} actuated):",
           f"    {'name':24s} {'type':6s} {'range':>18s}  {'default':>8s} {'kp':>7s} {'kd':>6s} {'limit':>7s}  servo"]
    for j in range(m.njnt):
        t = int(m.jnt_type[j])
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        if t == int(mujoco.mjtJoint.mjJNT_BALL):
            out.append(f"    {name or f'(joint {j})':24s} ball   {'':>18s}  (passive: a ball joint is neither "
                       "observed nor commanded; the templates drive hinge and slide joints)")
        if t not in (HINGE, SLIDE):
            continue
        rng = f"[{m.jnt_range[j, 0]:.3g}, {m.jnt_range[j, 1]:.3g}]" if m.jnt_limited[j] else "unlimited"
        kind = "hinge" if t == HINGE else "slide"
        if name in robot.joints:
            k = robot.joints.index(name)
            d = robot.settings[name].get("default")
            lim = robot.effort_limit[k]
            kp, kd = (("-" if np.isnan(x) else f"{x:.3g}") for x in (robot.kp[k], robot.kd[k]))
            out.append(f"    {name:24s} {kind:6s} {rng:>18s}  {'-' if d is None else f'{d:.3g}':>8s} {kp:>7s} "
                       f"{kd:>6s} {'-' if not np.isfinite(lim) else f'{lim:.3g}':>7s}  {robot.servo_source[name]}")
        else:
            out.append(f"    {name:24s} {kind:6s} {rng:>18s}  (passive)")
    return out


def _object_lines(m: mujoco.MjModel) -> list[str]:
    """The model's actuators (kind and joint), bodies, sites and sensors by name."""
    acts = []
    for a in range(m.nu):
        kind = "position servo" if is_position_servo(m, a) else (
            "motor" if int(m.actuator_biastype[a]) == int(mujoco.mjtBias.mjBIAS_NONE) else "actuator")
        target = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[a, 0])) \
            if int(m.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT) else "(not a joint)"
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
        acts.append(f"{name + ': ' if name else ''}{kind} on {target}")
    return [f"actuators in the model ({m.nu}): {listing(acts) if m.nu else 'none'}",
            f"bodies ({m.nbody - 1}): {listing(names_of(m, mujoco.mjtObj.mjOBJ_BODY, m.nbody)[1:], 20)}",
            f"sites ({m.nsite}): {listing(names_of(m, mujoco.mjtObj.mjOBJ_SITE, m.nsite), 20)}",
            f"sensors ({m.nsensor}): {listing(names_of(m, mujoco.mjtObj.mjOBJ_SENSOR, m.nsensor), 20)}"]


def _template_lines(robot: Robot, template: templates.Template) -> tuple[list[str], bool]:
    """The template's line (and warnings), and whether it fails: refused, or lacking something while the config
    is written for it."""
    c, t = robot.config, template.name
    missing = robot.missing_for(t)
    refusal, notes, info = (None, [], []) if missing else _trial(robot, template)
    state = ("needs: " + "; ".join(missing) if missing else f"refused: {refusal}" if refusal else "ready")
    out = [f"template {t:7s} {state}   ({template.meaning})"] + [f"         {n}" for n in info]
    out += [f"         warning: {n}" for n in notes]
    meant = t in c.templates or any(getattr(c, f) for f in template.signs)
    return out, bool(refusal or (missing and meant))


def _trial(robot: Robot, template: templates.Template) -> tuple[str | None, list[str], list[str]]:
    """Build the template's env as training does, so that 'ready' is never a promise training breaks: the
    reason it refuses the robot (a base without the free joint, a default pose outside a joint's range, a
    [template] table with an unknown key, ...), or None and notes on what a first episode shows: geoms of
    the robot that overlap at the default pose, a robot that cannot hold its default pose for a second."""
    from robotrl.envs.tasks import template_env

    c = robot.config
    with warnings.catch_warnings():  # MuJoCo's own instability warnings: said once, as a note
        warnings.simplefilter("ignore")
        try:
            env = template_env(template.name, c, f"{template.name}:{c.path or c.model}")
        except RobotConfigError as e:
            text, prefix = str(e), f"{c.where}: "
            return (text[len(prefix):] if text.startswith(prefix) else text), [], []
        try:
            return None, _first_second(robot, template, env), _derived_scales(env.robot)
        finally:
            env.close()


def _derived_scales(robot: Robot) -> list[str]:
    """The action scales the template derived where the config gives none (`Template.derive_action_scale`)."""
    derived = np.flatnonzero(robot.scale_derived)
    if not len(derived):
        return []
    scales = [f"{robot.joints[i]} {robot.action_scale[i]:.3g}" for i in derived]
    return [f"action_scale from effort_limit / kp (the config gives none) [rad or m]: {listing(scales, 12)}"]


def _first_second(robot: Robot, template: templates.Template, env: Any) -> list[str]:
    """Notes on a first second of the built env holding the default pose: overlapping geoms at the start, an
    episode that ends (where the template says what that means), a simulation that diverges."""
    notes = []
    env.reset(seed=0)
    m, d = env.model, env.data
    body = lambda g: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[g]))  # noqa: E731
    root = m.body_rootid[m.geom_bodyid]
    pairs = sorted({tuple(sorted((body(a), body(b)))) for a, b in d.contact.geom[:d.ncon]
                    if root[a] == root[b] != 0 and m.geom_bodyid[a] != m.geom_bodyid[b]})
    if pairs:
        notes.append(f"geoms overlap at the default pose ({listing([f'{a}/{b}' for a, b in pairs], 6)}): "
                     "the physics pushes them apart; exclude the pairs (<contact><exclude body1=... "
                     "body2=.../></contact>) or give the geoms contype/conaffinity that do not collide")
    if template.at_rest is not None:
        template.at_rest(env)
    second = max(1, round(1.0 / env.dt))
    for t in range(second):
        if env.step(robot.default)[2] and template.held_ends:
            notes.append(f"holding the default pose, an episode ends after {t + 1} step(s) of {second} "
                         f"{template.held_ends}")
            break
    unstable = robot.unstable(d, "; it resets the state and training learns nothing")
    if unstable:
        notes.append(unstable)
    return notes
