"""The reach template batched (envs/reach.py over envs/worlds.py), our arm included (robotrl/ArmReach-v0 and
robotrl/ArmReachHard-v0 are reach tasks on envs/assets/arm6*.toml).

Real MuJoCo throughout. A world of a batch must give what a single world seeded alike gives: observations, rewards,
terminations, truncations and successes bit for bit (the reach terms sum columns one by one, so no sum depends on the
number of worlds).
"""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robotrl.envs import make, make_vector, task_spec
from robotrl.envs.reach import TERMS
from robotrl.envs.robot import RobotConfigError
from robotrl.envs.vector import TaskVectorEnv
from robotrl.envs.worlds import Worlds
from robotrl.run.evaluate import robot_change
from robotrl.spec import TaskSpec

ASSETS = Path(__file__).resolve().parents[1] / "assets"
REACH = {"arm": "robotrl/ArmReach-v0", "arm-hard": "robotrl/ArmReachHard-v0", "arm3": f"reach:{ASSETS / 'arm3.toml'}"}


@pytest.mark.parametrize("name", sorted(REACH))
def test_each_world_of_a_batch_is_the_single_world_seeded_alike(name):
    task, n = REACH[name], 4
    vec = make_vector(task, n, episode_steps=30)  # short: resets within the test
    assert isinstance(vec, TaskVectorEnv)
    singles = [make(task, episode_steps=30) for _ in range(n)]
    obs, _ = vec.reset(seed=20)
    np.testing.assert_array_equal(obs, np.stack([e.reset(seed=20 + i)[0] for i, e in enumerate(singles)]))
    rng = np.random.default_rng(0)
    lo, hi = vec.single_action_space.low, vec.single_action_space.high
    ends = 0
    for t in range(75):
        a = rng.uniform(lo, hi, (n, len(lo)))
        a[:, 0] = 1.5 * hi[0]  # beyond the bounds: clipped alike
        obs, r, term, trunc, info = vec.step(a)
        for i, e in enumerate(singles):
            o1, r1, term1, trunc1, _ = e.step(a[i])
            assert (term[i], trunc[i]) == (term1, trunc1), (t, i)
            assert r[i] == r1, (t, i, r[i], r1)
            if term1 or trunc1:
                np.testing.assert_array_equal(info["final_obs"][i], o1)
                assert info["episode"]["l"][i] == 30
                o1, _ = e.reset()
                ends += 1
            np.testing.assert_array_equal(obs[i], o1, err_msg=f"step {t}, world {i}")
    assert ends == 2 * n
    vec.close()


def test_step_info_success_and_terms_agree_between_a_batch_and_single_worlds():
    task = make_vector("robotrl/ArmReach-v0", 3, threads=2).task
    singles = [make("robotrl/ArmReach-v0") for _ in range(3)]
    task.seed(range(3), [5, 6, 7])
    task.reset(np.arange(3))
    for i, e in enumerate(singles):
        e.reset(seed=5 + i)
    target = np.stack([e.unwrapped._scratch.qpos.copy() for e in singles])  # where each goal was drawn from
    for _ in range(60):
        _, reward, _, _, info = task.step(target)
        for i, e in enumerate(singles):
            _, r1, _, _, info1 = e.step(target[i])
            assert info["is_success"][i] == info1["is_success"] and info["distance"][i] == info1["distance"]
            assert {k: v[i] for k, v in info["reward_terms"].items()} == info1["reward_terms"]
            assert reward[i] == r1 == info1["reward_distance"] + info1["reward_velocity"]
    assert info["is_success"].all()  # the servos sent to the goal's joint positions reach it
    task.close()


def test_reset_and_seed_are_deterministic():
    vec = make_vector("robotrl/ArmReach-v0", 3)
    first, _ = vec.reset(seed=3)
    again, _ = vec.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    other, _ = vec.reset(seed=4)
    np.testing.assert_array_equal(other[:2], first[1:])  # world i is seeded seed + i
    assert len({tuple(g) for g in first[:, 12:15]}) == 3  # three goals
    unseeded, _ = vec.reset()  # goes on drawing from the worlds' generators: new goals
    assert not np.array_equal(unseeded[:, 12:15], other[:, 12:15])
    np.testing.assert_array_equal(first[:, :6], np.tile(make("robotrl/ArmReach-v0").unwrapped.robot.default, (3, 1)))
    vec.close()


def test_the_end_effector_is_where_mujoco_puts_it_after_the_step():
    """MuJoCo's rollout gives the sensors of the last physics step's start; the reach task needs the end effector
    of the state reached, so its worlds roll out one physics step more and drop it (`sense_reached`)."""
    env = make("robotrl/ArmReachHard-v0")
    u = env.unwrapped
    t = u.task
    env.reset(seed=1)
    d = mujoco.MjData(u.model)
    rng = np.random.default_rng(2)
    for _ in range(20):
        obs, *_ = env.step(rng.uniform(u.low, u.high))
        d.qpos[:] = t.worlds.qpos[0]
        mujoco.mj_kinematics(u.model, d)
        tip = d.xpos[u.model.body("fingertip").id]
        np.testing.assert_array_equal(t.ee[0], tip)
        np.testing.assert_array_equal(obs[15:18], tip - t.goal[0])
    np.testing.assert_array_equal(u.data.xpos[u._goal_body], t.goal[0])  # the view's MjData shows the goal marker
    lagging = Worlds(u.model, 1, threads=0)  # without: one physics step behind
    lagging.state[:] = t.worlds.state
    lagging.step(t.ctrl, t.frame_skip)
    d.qpos[:] = lagging.qpos[0]
    mujoco.mj_kinematics(u.model, d)
    assert np.abs(lagging.sensordata[0, t._ee_cols] - d.xpos[u.model.body("fingertip").id]).max() > 1e-6
    lagging.close()


def test_our_arm_is_the_reach_template_with_the_pretrained_actors_elements():
    """The shipped actor's card names the elements the arm's reach config gives, in the same order and ranges."""
    import onnx

    card = json.loads(next(p.value for p in onnx.load(Path(__file__).resolve().parents[2] / "policies" / "pretrained"
                                                      / "arm-reach.onnx").metadata_props if p.key == "robotrl_card"))
    trained = TaskSpec.from_dict({**card["spec"], "task_id": card["task_id"]})
    for task in ("robotrl/ArmReach-v0", "robotrl/ArmReachHard-v0"):
        spec = task_spec(task)
        assert spec.observation == trained.observation and spec.action == trained.action
        assert spec.joint_ranges == trained.joint_ranges
        assert (spec.control_period, spec.frame_skip) == (trained.control_period, trained.frame_skip)
        assert spec.extras["robot"]["template"] == "reach"
    assert robot_change(trained, task_spec("robotrl/ArmReach-v0")) is None  # the card's task, as it was
    easy, hard = make("robotrl/ArmReach-v0").unwrapped, make("robotrl/ArmReachHard-v0").unwrapped
    assert (easy.max_steps, hard.max_steps, easy.tolerance, hard.tolerance) == (100, 150, 0.05, 0.02)
    tip = easy.model.body("fingertip").id
    assert hard.model.body_mass[tip] == pytest.approx(easy.model.body_mass[tip] + 0.5)  # the payload
    np.testing.assert_array_equal(hard.model.body_inertia, easy.model.body_inertia)
    starts = np.stack([make("robotrl/ArmReachHard-v0").reset(seed=s)[0][:6] for s in range(3)])
    assert np.all(np.abs(starts - hard.robot.default) <= 0.8) and starts.std(axis=0).min() > 0  # a random start


def test_evaluation_on_worlds_gives_what_one_env_per_episode_gives_success_included():
    from robotrl.deploy.runtime import OnnxPolicy, resolve
    from robotrl.run.evaluate import evaluate

    policy = OnnxPolicy(resolve("pretrained:arm-reach"))
    batched = evaluate(policy, "robotrl/ArmReach-v0", 6, 3, num_envs=4)
    one_by_one = evaluate(policy, "robotrl/ArmReach-v0", 6, 3, num_envs=4, watch=lambda *a: None)
    assert batched["lengths"] == one_by_one["lengths"] == [100] * 6
    assert batched["returns"] == one_by_one["returns"]
    assert batched["success_rate"] == one_by_one["success_rate"] == 1.0


def test_a_users_reach_config_is_batched_with_its_settings(tmp_path):
    (tmp_path / "arm3.xml").write_text((ASSETS / "arm3.xml").read_text())
    cfg = tmp_path / "arm3.toml"
    cfg.write_text((ASSETS / "arm3.toml").read_text() + "[reach]\nepisode_steps = 7\nreset_noise = 0.1\n"
                   "[reach.goal_ranges]\nyaw = [0.5, 0.5]\n")
    vec = make_vector(f"reach:{cfg}", 5)
    assert vec.num_envs == 5 and vec.observation_space.shape == (5, 12) and vec.action_space.shape == (5, 3)
    obs, _ = vec.reset(seed=0)
    assert np.ptp(obs[:, :3], axis=0).min() > 0  # reset noise on every joint
    # every goal drawn with yaw 0.5: in the vertical plane at that angle
    np.testing.assert_allclose(np.arctan2(obs[:, 7], obs[:, 6]), 0.5, atol=1e-9)
    for _ in range(7):
        _, _, term, trunc, info = vec.step(np.zeros((5, 3)))
    assert trunc.all() and not term.any() and info["_episode"].all()
    vec.close()


@pytest.mark.parametrize("extra, needle", [
    ("[reach.goal_ranges]\nwrist = [0, 1]\n", "goal_ranges names 'wrist', which is not an actuated joint"),
    ("[reach.goal_ranges]\nyaw = [0, 3]\n", "goal_ranges.yaw [0, 3] must lie within its action range [-2.5, 2.5]"),
    ("[reach.goal_ranges]\nyaw = [1, 0]\n", "goal_ranges.yaw must be [low, high] with low <= high"),
    ("[reach]\ngoal_ranges = 3\n", "goal_ranges must be a table, got 3"),
    ("[reach]\npayload = -1\n", "payload must be in [0, 1000] kg"),
])
def test_bad_reach_settings_name_the_table(tmp_path, extra, needle):
    (tmp_path / "arm3.xml").write_text((ASSETS / "arm3.xml").read_text())
    cfg = tmp_path / "arm3.toml"
    cfg.write_text((ASSETS / "arm3.toml").read_text() + extra)
    with pytest.raises(RobotConfigError, match=r"\[reach\]") as e:
        make_vector(f"reach:{cfg}", 2)
    assert needle in str(e.value), str(e.value)


def test_reward_terms_are_registered_and_weighted_by_the_settings():
    assert TERMS.defaults() == {"distance": -1.0, "velocity": -1e-3} and all(t.doc for t in TERMS)
    env = make("robotrl/ArmReach-v0", distance_weight=2.0, velocity_weight=0.0)
    env.reset(seed=0)
    _, r, _, _, info = env.step(env.unwrapped.robot.default + 0.3)
    assert info["reward_terms"] == {"distance": -2.0 * info["distance"], "velocity": 0.0}
    assert r == info["reward_distance"] + info["reward_velocity"] == -2.0 * info["distance"]
