"""Terrain for the legged template (envs/terrain.py): the heights the [terrain] table asks, robots starting on their
tile, the curriculum's steps, a batch against single worlds, the table's errors, `check_env`. Real MuJoCo: heights
are read back from the compiled model and with MuJoCo's ray casts."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest
from batching import same_as_singles
from gymnasium.utils.env_checker import check_env

from robotrl.envs import make, make_vector
from robotrl.envs.legged import LeggedVelocityEnv, LeggedVelocityTask
from robotrl.envs.robot import Robot
from robotrl.envs.robot_config import RobotConfig, RobotConfigError
from robotrl.envs.terrain import TerrainSettings, next_level, rough_ground
from robotrl.envs.vector import TaskVectorEnv

ASSETS = Path(__file__).resolve().parents[2] / "envs" / "assets"
QUADRUPED = (ASSETS / "quadruped.toml").read_text().replace('model = "quadruped.xml"',
                                                             f'model = "{ASSETS / "quadruped.xml"}"')
ALL_KINDS = """
[terrain.kinds]
flat = 1
rough = 1
slope_up = 1
slope_down = 1
stairs_up = 1
stairs_down = 1
"""


def config(tmp_path: Path, terrain: str, name: str = "robot.toml", base: str = QUADRUPED) -> Path:
    p = tmp_path / name
    p.write_text(base + "\n[terrain]\n" + terrain)
    return p


def ray_height(model: mujoco.MjModel, data: mujoco.MjData, x: float, y: float) -> float:
    """The ground's height at (x, y) as MuJoCo's ray cast straight down finds it (the terrain geom, nothing else)."""
    hit = np.zeros(1, dtype=np.int32)
    dist = mujoco.mj_ray(model, data, np.array([x, y, 10.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1, hit)
    assert hit[0] == mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor"), (x, y)
    return 10.0 - dist


def deepest_contact(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    return min((c.dist for c in data.contact[:data.ncon] if floor in c.geom), default=0.0)


def test_heights_are_what_the_table_asks(tmp_path):
    """Every kind on three levels: flat 0; rough within +-height (and using it); a slope rising tan(angle) per metre
    from the platform to the tile's edge; stairs a step height per tread, up or down."""
    path = config(tmp_path, "levels = 3\ncolumns = 6\ntile_size = 4.0\nresolution = 0.05\nborder = 2.0\n"
                            "platform = 1.0\nrough_height = [0.02, 0.06]\nslope_deg = [10, 30]\n"
                            "step_height = [0.04, 0.12]\nstep_width = 0.3\nseed = 3\n" + ALL_KINDS)
    robot = Robot.load(path, "legged")
    m = robot.model
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    assert m.nhfield == 1 and not any(int(t) == int(mujoco.mjtGeom.mjGEOM_PLANE) for t in m.geom_type)
    g = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    nrow, ncol = int(m.hfield_nrow[0]), int(m.hfield_ncol[0])
    # the samples MuJoCo keeps, as heights: the geom's z plus the [0, 1] data times the elevation scale
    z = m.geom_pos[g, 2] + m.hfield_data.reshape(nrow, ncol).astype(float) * m.hfield_size[0, 2]
    assert (ncol, nrow) == (round((3 * 4 + 4) / 0.05) + 1, round((6 * 4 + 4) / 0.05) + 1)
    x_of = m.geom_pos[g, 0] - m.hfield_size[0, 0] + np.arange(ncol) * 0.05
    y_of = m.geom_pos[g, 1] - m.hfield_size[0, 1] + np.arange(nrow) * 0.05

    def centre(level, column):  # the layout by hand: levels along x after the border's far half, columns around y=0
        return -1.0 + 2.0 + (level + 0.5) * 4.0, -12.0 + (column + 0.5) * 4.0

    def tile_samples(level, column):
        cx, cy = centre(level, column)
        xs, ys = np.abs(x_of - cx) < 2.0 - 1e-6, np.abs(y_of - cy) < 2.0 - 1e-6
        return z[np.ix_(ys, xs)]

    assert np.abs(ray_height(m, d, 0.0, 5.0)) < 1e-6 and np.abs(z[:, :20]).max() < 1e-6  # the border is flat
    for level, frac in enumerate((0.0, 0.5, 1.0)):
        flat, rough = tile_samples(level, 0), tile_samples(level, 1)
        assert np.abs(flat).max() < 1e-6
        h = 0.02 + frac * 0.04
        assert np.abs(rough).max() <= h + 1e-6 and rough.max() > 0.9 * h and rough.min() < -0.9 * h
        cx, cy = centre(level, 1)
        for k in range(20):  # MuJoCo's surface between the samples stays within them
            u, v = np.random.default_rng(k).uniform(-1.9, 1.9, 2)
            assert abs(ray_height(m, d, cx + u, cy + v)) <= h + 1e-6
        rise = math.tan(math.radians(10 + frac * 20)) * (2.0 - 0.5)
        for column, sign in ((2, -1.0), (3, 1.0)):  # slope up: the centre lies in a pit; down: on a peak
            cx, cy = centre(level, column)
            assert ray_height(m, d, cx, cy) == pytest.approx(sign * rise, abs=1e-5)  # the platform
            assert ray_height(m, d, cx + 0.3, cy - 0.4) == pytest.approx(sign * rise, abs=1e-5)
            for x in (0.5, 1.0, 1.25, 1.95):  # a straight rise from the platform's edge to the tile's, both ways
                want = sign * math.tan(math.radians(10 + frac * 20)) * (2.0 - x)
                assert ray_height(m, d, cx + x, cy) == pytest.approx(want, abs=1e-5)
                assert ray_height(m, d, cx, cy - x) == pytest.approx(want, abs=1e-5)
        step = 0.04 + frac * 0.08
        for column, sign in ((4, -1.0), (5, 1.0)):  # treads of 0.3 m from the edge: 0, 1, .. 4 steps, then the platform
            cx, cy = centre(level, column)
            for k, mid in enumerate((1.85, 1.55, 1.25, 0.95, 0.65, 0.2)):  # the last on the platform
                want = sign * step * k
                assert ray_height(m, d, cx - mid, cy) == pytest.approx(want, abs=1e-5), (level, column, k)
                assert ray_height(m, d, cx, cy + mid) == pytest.approx(want, abs=1e-5), (level, column, k)
            assert ray_height(m, d, cx, cy) == pytest.approx(sign * step * math.floor(1.5 / 0.3 + 1e-9), abs=1e-5)


def test_rough_ground_builds_the_same_robot_on_rough_ground_of_a_height():
    robot = Robot.load(ASSETS / "quadruped.toml", "legged")
    rough = rough_ground(robot, 0.04, seed=1)
    m = rough.model
    g = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    z = m.geom_pos[g, 2] + m.hfield_data.astype(float) * m.hfield_size[0, 2]
    inside = np.abs(z) > 1e-9  # the rough tile (its 2 m border is flat)
    assert inside.mean() > 0.8 and np.abs(z).max() <= 0.04 + 1e-6 and z.max() > 0.039 and z.min() < -0.039
    assert rough.model.nbody == robot.model.nbody and np.array_equal(rough.kp, robot.kp)
    env = LeggedVelocityEnv(rough)
    env.reset(seed=0)
    for _ in range(50):
        _, _, term, _, info = env.step(rough.default)
        assert not term
    assert info["terrain_level"] == 0.0
    env.close()
    with pytest.raises(ValueError, match=r"height must be a number or \[easiest, hardest\], each in \[0, 1\] m"):
        rough_ground(robot, -0.1)


def test_the_rough_perturbation_builds_its_task_on_rough_ground_and_the_nominal_one_keeps_the_floor():
    from robotrl.envs.perturb import parse_condition, rebuilt

    assert rebuilt(parse_condition("friction=0.4")) is None  # a parameter change: the nominal task serves
    change = rebuilt(parse_condition("rough=0.04,friction=0.4"))
    vec = make_vector("robotrl/Quadruped-v0", 2, config_change=change)
    m = vec.task.model
    g = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert int(m.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_HFIELD)
    z = m.geom_pos[g, 2] + m.hfield_data.astype(float) * m.hfield_size[0, 2]
    assert np.abs(z).max() <= 0.04 + 1e-6 and z.max() > 0.039
    vec.close()
    nominal = make_vector("robotrl/Quadruped-v0", 2)
    assert nominal.task.model.nhfield == 0
    nominal.close()


@pytest.mark.parametrize("kind", ["stairs_down", "rough"])
def test_a_robot_starts_on_its_tile_and_stands_there(tmp_path, kind):
    """On a raised tile (stairs: the platform 0.5 m up) and on rough ground: the robot starts at the tile's centre,
    lifted by the ground there (not in it, not above it), and holding its pose it stands at that height."""
    path = config(tmp_path, f"levels = 1\ncolumns = 1\ntile_size = 4.0\nborder = 2.0\nplatform = 1.0\n"
                            "step_height = 0.125\nstep_width = 0.35\nrough_height = 0.03\n"
                            f"[terrain.kinds]\n{kind} = 1\n")
    env = make(f"legged:{path}", push_interval_s=0.0)
    u = env.unwrapped
    env.reset(seed=4)
    u.set_command(0.0, 0.0, 0.0)
    d = u.data
    ground = 0.5 if kind == "stairs_down" else u.task.curriculum.ground[0, 0]
    assert kind == "rough" or u.task.curriculum.ground[0, 0] == pytest.approx(0.5)  # 4 steps of 0.125 m
    assert kind == "stairs_down" or 0.02 < ground <= 0.03
    assert d.qpos[0:2] == pytest.approx((1.0 + 2.0, 0.0))  # level 0's centre: x = -border/2 + border + tile/2
    assert d.qpos[2] == pytest.approx(u.stand_height + ground, abs=1e-12)
    # not inside the ground: no deeper in it than the same start on the flat floor (feet settled on it, joints
    # perturbed by reset_noise) is in that
    flat = make("robotrl/Quadruped-v0").unwrapped.model
    on_flat = mujoco.MjData(flat)
    on_flat.qpos[:] = d.qpos
    on_flat.qpos[:3] -= (3.0, 0.0, ground)
    mujoco.mj_forward(flat, on_flat)
    assert on_flat.ncon > 0 and (d.ncon > 0 or kind == "rough")  # rough: lifted onto the highest bump under it
    assert deepest_contact(u.model, d) >= deepest_contact(flat, on_flat) - 1e-9
    for _ in range(round(1.0 / u.dt)):
        _, _, term, _, info = env.step(u.robot.default)
        assert not term
    assert info["feet_contact"].sum() >= 3
    assert u.data.qpos[2] == pytest.approx(u.stand_height + (0.5 if kind == "stairs_down" else 0.0), abs=0.035)
    env.close()


def test_curriculum_steps_by_hand():
    s = TerrainSettings(levels=5, tile_size=4.0, start_level=2)
    rng = np.random.default_rng(0)
    assert next_level(2, 2.5, 10.0, s, rng) == 3  # farther than half a tile (2 m): up, whatever was asked
    assert next_level(2, 1.0, 3.0, s, rng) == 1  # less than half of the 3 m asked: down
    assert next_level(2, 1.0, 1.8, s, rng) == 2  # 1.0 m of 1.8 asked: more than half, less than 2 m: stays
    assert next_level(2, 0.3, 0.0, s, rng) == 2  # told to stand, stood
    assert next_level(0, 0.0, 5.0, s, rng) == 0  # nothing below the easiest
    same = np.random.default_rng(7)
    passed = [next_level(4, 3.0, 0.0, s, np.random.default_rng(7)) for _ in range(3)]
    assert passed == [int(same.integers(5))] * 3  # past the hardest: a random level, from the world's generator


def test_curriculum_steps_through_the_task(tmp_path):
    """A world told to walk 0.8 m/s that stands still for 2 s (asked 1.6 m, walked ~0) goes down a level; one moved
    2.5 m from its start goes up, and starts at the next level's tile."""
    path = config(tmp_path, "levels = 6\ncolumns = 6\ntile_size = 4.0\nborder = 2.0\nstart_level = 3\n" + ALL_KINDS)
    task = LeggedVelocityTask(Robot.load(path, "legged"), num_worlds=2, threads=0, push_interval_s=0.0)
    task.seed([0, 1], [5, 6])
    task.reset([0, 1])
    cur = task.curriculum
    start = cur.level.copy()
    assert all(1 <= lv <= 3 for lv in start), start  # these seeds draw levels with room to go down and up
    for i in (0, 1):
        task.set_command(i, 0.8, 0.0, 0.0)
        np.testing.assert_allclose(task.worlds.qpos[i, :2], cur.terrain.centre(start[i], cur.column[i]))
    steps = round(2.0 / task.dt)
    for _ in range(steps):
        task.step(np.tile(task.robot.default, (2, 1)))
    np.testing.assert_allclose(cur.asked, 0.8 * steps * task.dt, rtol=1e-12)
    task.worlds.qpos[1, 0] += 2.5  # world 1 carried 2.5 m along
    walked = np.hypot(*(task.worlds.qpos[0, :2] - cur.start_xy[0]))
    assert walked < 0.8
    task.reset([0, 1])
    assert list(cur.level) == [start[0] - 1, start[1] + 1]
    np.testing.assert_allclose(task.worlds.qpos[1, :2], cur.terrain.centre(start[1] + 1, cur.column[1]))
    assert task.terrain_level == pytest.approx((start[0] - 1 + start[1] + 1) / 2)
    task.close()


def test_an_episode_is_cut_at_the_terrains_edge_not_failed(tmp_path):
    path = config(tmp_path, "levels = 2\ncolumns = 1\ntile_size = 4.0\nborder = 2.0\n[terrain.kinds]\nflat = 1\n")
    env = make(f"legged:{path}", push_interval_s=0.0)
    u = env.unwrapped
    env.reset(seed=0)
    for _ in range(3):
        _, _, term, trunc, _ = env.step(u.robot.default)
        assert not term and not trunc
    u.task.worlds.qpos[0, 0] = -1.0 + 0.4  # 0.4 m from the field's low-x edge (x = -border / 2)
    _, _, term, trunc, _ = env.step(u.robot.default)
    assert trunc and not term
    env.close()


@pytest.mark.parametrize("sim2real", [None, {"randomize_friction": 0.3, "randomize_mass": 0.1, "action_delay": 1}])
def test_each_world_of_a_batch_on_terrain_is_the_single_world_seeded_alike(tmp_path, sim2real):
    """With and without sim-to-real settings (each world's model copy then carries the heightfield too)."""
    path = config(tmp_path, "levels = 4\ncolumns = 6\ntile_size = 4.0\nborder = 2.0\nstart_level = 3\n" + ALL_KINDS)
    task, n = f"legged:{path}", 4
    vec = make_vector(task, n, sim2real, episode_s=1.0, push_interval_s=0.5)
    assert isinstance(vec, TaskVectorEnv)
    singles = [make(task, sim2real, episode_s=1.0, push_interval_s=0.5) for _ in range(n)]
    ends = same_as_singles(vec, singles, 200, 20)
    assert ends > n  # episodes ended and the worlds moved on the curriculum
    levels = [e.unwrapped.task.curriculum.level[0] for e in singles]
    assert list(vec.task.curriculum.level) == levels
    assert list(vec.task.curriculum.column) == [e.unwrapped.task.curriculum.column[0] for e in singles]
    _, _, _, _, info = vec.step(np.tile(singles[0].unwrapped.robot.default, (n, 1)))
    np.testing.assert_array_equal(info["terrain_level"], levels)
    vec.close()


@pytest.mark.parametrize(("terrain", "message"), [
    ("lava = 1\n", r"\[terrain\]: unknown key\(s\) lava; known: kinds, levels"),
    ("levels = 0\n", r"\[terrain\]: levels must be an integer in \[1, 100\], got 0"),
    ("levels = 2.5\n", r"\[terrain\]: levels must be an integer"),
    ("kinds = { lava = 1.0 }\n", r"\[terrain\]: kinds: unknown kind 'lava'; known: flat, rough"),
    ("kinds = { rough = -1 }\n", r"\[terrain\]: kinds.rough must be a proportion >= 0, got -1"),
    ("kinds = { rough = 0 }\n", r"\[terrain\]: kinds: at least one kind must have a proportion above 0"),
    ("tile_size = 4.03\n", r"\[terrain\]: tile_size \(4.03 m\) must be a whole number of resolution \(0.1 m\)"),
    ("rough_height = [0.1]\n", r"\[terrain\]: rough_height must be a number or \[easiest, hardest\]"),
    ("slope_deg = 75\n", r"\[terrain\]: slope_deg must be a number or \[easiest, hardest\], each in \[0, 60\] deg"),
    ("step_width = 0.1\n", r"\[terrain\]: step_width \(0.1 m\) must be at least 2 x resolution"),
    ("levels = 3\nstart_level = 3\n", r"\[terrain\]: start_level \(3\) must be below levels \(3\)"),
    ("columns = 2\n", r"\[terrain\]: columns \(2\) must be at least the number of kinds with a proportion \(6"),
    ("resolution = 0.005\nlevels = 50\n", r"\[terrain\]: the heightfield would hold .* samples, over 16,000,000"),
    ("seed = true\n", r"\[terrain\]: seed must be an integer"),
])
def test_a_bad_terrain_table_is_one_line(tmp_path, terrain, message):
    path = config(tmp_path, terrain)
    with pytest.raises(RobotConfigError, match=message) as e:
        RobotConfig.load(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_terrain_where_it_cannot_be_is_one_line(tmp_path):
    xml = (ASSETS / "quadruped.xml").read_text().replace(
        "<worldbody>", '<worldbody>\n    <geom name="ground" type="plane" size="0 0 0.05"/>', 1)
    (tmp_path / "planar.xml").write_text(xml)
    path = config(tmp_path, "levels = 2\n", base=QUADRUPED.replace(str(ASSETS / "quadruped.xml"),
                                                                   str(tmp_path / "planar.xml")))
    with pytest.raises(RobotConfigError, match=r"has a ground plane of its own: remove the plane from the MJCF, or the "
                                               r"\[terrain\] table$"):
        Robot.load(path, "legged")
    arm = (ASSETS / "arm6.toml").read_text().replace('model = "arm6.xml"', f'model = "{ASSETS / "arm6.xml"}"')
    path = config(tmp_path, "levels = 2\n", name="arm.toml", base=arm)
    with pytest.raises(RobotConfigError, match=r"\[terrain\]: the reach template has no floor to shape into terrain"):
        Robot.load(path, "reach")


def test_check_env_passes_on_terrain(tmp_path):
    path = config(tmp_path, "levels = 3\ncolumns = 6\ntile_size = 4.0\nborder = 2.0\n" + ALL_KINDS)
    env = make(f"legged:{path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
        check_env(env, skip_render_check=True)
    assert env.unwrapped.task_spec.extras["robot"]["settings"]["terrain"]["levels"] == 3  # an edit is noticed
    env.close()
