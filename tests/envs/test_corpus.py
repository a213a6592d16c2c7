"""The corpus of test robots (envs/assets/corpus/, issue 33): robots of our own making that differ the way published
models do, each through the legged template. Every robot in the folder is checked (found by globbing it), so a robot
added later is checked too: the template builds and passes check_env, every observation element is what its kind
says (recomputed here from MjData), the robot stands on its default pose, a batch of worlds is its single worlds,
the robot side rebuilds the observation from what a robot publishes, and `robot inspect` calls it ready.

Then what the corpus was made for: a model whose free joint has no name (as MuJoCo Menagerie writes it) goes
through inspect, check_env and a short training run; feet given as sites see their contacts; and a robot the
template cannot use is refused in one line naming what to change. Real MuJoCo throughout.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
from batching import same_as_singles
from gymnasium.utils.env_checker import check_env

from robotrl.cli import main
from robotrl.deploy.observation import ObservationBuilder
from robotrl.envs import make, make_vector
from robotrl.envs.mjcf import foot_geoms
from robotrl.envs.robot import Robot
from robotrl.simrobot.sensors import RobotSensors

CORPUS = Path(__file__).resolve().parents[2] / "envs" / "assets" / "corpus"
CONFIGS = sorted(CORPUS.glob("*.toml"))
IDS = [p.stem for p in CONFIGS]
KINDS = ("base_ang_vel", "projected_gravity", "velocity_command", "joint_pos_rel", "joint_vel", "prev_action")


def _task(config: Path) -> str:
    return f"legged:{config}"


def _cli(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _robots() -> dict[str, Robot]:
    return {p.stem: Robot.load(p, "legged") for p in CONFIGS}


def test_the_corpus_differs_the_way_published_models_do():
    """What the corpus is for (issue 33, item 1): quadrupeds from ~3 to ~40 kg with gains for their size and a biped
    with five joints a leg; free joints named and unnamed; no actuators, torque motors and position servos; feet as
    bodies, geoms and sites; a mesh for looks on a geom that does not collide; both hip sign conventions."""
    robots = _robots()
    quadrupeds = {n: r for n, r in robots.items() if len(r.config.feet) == 4}
    bipeds = {n: r for n, r in robots.items() if len(r.config.feet) == 2}
    assert len(quadrupeds) >= 3 and bipeds
    mass = {n: float(r.model.body_mass.sum()) for n, r in robots.items()}
    assert min(mass[n] for n in quadrupeds) < 4 and max(mass[n] for n in quadrupeds) > 35, mass
    assert any(10 < mass[n] < 15 for n in quadrupeds), mass
    for n, r in quadrupeds.items():  # stiffer servos for heavier robots, within what makers give
        assert np.nanmin(r.kp) >= 15 and np.nanmax(r.kp) <= 100, (n, r.kp)
    kp = sorted((mass[n], float(np.median(r.kp))) for n, r in quadrupeds.items())
    assert kp[-1][1] >= 2.5 * kp[0][1], kp
    for r in bipeds.values():
        assert len(r.joints) == 10
        assert {"hip_yaw", "hip_roll", "hip_pitch", "knee", "ankle"} <= {j.split("_", 1)[1] for j in r.joints}

    raw = {n: r.raw_model for n, r in robots.items()}
    free = {n: next(j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE) for n, m in raw.items()}
    names = {n: mujoco.mj_id2name(raw[n], mujoco.mjtObj.mjOBJ_JOINT, j) for n, j in free.items()}
    assert None in names.values() and any(names.values()), names
    actuators = {("none" if m.nu == 0 else "position" if m.actuator_biastype[0] == mujoco.mjtBias.mjBIAS_AFFINE
                  else "motor") for m in raw.values()}
    assert actuators == {"none", "position", "motor"}, actuators
    feet = set()
    for r in robots.values():
        m = r.raw_model
        for f in r.config.feet:
            feet.add("body" if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f) >= 0 else
                     "geom" if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f) >= 0 else "site")
    assert feet == {"body", "geom", "site"}
    meshes = [(m, g) for m in raw.values() for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH]
    assert meshes and all(m.geom_contype[g] == m.geom_conaffinity[g] == 0 for m, g in meshes)
    # hip abduction (about x): axes alike on both sides (defaults +x / -x), or mirrored (defaults of one sign)
    conventions = set()
    for r in quadrupeds.values():
        m = r.raw_model
        hips = [(m.jnt_axis[m.joint(j).id][0], d) for j, d in zip(r.joints, r.default, strict=True)
                if abs(m.jnt_axis[m.joint(j).id][0]) == 1.0]
        assert len(hips) == 4
        conventions.add("mirrored" if len({a for a, _ in hips}) == 2 and len({np.sign(d) for _, d in hips}) == 1
                        else "alike" if len({a for a, _ in hips}) == 1 and len({np.sign(d) for _, d in hips}) == 2
                        else "?")
    assert conventions == {"mirrored", "alike"}, conventions


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_the_template_builds_and_passes_check_env(config):
    env = make(_task(config))
    check_env(env.unwrapped, skip_render_check=True)
    spec = env.get_wrapper_attr("task_spec")
    u = env.unwrapped
    assert spec.deployable and spec.obs_dim == 9 + 3 * len(u.robot.joints) == env.observation_space.shape[0]
    assert [e.kind for e in spec.observation] == [k for k, n in zip(KINDS, (3, 3, 3) + (len(u.robot.joints),) * 3,
                                                                     strict=True) for _ in range(n)]
    env.close()


def _expected(element, u, d, base: int, action: np.ndarray | None) -> float:
    """One observation element recomputed from MjData, without the kinds registry."""
    m, ax = u.model, "xyz".find(element.axis)
    if element.kind == "base_ang_vel":  # the base's angular velocity in its own frame, from MuJoCo's velocity query
        v = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, base, v, 1)
        return v[ax]
    if element.kind == "projected_gravity":  # world down in the base frame: R^T (0, 0, -1)
        return -d.xmat[base].reshape(3, 3)[2, ax]
    if element.kind == "velocity_command":
        return u.command[("x", "y", "yaw").index(element.axis)]
    j = m.joint(element.name).id
    k = u.robot.joints.index(element.name)
    if element.kind == "joint_pos_rel":
        return d.qpos[m.jnt_qposadr[j]] - u.robot.settings[element.name]["default"]
    if element.kind == "joint_vel":
        return d.qvel[m.jnt_dofadr[j]]
    assert element.kind == "prev_action", element
    if action is None:
        return 0.0
    lo, hi = u.low[k], u.high[k]
    return (np.clip(action[k], lo, hi) - (lo + hi) / 2) / ((hi - lo) / 2)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_every_observation_element_is_recomputed_from_mjdata(config):
    env = make(_task(config))
    u = env.unwrapped
    spec = env.get_wrapper_attr("task_spec")
    base = mujoco.mj_name2id(u.model, mujoco.mjtObj.mjOBJ_BODY, u.robot.config.base)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=1)
    action = None
    moved = np.zeros(len(obs), dtype=bool)
    for t in range(150):
        d = u.data
        expected = np.array([_expected(e, u, d, base, action) for e in spec.observation])
        np.testing.assert_allclose(obs, expected, rtol=0, atol=1e-9, err_msg=f"step {t}")
        moved |= np.abs(obs) > 1e-3
        action = rng.uniform(u.low * 1.2 - 0.1, u.high * 1.2 + 0.1)  # beyond the bounds too: clipped
        obs, _, term, trunc, _ = env.step(action)
        if term or trunc:
            obs, _ = env.reset()
            action = None
    still = [e.label() for e, m in zip(spec.observation, moved, strict=True) if not m and e.kind != "velocity_command"]
    assert not still, still  # a command may be "stand" all along
    env.close()


def _lowest_point(m: mujoco.MjModel, d: mujoco.MjData, g: int) -> float:
    """The lowest z of geom g (sphere, capsule or box), from its pose."""
    t, size, R = int(m.geom_type[g]), m.geom_size[g], d.geom_xmat[g].reshape(3, 3)
    if t == mujoco.mjtGeom.mjGEOM_SPHERE:
        return d.geom_xpos[g, 2] - size[0]
    if t == mujoco.mjtGeom.mjGEOM_CAPSULE:
        return d.geom_xpos[g, 2] - size[0] - abs(R[2, 2]) * size[1]
    assert t == mujoco.mjtGeom.mjGEOM_BOX, f"a foot geom of type {t}: add its lowest point here"
    return d.geom_xpos[g, 2] - float(np.abs(R[2, :]) @ size[:3])


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_the_robot_stands_two_seconds_on_its_default_pose(config):
    """Zero action (the default pose as targets), no velocity command: no episode end, every foot down, the base
    upright and at a height within 75-102 % of what the default pose's legs reach (the servos give way a little
    under the weight: a knee-back quadruped on its maker's soft gains sags and pitches nose-up by ~14 degrees)."""
    env = make(_task(config))
    u = env.unwrapped
    m = u.model
    d = mujoco.MjData(m)  # the legs' reach: the default pose hung from a base at height 0, level
    d.qpos[u._qa] = u.robot.default
    d.qpos[u._qb:u._qb + 7] = [0, 0, 0, 1, 0, 0, 0]
    mujoco.mj_kinematics(m, d)
    reach = -min(_lowest_point(m, d, g) for f in u.robot.config.feet for g in foot_geoms(m, f))
    assert 0.5 * reach < u.stand_height < 1.02 * reach, (u.stand_height, reach)
    env.reset(seed=0)
    u.set_command(0.0, 0.0, 0.0)
    heights = []
    for t in range(round(2.0 / u.dt)):
        _, _, term, trunc, info = env.step(u.robot.default)
        assert not term and not trunc, f"ended at step {t}"
        heights.append(float(u.data.qpos[u._qb + 2]))
    assert 0.75 * reach < min(heights) and max(heights) < 1.02 * reach, (min(heights), max(heights), reach)
    assert info["feet_contact"].all(), info["feet_contact"]
    assert u._observe()[5] < -math.cos(math.radians(25))  # projected gravity z: within 25 degrees of upright
    env.close()


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_a_batch_of_three_worlds_is_three_single_worlds(config):
    task = _task(config)
    vec = make_vector(task, 3, episode_s=1.0, push_interval_s=0.5)
    singles = [make(task, episode_s=1.0, push_interval_s=0.5) for _ in range(3)]
    assert same_as_singles(vec, singles, 120, 7) >= 6  # truncated every 50 steps: resets were compared too
    vec.close()


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_the_robot_side_rebuilds_the_observation_from_what_the_robot_publishes(config):
    """The card's base elements are named after the free joint (the base body's name where it has none): the
    simulated robot finds that joint in the task's model, and the node's observation builder, fed its joint states,
    odometry and IMU, assembles the training observation."""
    env = make(_task(config))
    u = env.unwrapped
    spec = env.get_wrapper_attr("task_spec").to_dict()
    base_names = {e["name"] for e in spec["observation"] if e["kind"] in ("base_ang_vel", "projected_gravity")}
    assert base_names == {u.robot.free_joint} and u.robot.free_joint
    sensors = RobotSensors(u.model, spec["observation"])
    assert sensors.base_free is not None
    builder = ObservationBuilder(spec["observation"], [a["joint"] for a in spec["action"]], use_imu=True)
    rng = np.random.default_rng(3)
    obs, _ = env.reset(seed=3)
    for t in range(60):
        names, q, dq = sensors.joint_state(u.data)
        order = rng.permutation(len(names))  # the wire's order is not ours
        builder.joint_state([names[i] for i in order], q[order], dq[order], float(t))
        builder.base_state(*sensors.odometry(u.data), float(t))
        builder.imu(*sensors.imu(u.data), float(t))
        builder.velocity_command(*u.command, float(t))
        builder.set_prev_action(u.prev_action)
        np.testing.assert_allclose(builder.build(float(t), max_age=0.5), obs, rtol=0, atol=1e-9, err_msg=f"step {t}")
        obs, _, term, trunc, _ = env.step(rng.uniform(u.low, u.high))
        if term or trunc:
            obs, _ = env.reset()
    env.close()


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_robot_inspect_calls_it_ready(config):
    code, out, err = _cli("robot", "inspect", config.with_suffix(".xml"), "--config", config)
    assert code == 0, out + err
    assert "template legged  ready" in out and "warning" not in out, out


# -- an unnamed free joint, feet as sites --------------------------------------------------------------------------

def _unnamed() -> Path:
    """The corpus robot whose free joint has no name (mid12, as MuJoCo Menagerie writes <freejoint/>)."""
    for p in CONFIGS:
        m = Robot.load(p, "legged").raw_model
        if any(m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE and not mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
               for j in range(m.njnt)):
            return p
    raise AssertionError("the corpus has no robot with an unnamed free joint")


def test_a_model_with_an_unnamed_free_joint_is_inspected_checked_and_trained(tmp_path):
    """A published model with <freejoint/> ended inspect and train in an IndexError (issue 33); the template had
    refused it since. Now the base's observations take the base body's name, in the spec, the card of a trained run
    and the model the task compiles."""
    config = _unnamed()
    robot = Robot.load(config, "legged")
    base = robot.config.base
    assert robot.free_joint == base and robot.model.joint(base).type == mujoco.mjtJoint.mjJNT_FREE
    code, out, err = _cli("robot", "inspect", config)
    assert code == 0 and f"free joint (unnamed; robotrl calls it {base!r}) on body {base!r}" in out, out + err
    env = make(_task(config))
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "robotrl", "train", "ppo", _task(config), "--steps", "2048",
                        "--num-envs", "4", "--rollout-steps", "128", "--minibatch-size", "256", "--workers", "0",
                        "--eval-episodes", "1", "--no-progress", "--out", str(run)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    spec = json.loads((run / "spec.json").read_text())  # what export embeds in the ONNX file as the card
    base_elements = [e for e in spec["observation"] if e["kind"] in ("base_ang_vel", "projected_gravity")]
    assert len(base_elements) == 6 and {e["name"] for e in base_elements} == {base}, base_elements


def test_feet_given_as_sites_see_their_contacts():
    """A foot site stands for the colliding geom of its rigid body nearest to it (the foot sphere, not the shin
    capsule), and the task's foot contact sensor watches that geom: after every physics step (random targets, the
    robot dropped from above now and then) it says what MjData's contacts of that step say."""
    config = next(p for p in CONFIGS if all(
        mujoco.mj_name2id(Robot.load(p, "legged").raw_model, mujoco.mjtObj.mjOBJ_SITE, f) >= 0
        for f in Robot.load(p, "legged").config.feet))
    env = make(_task(config))
    u = env.unwrapped
    t = u.task
    m = t.model
    feet = [foot_geoms(m, f) for f in u.robot.config.feet]
    for f, geoms in zip(u.robot.config.feet, feet, strict=True):
        s = m.site(f).id
        assert len(geoms) == 1 and m.geom_type[geoms[0]] == mujoco.mjtGeom.mjGEOM_SPHERE
        assert m.geom_bodyid[geoms[0]] == m.site_bodyid[s]
        np.testing.assert_allclose(m.geom_pos[geoms[0]], m.site_pos[s])  # the site marks the sphere's centre
    for i, geoms in enumerate(feet):
        sensor = m.sensor(f"robotrl_foot{i}")
        assert sensor.objtype == mujoco.mjtObj.mjOBJ_GEOM and sensor.objid == geoms[0]
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    seen = set()
    for k in range(1500):
        if k % 300 == 0:  # dropped from 0.2 m above its start
            d.qpos[:] = t._rest_qpos
            d.qvel[:] = 0.0
            d.qpos[t._qb + 2] += 0.2
        if k % 4 == 0:
            d.ctrl[t._act] = rng.uniform(u.low, u.high)
        mujoco.mj_step(m, d)
        for i, geoms in enumerate(feet):
            touching = any(g in geoms for g in d.contact.geom[:d.ncon].ravel())
            assert (d.sensordata[t._feet_cols[i]] > 0) == touching, (k, i)
            seen.add(touching)
    assert seen == {True, False}
    env.close()


# -- clear errors (issue 33, item 5) --------------------------------------------------------------------------------

def _copy(tmp_path: Path, config: Path, *, xml: dict[str, str] | None = None, toml: dict[str, str] | None = None
          ) -> Path:
    """A copy of the corpus (models, mesh) in tmp_path, with `config` and its model edited."""
    for f in CORPUS.iterdir():
        shutil.copy(f, tmp_path / f.name)
    for path, edits in ((tmp_path / config.with_suffix(".xml").name, xml), (tmp_path / config.name, toml)):
        text = path.read_text()
        for a, b in (edits or {}).items():
            assert a in text, a
            text = text.replace(a, b)
        path.write_text(text)
    return tmp_path / config.name


def _one_line_error(argv: list[object], *needles: str) -> None:
    code, _, err = _cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("robotrl: error: "), err
    for n in needles:
        assert n in lines[0], (n, err)


def _corpus(stem: str) -> Path:
    return CORPUS / f"{stem}.toml"


def test_a_robot_without_a_free_joint_is_refused_in_one_line(tmp_path):
    p = _copy(tmp_path, _corpus("compact3"), xml={'<freejoint name="float"/>': ""})
    _one_line_error(["tasks", "--spec", _task(p)], "the legged template needs a free joint (a legged robot's "
                    "floating base; the model has none)")


@pytest.mark.parametrize("stem, foot, body, needle", [
    ("mid12", "FR_foot", "FR_thigh", "which does not touch the ground while the robot stands on its default pose (its "
                                     "centre stays 0.22 m high)"),
    ("long40", "LH_FOOT", "LH_THIGH", "which does not touch the ground while the robot stands"),
    ("compact3", "front_left_paw", "front_left_upper", "which has no geom that collides (contype or conaffinity)"),
])
def test_feet_that_never_touch_the_ground_are_refused_in_one_line(tmp_path, stem, foot, body, needle):
    """A `feet` name that is a thigh, high above the ground while the robot stands, or whose geoms collide with
    nothing: every foot term would be a constant. Named, with what to name instead."""
    p = _copy(tmp_path, _corpus(stem), toml={f'"{foot}"': f'"{body}"'})
    _one_line_error(["tasks", "--spec", _task(p)], f"feet names {body!r}, {needle}", "name the bodies, geoms or "
                    "sites at the ends of the legs")
    code, out, _ = _cli("robot", "inspect", p)
    assert code == 2 and f"template legged  refused: feet names {body!r}, which" in out, out


@pytest.mark.parametrize("stem, edit, needle", [
    ("compact3", {"kp = 20.0": "kp = 0.5"}, "the base sinks to 0.07 m, under half the 0.15 m its legs reach; raise kp "
                                            "(now 0.5 to 0.5)"),
    ("long40", {"kp = 80.0": "kp = 5.0"}, "the base sinks to 0.10 m, under half the 0.55 m its legs reach"),
    ("biped7", {"effort_limit = 10.0": "effort_limit = 10.0\nkp = 4.0\nkd = 0.1"},
     "the base tilts 58 degrees, beyond max_tilt (57); raise kp (now 4 to 60)"),
    ("long40", {'size="0.5 0.14 0.09"': 'size="0.5 0.14 0.6"'}, "the base 'base' touches the ground"),
])
def test_a_default_pose_that_collapses_under_its_gains_is_refused_in_one_line(tmp_path, stem, edit, needle):
    """Servos too weak for the robot's weight (the legs fold onto their joints' limits), ankles too weak to balance
    a biped (it topples), a base that reaches below the feet: every episode would be a fall."""
    p = _copy(tmp_path, _corpus(stem), **{"xml" if "size" in next(iter(edit)) else "toml": edit})
    _one_line_error(["tasks", "--spec", _task(p)], "the robot does not stand on its default pose: holding it for 2 s, ",
                    needle, "or change the default pose so that the legs hold the base up")
