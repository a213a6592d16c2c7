"""Your own robot: an MJCF model + robot config -> tasks (legged velocity tracking, arm reaching).

Real MuJoCo throughout: our quadruped, a second legged model with other joint names, no actuators and
feet given as geoms (tests/assets/critter.*), and a 3-joint arm whose motors the config turns into PD
servos (tests/assets/arm3.*).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robotrl.envs import Observer, make
from robotrl.envs.robot import Robot
from robotrl.envs.robot_config import RobotConfigError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
QUADRUPED = Path(__file__).resolve().parents[2] / "envs" / "assets" / "quadruped.toml"
LEGGED = {"quadruped": "robotrl/Quadruped-v0", "critter": f"legged:{ASSETS / 'critter.toml'}"}


@pytest.mark.parametrize("name", sorted(LEGGED))
def test_legged_template_builds_passes_check_env_and_every_element_is_what_it_says(name):
    env = make(LEGGED[name])
    check_env(env.unwrapped, skip_render_check=True)
    spec = env.get_wrapper_attr("task_spec")
    u = env.unwrapped
    assert spec.deployable and spec.obs_dim == env.observation_space.shape[0] == 9 + 3 * len(u.robot.joints)
    assert {e.kind for e in spec.observation} == {"base_ang_vel", "projected_gravity", "velocity_command",
                                                  "joint_pos_rel", "joint_vel", "prev_action"}
    assert all(a.kind == "position" for a in spec.action)
    observer = Observer(u.model, spec.observation)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    checked = 0
    for t in range(300):
        a = rng.uniform(env.action_space.low, env.action_space.high)
        obs, r, term, trunc, info = env.step(a)
        recomputed = observer(u.data, prev_action=dict(zip(u.robot.joints, u.prev_action, strict=True)),
                              command=dict(zip(("x", "y", "yaw"), u.command, strict=True)))
        np.testing.assert_allclose(recomputed, obs, atol=1e-12, err_msg=f"step {t}")
        assert math.isclose(r, max(0.0, sum(info["reward_terms"].values())), abs_tol=1e-12)
        checked += 1
        if term or trunc:
            obs, _ = env.reset()
    assert checked == 300


def test_projected_gravity_is_down_standing_and_rotates_with_the_base():
    env = make("robotrl/Quadruped-v0")
    env.reset(seed=0)
    u = env.unwrapped
    quat = u.task.worlds.qpos[0, u._qb + 3:u._qb + 7]  # the world's state, which the observation reads
    quat[:] = [1, 0, 0, 0]
    np.testing.assert_allclose(u._observe()[3:6], [0, 0, -1], atol=1e-12)
    for theta in (0.3, -0.7):  # roll about x: gravity in the base frame is (0, -sin, -cos)
        quat[:] = [math.cos(theta / 2), math.sin(theta / 2), 0, 0]
        np.testing.assert_allclose(u._observe()[3:6], [0, -math.sin(theta), -math.cos(theta)], atol=1e-12)
    theta = 0.4  # pitch about y: (sin, 0, -cos)
    quat[:] = [math.cos(theta / 2), 0, math.sin(theta / 2), 0]
    np.testing.assert_allclose(u._observe()[3:6], [math.sin(theta), 0, -math.cos(theta)], atol=1e-12)


def test_the_configs_pd_gains_really_act():
    """A servo from the config (the arm's model has motors, the config turns them into kp/kd servos) steps
    its joint to a new target, and the critter's config servos hold it up."""
    env = make(f"reach:{ASSETS / 'arm3.toml'}")
    env.reset(seed=0)
    u = env.unwrapped
    assert u.robot.kp.tolist() == [60.0, 60.0, 60.0] and u.robot.kd.tolist() == [3.0, 3.0, 3.0]
    i = u.robot.joints.index("yaw")
    target = u.robot.default.copy()
    target[i] = 1.0
    for _ in range(100):  # 2 s
        env.step(target)
    assert abs(u.data.qpos[u._qa[i]] - 1.0) < 0.02
    weak = make(f"reach:{ASSETS / 'arm3.toml'}")  # the same step with a tenth of the stiffness falls short
    weak.unwrapped.model.actuator_gainprm[:, 0] /= 10
    weak.unwrapped.model.actuator_biasprm[:, 1] /= 10
    weak.reset(seed=0)
    for _ in range(10):
        weak.step(target)
    assert abs(weak.unwrapped.data.qpos[weak.unwrapped._qa[i]] - 1.0) > 0.2

    critter = make(LEGGED["critter"])
    critter.reset(seed=0)
    c = critter.unwrapped
    for _ in range(100):
        _, _, term, _, _ = critter.step((c.low + c.high) / 2)
        assert not term
    assert c.data.qpos[c._qb + 2] > 0.5 * c.stand_height


def test_reach_template_goals_are_reachable_and_the_card_uses_the_arms_elements():
    env = make(f"reach:{ASSETS / 'arm3.toml'}")
    check_env(env.unwrapped, skip_render_check=True)
    spec = env.get_wrapper_attr("task_spec")
    assert [e.kind for e in spec.observation[-6:]] == ["goal"] * 3 + ["body_pos"] * 3
    observer = Observer(env.unwrapped.model, spec.observation)
    obs, _ = env.reset(seed=1)
    np.testing.assert_allclose(observer(env.unwrapped.data), obs, atol=1e-12)
    # a goal is the end effector at some joint position: a servo sent there reaches it
    u = env.unwrapped
    scratch = mujoco.MjData(u.model)
    found = None
    for _ in range(50):
        q = u.np_random.uniform(u.low, u.high)
        scratch.qpos[u._qa] = q
        mujoco.mj_kinematics(u.model, scratch)
        if scratch.site_xpos[u._ee_site][2] > 0.05:
            found = (q, scratch.site_xpos[u._ee_site].copy())
            break
    assert found is not None
    u.goal = found[1]
    u.data.mocap_pos[u._mocap] = found[1]
    for _ in range(100):
        obs, *_ = env.step(found[0])
    assert np.linalg.norm(obs[-3:]) < 0.02


def _write(tmp_path, text, model="critter.xml"):
    (tmp_path / model).write_text((ASSETS / model).read_text())
    p = tmp_path / "robot.toml"
    p.write_text(f'model = "{model}"\n' + text)
    return p


GOOD = 'base = "torso"\nfeet = ["lf_toe"]\n[joints."*"]\nkp = 8.0\nkd = 0.2\naction_scale = 0.3\ndefault = 0.0\n'
MISTAKES = {
    "missing model": ('model = "nope.xml"\n', None, "model file"),
    "unknown key": (GOOD + "[extra]\nx = 1\n", "skip-model", "unknown key(s) extra"),
    "unknown joint": (GOOD + '[joints."*_hip"]\ndefault = 0.1\n', None, "matches no joint"),
    "unknown body": (GOOD.replace('"torso"', '"pelvis"'), None, "base names body 'pelvis'"),
    "unknown foot": (GOOD.replace('"lf_toe"', '"left_foot"'), None, "feet names 'left_foot'"),
    "no gains": ('base = "torso"\nfeet = ["lf_toe"]\n[joints."*"]\naction_scale = 0.3\ndefault = 0.0\n', None,
                 "give kp and kd"),
    "default outside range": (GOOD + '[joints.lf_knee]\ndefault = 1.0\n', None, "outside its range"),
    "wrong type": (GOOD.replace("kp = 8.0", 'kp = "stiff"'), None, "kp must be a finite number"),
    "no stiffness": (GOOD.replace("kp = 8.0", "kp = 0.0"), None, "kp must be positive, got 0.0"),  # a servo that isn't
    "negative damping": (GOOD.replace("kd = 0.2", "kd = -1.0"), None, "kd must be >= 0, got -1.0"),
    "not toml": ("base = [\n", "skip-model", "not valid TOML"),
    "integer beyond float range": (GOOD.replace("default = 0.0", f"default = {10**400}"), None,
                                   "default must be a finite number"),
    # found from outside (audit 5): a traceback, and values that overflowed MuJoCo or never ended an episode
    "nothing actuated": ("actuated = []\n" + GOOD, None, "actuated is empty: the policy would command no joint"),
    "absurd stiffness": (GOOD.replace("kp = 8.0", "kp = 1e300"), None, "kp must be at most 1e+06"),
    "absurd damping": (GOOD.replace("kd = 0.2", "kd = 1e30"), None, "kd must be at most 100000"),
    "the base as a foot": (GOOD.replace('feet = ["lf_toe"]', 'feet = ["torso_geom"]'), None,
                           "feet names 'torso_geom', which is the base 'torso' or on it"),
    "a foot twice": (GOOD.replace('feet = ["lf_toe"]', 'feet = ["lf_toe", "lf_toe"]'), None,
                     "feet names 'lf_toe' twice"),
    "a foot and its body": (GOOD.replace('feet = ["lf_toe"]', 'feet = ["lf_shin", "lf_toe"]'), None,
                            "feet names geom 'lf_toe' and also its body 'lf_shin': the same foot twice"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_robot_config_mistakes_are_one_line_naming_the_field(tmp_path, case):
    text, flag, needle = MISTAKES[case]
    path = tmp_path / "robot.toml"
    if flag == "skip-model" or case == "missing model":
        (tmp_path / "critter.xml").write_text((ASSETS / "critter.xml").read_text())
        path.write_text(('model = "critter.xml"\n' if case != "missing model" else "") + text)
    else:
        path = _write(tmp_path, text)
    with pytest.raises(RobotConfigError, match=r"^robot config ") as e:
        Robot.load(path, "legged")
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_legged_task_needs_a_free_joint_and_the_command_says_so_in_one_line(tmp_path):
    p = tmp_path / "arm.toml"
    (tmp_path / "arm3.xml").write_text((ASSETS / "arm3.xml").read_text())
    p.write_text('model = "arm3.xml"\nbase = "base_link"\nfeet = ["lower"]\n[joints."*"]\nkp = 1.0\nkd = 0.1\n'
                 "default = 0.0\naction_scale = 0.2\n")
    with pytest.raises(RobotConfigError, match=r"needs a free joint \(a legged robot's floating base; the model"):
        Robot.load(p, "legged")
    for argv, needle in ([["robot", "inspect", str(tmp_path / "missing.xml")], "not found"],
                         [["train", "ppo", f"legged:{p}", "--steps", "1000"], "needs a free joint"]):
        r = subprocess.run([sys.executable, "-m", "robotrl.cli", *argv], capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_robot_inspect_lists_the_model_and_what_each_template_lacks():
    r = subprocess.run([sys.executable, "-m", "robotrl.cli", "robot", "inspect", str(ASSETS / "critter.xml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for needle in ("free joint 'floating_base' on body 'torso'", "lf_swing", "[-1, 1]", "sites (1): imu_link",
                   "template legged  needs: kp and kd", "base = BODY", "feet = [BODY, GEOM or SITE"):
        assert needle in out, (needle, out)
    r = subprocess.run([sys.executable, "-m", "robotrl.cli", "robot", "inspect", str(QUADRUPED)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "template legged  ready" in r.stdout, r.stdout + r.stderr
    assert "a PD servo from the config (the model has none)" in r.stdout


def test_the_configs_template_table_sets_the_task(tmp_path):
    (tmp_path / "critter.xml").write_text((ASSETS / "critter.xml").read_text())
    base = (ASSETS / "critter.toml").read_text()
    p = tmp_path / "robot.toml"
    p.write_text(base + "\n[legged]\ncommand_x = [0.0, 0.5]\ncommand_y = [0.0, 0.0]\ncommand_yaw = [-0.2, 0.2]\n"
                 "episode_s = 4.0\npush_interval_s = 0.0\n[legged.rewards]\nfeet_air_time = 0.0\n")
    env = make(f"legged:{p}")
    u = env.unwrapped
    assert u.command_ranges == {"x": (0.0, 0.5), "y": (0.0, 0.0), "yaw": (-0.2, 0.2)}
    assert u.max_steps == 200 and u.push_every == 0 and u.weights["feet_air_time"] == 0.0
    assert [e.range for e in env.get_wrapper_attr("task_spec").observation if e.kind == "velocity_command"] == \
        [(0.0, 0.5), (0.0, 0.0), (-0.2, 0.2)]
    for bad, needle in (("episode_s = -1.0", "episode_s must be positive"), ("speed = 2.0", "unknown setting 'speed'"),
                        ("command_x = [0.2, 0.5]", "low <= 0 <= high"),
                        ("only_positive_rewards = 1", "true or false, got 1")):
        p.write_text(base + f"\n[legged]\n{bad}\n")
        with pytest.raises(RobotConfigError, match=r"\[legged\]") as e:
            make(f"legged:{p}")
        assert needle in str(e.value), str(e.value)


@pytest.mark.slow
def test_a_short_seeded_ppo_run_on_a_second_legged_robot_learns(tmp_path):
    """The critter (tests/assets/critter_forward.toml: another robot, feet as geoms, forward commands only), PPO with
    the legged defaults for 200k steps (about 30 s; all worlds batched in one process): the training return must
    rise well above where it starts (at 200k it is ~1.3x, from learning to stay up and to follow the command).
    Walking to a command takes millions of steps: bench/quadruped.py trains and scores that (BENCHMARKS.md)."""
    import csv

    task = f"legged:{ASSETS / 'critter_forward.toml'}"
    r = subprocess.run([sys.executable, "-m", "robotrl.cli", "train", "ppo", task, "--steps", "200000", "--seed", "0",
                        "--eval-episodes", "1", "--out", str(tmp_path / "run"), "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row.get("rollout/ep_return_mean")]
    returns = [float(row["rollout/ep_return_mean"]) for row in rows]
    assert len(returns) >= 20
    first, last = np.mean(returns[:3]), np.mean(returns[-3:])
    assert last > 1.2 * first, (first, last)


@pytest.mark.slow
def test_a_users_arm_learns_to_reach_with_the_reach_template(tmp_path):
    """The 3-joint test arm (motors in its MJCF, PD servos from its config) learns to reach like our own arm:
    PPO for 200k steps must reach most goals, which holding the home pose does not."""
    import json

    from robotrl.run.evaluate import evaluate

    task = f"reach:{ASSETS / 'arm3.toml'}"
    r = subprocess.run([sys.executable, "-m", "robotrl.cli", "train", "ppo", task, "--steps", "200000", "--seed", "0",
                        "--workers", "1", "--out", str(tmp_path / "run"), "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "run" / "eval.json").read_text())
    home = make(task).unwrapped.robot.default
    held = evaluate(lambda obs: np.tile(home, (len(obs), 1)), task, 10, ev["seed"])
    assert ev["success_rate"] >= 0.8 and held["success_rate"] <= 0.2, (ev, held["success_rate"])
    assert ev["mean_return"] > held["mean_return"] + 5.0, (ev["mean_return"], held["mean_return"])


def test_a_model_with_position_servos_keeps_them_unless_the_config_overrides(tmp_path):
    """Our arm's MJCF has its own position servos: the reach template uses them as they are, and a config's kp/kd
    override their gains (kp and its bias term together, so they stay servos)."""
    arm = Path(__file__).resolve().parents[2] / "envs" / "assets" / "arm6.xml"
    p = tmp_path / "arm6.toml"
    p.write_text(f'model = "{arm}"\nend_effector = "fingertip"\n[joints."*"]\ndefault = 0.0\n')
    own = Robot.load(p)
    assert set(own.servo_source.values()) == {"the model's position servo"}
    raw = own.raw_model
    np.testing.assert_array_equal(own.kp, raw.actuator_gainprm[own.actuator, 0])
    p.write_text(p.read_text() + '[joints.elbow_pitch]\nkp = 55.0\nkd = 2.5\n')
    tuned = Robot.load(p)
    k = tuned.joints.index("elbow_pitch")
    m = tuned.model
    assert tuned.kp[k] == 55.0 and tuned.kd[k] == 2.5 and m.actuator_biasprm[tuned.actuator[k], 1] == -55.0
    assert "gains from the config" in tuned.servo_source["elbow_pitch"]
    others = [i for i in range(len(tuned.joints)) if i != k]
    np.testing.assert_array_equal(tuned.kp[others], own.kp[others])


def test_inspect_reports_what_the_reach_template_would_refuse(tmp_path, capsys):
    """An arm's MJCF with a body named 'goal' (our arm's own marker, before the arm became a reach task): inspect
    must not call it ready for the reach template, which adds its marker under that name and refuses such a model."""
    from robotrl.cli import main

    arm = tmp_path / "arm6.xml"
    marker = '    <body name="goal" mocap="true"><geom type="sphere" size="0.02"/></body>\n'
    arm.write_text((Path(__file__).resolve().parents[2] / "envs" / "assets" / "arm6.xml").read_text().replace(
        "  </worldbody>", marker + "  </worldbody>"))
    p = tmp_path / "arm6.toml"
    p.write_text(f'model = "{arm}"\nend_effector = "fingertip"\n[joints."*"]\ndefault = 0.0\n')
    assert main(["robot", "inspect", str(p)]) == 2  # the config names an end effector: it is meant for reach
    out, err = capsys.readouterr()
    assert "template reach   needs: a model without a body named 'goal'" in out, out
    assert f"robotrl: error: robot config {p}: template reach cannot train on this robot" in err, err
    assert main(["robot", "inspect", str(arm)]) == 0  # the model alone: what each template lacks is information
    assert "template reach   needs: end_effector = SITE or BODY" in capsys.readouterr().out
    assert main(["train", "ppo", f"reach:{p}", "--dry-run"]) == 2
    assert "has a body named 'goal'" in capsys.readouterr().err


@pytest.mark.parametrize("change, needle", [
    (lambda t: t.replace('base = "torso"', 'base = "lf"'), "base body 'lf' has no free joint"),
    (lambda t: t + "[joints.lf_knee]\ndefault = 1.0\n", "default position of 'lf_knee' (1) is outside its range"),
    (lambda t: t + "[legged]\nstep_height = 0.1\n", "unknown setting 'step_height'"),
    (lambda t: t + f"[legged]\nepisode_s = {10**400}\n", "finite number like 20.0, got 100000... (401 digits)"),
])
def test_inspect_calls_a_template_ready_only_when_training_accepts_the_robot(tmp_path, capsys, change, needle):
    """Found from outside: inspect said 'legged ready' for configs that `train legged:...` then refused. Each
    case is refused by training and reported by inspect with the same reason."""
    from robotrl.cli import main

    p = _write(tmp_path, change(GOOD))
    assert main(["robot", "inspect", str(p)]) == 2  # refused: exit 2, so that a script can check a config
    out, err = capsys.readouterr()
    line = next(ln for ln in out.splitlines() if ln.startswith("template legged"))
    assert line.startswith("template legged  refused: ") and needle in line, line
    assert "template legged cannot train on this robot" in err, err
    assert main(["train", "ppo", f"legged:{p}", "--dry-run"]) == 2
    assert needle in capsys.readouterr().err
    assert main(["robot", "inspect", str(_write(tmp_path, GOOD))]) == 0
    assert "template legged  ready" in capsys.readouterr().out


def _critter_variant(tmp_path, name, torso_size, shins_collide):
    text = (ASSETS / "critter.xml").read_text().replace('size="0.12 0.07 0.03"', f'size="{torso_size}"')
    if shins_collide:
        text = text.replace('size="0.01" contype="0" conaffinity="0"', 'size="0.01"')
    (tmp_path / name).write_text(text)
    p = tmp_path / f"{name}.toml"
    p.write_text(f'model = "{name}"\n' + GOOD)
    return p


def test_a_trunk_that_overlaps_its_legs_is_a_warning_not_a_fall_at_every_step(tmp_path, capsys):
    """Found from outside: a model whose trunk geom overlaps its leg geoms ended every episode after one step (the
    trunk's self-contact counted as the base touching the ground). A fall is the base touching something that is
    not the robot; inspect names the overlapping pairs."""
    from robotrl.cli import main
    from robotrl.envs.legged import LeggedVelocityEnv

    p = _critter_variant(tmp_path, "overlap.xml", "0.12 0.07 0.16", shins_collide=True)
    assert main(["robot", "inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert "template legged  ready" in out and "warning: geoms overlap at the default pose (" in out, out
    assert "lf_shin/torso" in out and "an episode ends" not in out, out
    env = LeggedVelocityEnv(Robot.load(p, "legged"), task_id="legged:overlap")
    env.reset(seed=0)
    assert env.data.ncon > 0
    lengths = []
    for seed in range(3):
        env.reset(seed=seed)
        steps = 1
        while steps < 50 and not env.step(env.robot.default)[2]:
            steps += 1
        lengths.append(steps)
    assert min(lengths) > 10, lengths


def test_inspect_refuses_a_walker_that_cannot_hold_its_default_pose(tmp_path, capsys):
    """Issue 33: a robot whose base touches the ground while it settles on its default pose is refused (every
    episode would be a fall), with what to change; it was a warning of inspect, and training went ahead."""
    from robotrl.cli import main

    p = _critter_variant(tmp_path, "belly.xml", "0.12 0.07 0.3", shins_collide=False)  # the trunk reaches the floor
    assert main(["robot", "inspect", str(p)]) == 2
    out = capsys.readouterr().out
    assert "template legged  refused: the robot does not stand on its default pose: holding it for 2 s, the " \
           "base 'torso' touches the ground; raise kp (now 8 to 8)" in out, out
    assert main(["robot", "inspect", str(_write(tmp_path, GOOD))]) == 0
    assert "warning" not in capsys.readouterr().out


@pytest.mark.parametrize("template, table, needle", [
    ("reach", "episode_steps = 2.5", "episode_steps must be a whole number"),
    ("reach", "episode_steps = 0", "episode_steps must be a whole number"),  # was gymnasium's traceback
    ("reach", "reset_noise = -1.0", "reset_noise must be >= 0"),  # was numpy's "high - low < 0" traceback
    ("reach", "velocity_weight = -1.0", "velocity_weight must be >= 0"),  # a reward for flailing
    ("reach", "min_goal_height = 100.0", "min_goal_height 100 m is above every goal"),  # silently ignored before
    ("reach", "tolerance = true", "tolerance must be a finite number like 0.05"),
    ("legged", "episode_s = 0.001", "episode_s must be at least one control period"),
])
def test_template_settings_out_of_range_are_refused_in_one_line(tmp_path, capsys, template, table, needle):
    """Found from outside: [reach]/[legged] values that the type check let through crashed the environment's
    construction with a traceback, or were silently ignored."""
    from robotrl.cli import main

    source = ASSETS / "arm3.toml" if template == "reach" else QUADRUPED
    model = source.parent / ("arm3.xml" if template == "reach" else "quadruped.xml")
    text = source.read_text().replace(f'model = "{model.name}"', f'model = "{model}"')
    assert f'model = "{model}"' in text
    p = tmp_path / "robot.toml"
    p.write_text(f"{text}\n[{template}]\n{table}\n")
    assert main(["train", "ppo", f"{template}:{p}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    p.write_text(text)  # the same robot without the setting is accepted
    assert main(["train", "ppo", f"{template}:{p}", "--dry-run"]) == 0


def test_a_robot_config_edited_after_training_is_named_not_run(tmp_path, capsys):
    """Found from outside: with its config edited (a gain, a range), a run and its exported actor still ran on
    the robot of the same name, silently another one. eval, resume, eval --onnx, video and sim2sim now compare
    the recorded spec with the task as built now and name the first difference; put back, all run again."""
    from robotrl.cli import main

    for name in ("arm3.xml", "arm3.toml"):
        (tmp_path / name).write_text((ASSETS / name).read_text())
    cfg, run = tmp_path / "arm3.toml", tmp_path / "run"
    assert main(["train", "ppo", f"reach:{cfg}", "--steps", "512", "--envs", "2", "--rollout-steps", "128",
                 "--minibatch-size", "64", "--eval-episodes", "1", "--no-progress", "--out", str(run)]) == 0
    assert main(["export", str(run)]) == 0
    original, model = cfg.read_text(), (tmp_path / "arm3.xml").read_text()
    argvs = (["eval", str(run), "--episodes", "1"], ["resume", str(run), "--steps", "1024", "--no-progress"],
             ["eval", "--onnx", str(run / "actor.onnx"), "--episodes", "1"],
             ["eval", "--onnx", str(run / "actor.onnx"), f"reach:{cfg}", "--episodes", "1"],  # named, not defaulted
             ["video", str(run / "actor.onnx"), "-o", str(tmp_path / "v.gif"), "--seconds", "0.2"],
             ["sim2sim", str(run / "actor.onnx"), "--episodes", "1"])
    for edit, needle in ((("kp = 60.0", "kp = 40.0"), "extras.robot.kp[0]: 60.0 then, 40.0 now"),
                         (("default = 1.2", "default = 1.0"), "then, 1.0 now"),
                         (("decimation = 10", "decimation = 10\n[reach]\ntolerance = 0.06"),  # found from outside:
                          "extras.robot.settings.tolerance: 0.05 then, 0.06 now"),  # a task setting,
                         (('<site name="tool" pos="0.24', '<site name="tool" pos="0.2'),  # the MJCF itself
                          "the MJCF model: site 'tool': its position differs from training's (site_pos)")):
        if edit[0].startswith("<site"):
            cfg.write_text(original)
            (tmp_path / "arm3.xml").write_text(model.replace(*edit))
        else:
            cfg.write_text(original.replace(*edit))
        capsys.readouterr()
        for argv in argvs:
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert needle in err and "edited" in err and err.count("\n") == 1, (argv, err)
    cfg.write_text(original)
    (tmp_path / "arm3.xml").write_text(model)
    for argv in argvs[:4]:  # the config put back: every command runs (video and sim2sim: their own tests)
        assert main(argv) == 0, (argv, capsys.readouterr().err)


def test_model_mistakes_found_from_outside_are_named(tmp_path, capsys):
    """An MJCF in degrees (MuJoCo's default) with a default pose in radians, a model without a joint to command,
    and a folder given as the model: each one line naming the actual problem."""
    from robotrl.cli import main

    degrees = (ASSETS / "critter.xml").read_text().replace('<compiler angle="radian" autolimits="true"/>',
                                                           '<compiler autolimits="true"/>')
    assert "radian" not in degrees
    (tmp_path / "critter.xml").write_text(degrees)
    p = tmp_path / "robot.toml"
    p.write_text('model = "critter.xml"\n' + GOOD.replace("default = 0.0", "default = 0.5"))
    assert main(["train", "ppo", f"legged:{p}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert 'outside its range [-0.0174533, 0.0174533] (rad or m); the MJCF has no <compiler angle="radian"/>' in err, \
        err
    (tmp_path / "block.xml").write_text('<mujoco><worldbody><body><freejoint/><geom size="0.1"/></body>'
                                        '</worldbody></mujoco>')
    for argv, needle in ((["robot", "inspect", str(tmp_path / "block.xml")],
                          "the model has no hinge or slide joint to command"),
                         (["robot", "inspect", str(tmp_path)], "is a directory; give the MJCF file"),
                         (["robot", "inspect", str(tmp_path / "block.xml"), "--config", str(tmp_path)],
                          "is a directory; give the robot config file")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (argv, err)


def _arm3(tmp_path, xml_edit=None, toml_extra=""):
    xml = (ASSETS / "arm3.xml").read_text()
    (tmp_path / "arm3.xml").write_text(xml_edit(xml) if xml_edit else xml)
    p = tmp_path / "arm3.toml"
    p.write_text((ASSETS / "arm3.toml").read_text() + toml_extra)
    return p


def test_the_models_servo_ctrlrange_bounds_the_actions_and_the_card_says_so(tmp_path):
    """Found from outside: a position servo's ctrlrange (+-0.3) was replaced by the joint range (+-1.5) and the
    card promised targets the model's servo never took; it now bounds the action, and a default pose outside it
    is refused."""
    servos = lambda t: t.replace('<motor joint="shoulder" gear="20" ctrlrange="-1 1"/>',  # noqa: E731
                                 '<position joint="shoulder" kp="60" kv="3" ctrlrange="-0.3 0.3"/>')
    from robotrl.envs import task_spec

    spec = task_spec(f"reach:{_arm3(tmp_path, servos)}")
    shoulder = next(a for a in spec.action if a.joint == "shoulder")
    assert (shoulder.low, shoulder.high) == (-0.3, 0.3)
    assert next(a for a in spec.action if a.joint == "elbow").high == 2.2  # the PD servo from the config: joint range
    with pytest.raises(RobotConfigError, match=r"default position of 'shoulder' \(0.5\) is outside \[-0.3, 0.3\], the "
                                               r"targets its servo takes \(the model's ctrlrange\)"):
        Robot.load(_arm3(tmp_path, servos, '[joints.shoulder]\ndefault = 0.5\n'), "reach")


def test_model_findings_of_the_fifth_outside_check_are_named(tmp_path, capsys):
    """A floating arm, an MJCF syntax error (the line number kept), a ball joint and angles in degrees (listed by
    inspect), and the robot config given as --config: each named, none a traceback."""
    from robotrl.cli import main

    floating = _arm3(tmp_path, lambda t: t.replace('<body name="base_link" pos="0 0 0.04">',
                                                   '<body name="pedestal" pos="0 0 0.1"><freejoint name="oops"/>'
                                                   '<geom type="box" size="0.05 0.05 0.01"/><body name="base_link">'
                                                   ).replace("</worldbody>", "</body></worldbody>"))
    assert main(["train", "ppo", f"reach:{floating}", "--dry-run"]) == 2
    assert "needs a fixed base (the model's free joint 'oops'" in capsys.readouterr().err
    broken = _arm3(tmp_path, lambda t: t.replace('<joint name="yaw" axis="0 0 1" range="-2.5 2.5"/>',
                                                 '<joint name="yaw" axis="0 0 1" range="-2.5 2.5"'))
    assert main(["robot", "inspect", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "MuJoCo cannot load" in err and "line number=1" in err.lower() and err.count("\n") == 1, err
    ball = _arm3(tmp_path, lambda t: t.replace('<joint name="yaw" axis="0 0 1" range="-2.5 2.5"/>',
                                               '<joint name="yaw" type="ball"/>').replace(
                                                   '<motor joint="yaw" gear="10" ctrlrange="-1 1"/>', ""))
    main(["robot", "inspect", str(ball)])
    out = capsys.readouterr().out
    assert "yaw" in out and "ball" in out and "neither observed nor commanded" in out, out
    degrees = _arm3(tmp_path, lambda t: t.replace('angle="radian"', ""))
    main(["robot", "inspect", str(degrees)])
    assert "angles    in degrees in the MJCF" in capsys.readouterr().out
    assert main(["train", "ppo", f"reach:{floating}", "--config", str(floating), "--dry-run"]) == 2
    assert "is a robot config (model, joints, ...): it goes in the task" in capsys.readouterr().err


TEMPLATE_MISTAKES = {
    "absurd reward weight": (GOOD + "[legged.rewards]\nfeet_air_time = 1e300\n", None,
                             "rewards.feet_air_time must be within +-1e+06"),
    "absurd push": (GOOD + "[legged]\npush_velocity = 1e6\n", None, "push_velocity must be in [0, 10] m/s"),
    "absurd reset noise": (GOOD + "[legged]\nreset_noise = 100.0\n", None, "reset_noise must be in [0, pi]"),
    "endless episodes": (GOOD + "[legged]\nepisode_s = 1e12\n", None, "episode_s must be at most 3600 seconds"),
}


@pytest.mark.parametrize("case", sorted(TEMPLATE_MISTAKES))
def test_template_settings_beyond_use_are_refused_in_one_line(tmp_path, capsys, case):
    """Found from outside: values that overflowed MuJoCo's arithmetic, blew up the simulation or made an episode
    (and so the final evaluation) endless were accepted."""
    from robotrl.cli import main

    text, _, needle = TEMPLATE_MISTAKES[case]
    assert main(["train", "ppo", f"legged:{_write(tmp_path, text)}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


@pytest.mark.parametrize("edit, needle", [
    (('size="0.02"/>', 'size="0.02" density="2000"/>'), "body 'lower': its mass differs from training's (body_mass)"),
    (("<joint damping=\"0.5\"", "<joint damping=\"0.7\""), "joint 'yaw': its damping differs from training's"),
    (('<site name="tool" pos="0.24', '<site name="tool" pos="0.2'), "site 'tool': its position differs"),
    (('<body name="lower" pos="0 0 0.25">', '<body name="lower" pos="0 0 0.25"><body name="extra"/>'),
     "the model's bodies differ from training's: body 'extra' is new"),
])
def test_an_edited_mjcf_is_named_by_element(tmp_path, edit, needle):
    """Found from outside: an MJCF edit was refused with two digests, naming nothing; the spec records the
    physics by element too, and the refusal names the first element that changed."""
    from robotrl.envs import task_spec
    from robotrl.spec import spec_change

    before = task_spec(f"reach:{_arm3(tmp_path)}")
    after = task_spec(f"reach:{_arm3(tmp_path, lambda t: t.replace(*edit))}")  # the same file, edited
    change = spec_change(before, after)
    assert change is not None and needle in change, change
    assert spec_change(before, before) is None


def test_sixth_outside_check_servo_gear_instability_and_bad_actors_are_named(tmp_path, capsys):
    """Found from outside (re-check): a position servo with gear 2 (MuJoCo drives the joint to ctrl / 2, so the
    card's targets were off by 2) is refused; gains that make the simulation unstable are a warning of inspect,
    not MuJoCo's raw warnings; sim-robot with a missing or broken actor or a run folder is one line, exit 2."""
    from robotrl.cli import main

    geared = _arm3(tmp_path, lambda t: t.replace('<motor joint="shoulder" gear="20" ctrlrange="-1 1"/>',
                                                 '<position joint="shoulder" gear="2" kp="60" kv="3"/>'))
    with pytest.raises(RobotConfigError, match=r"the position servo of 'shoulder' has gear 2; robotrl's targets are "
                                               r"joint positions"):
        Robot.load(geared, "reach")
    stiff = _write(tmp_path, GOOD.replace("kp = 8.0", "kp = 1e6"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a raw MuJoCo or numpy warning would fail here
        assert main(["robot", "inspect", str(stiff)]) == 2  # refused, as training refuses it
        out = capsys.readouterr().out
        assert "refused: the simulation is unstable holding the default pose" in out and "lower kp and kd" in out, out
        assert main(["train", "ppo", f"legged:{stiff}", "--dry-run"]) == 2
        assert "the simulation is unstable holding the default pose" in capsys.readouterr().err
    (tmp_path / "fake.onnx").write_text("hi")
    for argv, needle in ((["sim-robot", str(tmp_path / "nothere.onnx")], "no such file"),
                         (["sim-robot", str(tmp_path / "fake.onnx")], "is not a loadable ONNX model"),
                         (["sim-robot", "pretrained:nope"], "no pretrained actor 'nope'"),
                         (["sim-robot", str(tmp_path)], "is a folder: give a task (robotrl tasks) or an exported")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_a_moved_robot_config_is_named_and_sim2sim_takes_its_new_path(tmp_path, capsys):
    """Found from outside: after moving the robot's folder, eval and sim2sim said "write one"; the message now
    says the recorded file is gone, and sim2sim (like eval --onnx) takes the new path as its TASK."""
    import shutil

    from robotrl.cli import main

    old = tmp_path / "old"
    old.mkdir()
    cfg, run = _arm3(old), tmp_path / "run"
    assert main(["train", "ppo", f"reach:{cfg}", "--steps", "512", "--envs", "2", "--rollout-steps", "128",
                 "--minibatch-size", "64", "--eval-episodes", "1", "--no-progress", "--out", str(run)]) == 0
    assert main(["export", str(run)]) == 0
    shutil.move(old, tmp_path / "new")
    capsys.readouterr()
    actor = str(run / "actor.onnx")
    assert main(["sim2sim", actor, "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "moved or deleted since a run or card recorded it" in err and "sim2sim ACTOR reach:NEW.toml" in err, err
    assert main(["sim2sim", actor, f"reach:{tmp_path / 'new' / 'arm3.toml'}", "--episodes", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["ros"] == pytest.approx(result["in_process"], abs=1e-6), result


def test_a_replaced_motor_keeps_its_torque_limit_unless_the_config_gives_one(tmp_path):
    """Found from outside: the config's PD servo replaced a model motor (gear 20, ctrlrange +-1: 20 N m at most)
    with an unlimited one, so a policy could learn torques the motor cannot give. The motor's limit stays (gear x
    its control or force bound); the config's effort_limit, where given, wins."""
    text = (ASSETS / "arm3.toml").read_text().replace("effort_limit = 20.0\n", "")
    p = _arm3(tmp_path)
    p.write_text(text)
    r = Robot.load(p, "reach")
    assert list(r.effort_limit) == [10.0, 20.0, 10.0]  # gears 10, 20, 10 at ctrlrange +-1
    assert "torque limit 20 from the motor" in r.servo_source["shoulder"]
    p.write_text(text + "[joints.shoulder]\neffort_limit = 5.0\n")
    assert list(Robot.load(p, "reach").effort_limit) == [10.0, 5.0, 10.0]
