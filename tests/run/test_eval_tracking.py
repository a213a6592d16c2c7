"""`robotrl eval` on a velocity-tracking task: tracking errors and falls, robustness under --perturb, the evaluation
of a killed run, and the progress lines of a long run. Real MuJoCo (robotrl/Quadruped-v0) and the pretrained
quadruped's actor in onnxruntime; nothing is mocked."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robotrl.envs import make_vector
from robotrl.envs.legged import COMMAND_SCRIPT, evaluate_tracking
from robotrl.envs.perturb import Perturbed, parse_condition
from robotrl.errors import UserError
from robotrl.run.logger import Progress, duration
from robotrl.run.tracking import run_episodes, tracking_report, tracking_table

TASK = "robotrl/Quadruped-v0"
ROBOTRL = [str(Path(sys.executable).parent / "robotrl")]
AXES = ("err_vx", "err_vy", "err_yaw")


@pytest.fixture(scope="module")
def actor():
    from robotrl.deploy.runtime import OnnxPolicy

    return OnnxPolicy("pretrained:quadruped")


def _task(worlds: int = 1):
    vec = make_vector(TASK, worlds, push_interval_s=0.0)
    return vec, vec.task


def test_batched_tracking_is_the_single_world_evaluation(actor):
    """The batched report plays each episode as one env seeded alike does (`evaluate_tracking`, one world at a time):
    the same per-episode errors and falls, over the task's random commands and over the script."""
    report = tracking_report(actor, TASK, 3, 1234, num_worlds=2)  # 2 worlds for 3 episodes: a world plays two
    no_push = {"push_interval_s": 0.0}
    for part, script in (("random", None), ("scripted", COMMAND_SCRIPT)):
        single = evaluate_tracking(actor, TASK, episodes=3, seed=1234, script=script, env_kwargs=no_push)
        for k in range(3):
            mine, theirs = report[part]["per_episode"][k], single["episodes"][k]
            assert [mine[a] for a in AXES] == pytest.approx([theirs[a] for a in AXES], rel=1e-9, abs=1e-12)
            assert mine["fell"] == theirs["fell"]
        assert report[part]["falls"] == single["falls"]
    assert 0 < report["random"]["err_vx"] < 0.15  # the pretrained walker tracks (an untrained one: ~0.3 m/s)
    assert report["scripted"]["err_yaw"] < 0.1


def test_friction_is_in_the_model_during_the_episode_and_gone_after(actor):
    vec, task = _task(2)
    try:
        model = task.worlds.model
        before = {name: getattr(model, name).copy() for name in dir(model)
                  if isinstance(getattr(model, name, None), np.ndarray)}
        nominal = run_episodes(task, actor, 2, 77)
        seen = []

        def policy(obs):  # called at every step of the episode: the model the worlds step with, as it is then
            for m in task.worlds.models():
                seen.append(np.array_equal(m.geom_friction, before["geom_friction"] * 0.4))
            return actor(obs)

        with Perturbed(task, parse_condition("friction=0.4")) as p:
            changed = [name for name, v in before.items() if not np.array_equal(getattr(model, name), v)]
            assert changed == ["geom_friction"]  # what it says, and nothing else
            perturbed = run_episodes(p, policy, 2, 77)
        assert seen and all(seen)
        for name, v in before.items():  # gone after: every array of the model as it was
            assert np.array_equal(getattr(model, name), v), name
        again = run_episodes(task, actor, 2, 77)
    finally:
        vec.close()
    assert again["per_episode"] == nominal["per_episode"]  # the same episodes, the same numbers
    assert perturbed["per_episode"] != nominal["per_episode"]  # and the perturbation made a difference


@pytest.mark.parametrize(("condition", "arrays"), [
    ("payload=0.25", {"body_mass", "body_inertia"}),
    ("payload_kg=3", {"body_mass", "body_inertia"}),
    ("servos=0.7", {"actuator_gainprm", "actuator_biasprm"}),
    ("latency=0.02,noise=0.05,push=1", set()),  # on the step, not in the model
])
def test_model_perturbations_change_what_they_say(condition, arrays):
    vec, task = _task()
    try:
        m = task.worlds.model
        before = {name: getattr(m, name).copy() for name in dir(m) if isinstance(getattr(m, name, None), np.ndarray)}
        base = task.base_body
        with Perturbed(task, parse_condition(condition)):
            changed = {name for name, v in before.items() if not np.array_equal(getattr(m, name), v)}
            assert changed == arrays
            if "payload=0.25" in condition:
                assert m.body_mass[base] == pytest.approx(1.25 * before["body_mass"][base])
                others = np.arange(m.nbody) != base
                assert np.array_equal(m.body_mass[others], before["body_mass"][others])
            if "payload_kg" in condition:
                assert m.body_mass[base] == pytest.approx(before["body_mass"][base] + 3.0)
            if "servos" in condition:  # kp, -kp, -kd scaled; effort limits kept
                assert np.allclose(m.actuator_gainprm[:, 0], 0.7 * before["actuator_gainprm"][:, 0])
                assert np.allclose(m.actuator_biasprm[:, 1:3], 0.7 * before["actuator_biasprm"][:, 1:3])
                assert np.array_equal(m.actuator_forcerange, before["actuator_forcerange"])
        assert all(np.array_equal(getattr(m, name), v) for name, v in before.items())
    finally:
        vec.close()


def _targets(task, k: int) -> np.ndarray:
    """A distinct servo target for control step k (inside the action bounds)."""
    return task.low + (task.high - task.low) * (0.3 + 0.02 * (k % 20))


@pytest.mark.parametrize("latency", [0.005, 0.01, 0.02, 0.03])
def test_latency_delays_the_servo_targets_by_physics_steps(latency):
    """Physics step j of control step k runs with the targets of control step k + floor((j - L) / 4), L = latency /
    5 ms (the quadruped: 5 ms physics, 4 per control step); before an episode's first command arrives, the reset's
    targets (the default pose). Checked on the controls MuJoCo's rollout received, against hand-computed indices."""
    vec, task = _task()
    try:
        L = round(latency / 0.005)
        act = task._act
        with Perturbed(task, {"latency": latency}) as p:
            p.seed([0], [5])
            p.reset([0])
            hold = task.ctrl[0, act].copy()
            for k in range(6):
                p.step(_targets(task, k)[None])
                for j in range(4):
                    src = k + math.floor((j - L) / 4)  # L=2: j 0,1 from k-1; j 2,3 from k. L=6: k-2, k-2, k-1, k-1
                    want = _targets(task, src) if src >= 0 else hold
                    assert np.array_equal(task.worlds._ctrl[0, j, act], want), (k, j, src)
    finally:
        vec.close()


def test_a_latency_of_one_control_step_is_the_commands_one_step_later():
    """20 ms at 5 ms x 4: the same trajectory, bit for bit, as the nominal task given the default pose and then each
    command one control step later."""
    vec, task = _task()
    vec2, nominal = _task()
    try:
        with Perturbed(task, {"latency": 0.02}) as p:
            for t in (p, nominal):
                t.seed([0], [9])
                t.reset([0])
            previous = nominal.ctrl[0, nominal._act].copy()
            for k in range(30):
                p.step(_targets(task, k)[None])
                nominal.step(previous[None])
                previous = _targets(task, k)
                assert np.array_equal(task.worlds.qpos, nominal.worlds.qpos), k
    finally:
        vec.close()
        vec2.close()


def test_push_changes_the_base_velocity_by_its_size_at_its_period():
    vec, task = _task()
    vec2, nominal = _task()
    try:
        with Perturbed(task, parse_condition("push=1,push_every=0.1")) as p:  # every 5 control steps of 20 ms
            for t in (p, nominal):
                t.seed([0], [3])
                t.reset([0])
            vb = task._vb
            for k in range(1, 6):
                a = _targets(task, k)[None]
                p.step(a)
                nominal.step(a)
                dv = task.worlds.qvel[0, vb:vb + 3] - nominal.worlds.qvel[0, vb:vb + 3]
                if k < 5:
                    assert np.array_equal(dv, np.zeros(3))
            assert np.hypot(dv[0], dv[1]) == pytest.approx(1.0, abs=1e-12)  # horizontal, 1 m/s
            assert dv[2] == 0.0
    finally:
        vec.close()
        vec2.close()


def test_noise_is_scaled_per_kind_and_spares_commands_and_actions():
    vec, task = _task()
    try:
        with Perturbed(task, {"noise": 0.05}) as p:
            std = dict(zip([e.kind for e in task.task_spec.observation], p.noise_std, strict=True))
            assert std["joint_pos_rel"] == pytest.approx(0.01) and std["joint_vel"] == pytest.approx(1.5)
            assert std["base_ang_vel"] == pytest.approx(0.2) and std["projected_gravity"] == pytest.approx(0.05)
            assert std["velocity_command"] == 0.0 and std["prev_action"] == 0.0
            p.seed([0], [1])
            p.reset([0])
            noisy = p.observe()
            assert np.array_equal(p.observe(), noisy)  # asked again: the same draw
            clean = task.observe()
            kinds = np.array([e.kind for e in task.task_spec.observation])
            diff = (noisy - clean)[0]
            assert np.all(diff[kinds == "velocity_command"] == 0) and np.all(diff[kinds == "joint_vel"] != 0)
    finally:
        vec.close()


@pytest.mark.parametrize(("text", "message"), [
    ("frixion=0.4", "unknown perturbation 'frixion' (known: friction, payload, payload_kg, servos, latency, noise, "
                    "push (push_every)"),
    ("friction=abc", "friction=abc: the value must be a number from 0.01 to 10"),
    ("friction", "'friction' is not NAME=VALUE"),
    ("push_every=2", "push_every is an option of push"),
    ("payload=0.2,payload_kg=1", "payload (a fraction of the base's mass) or payload_kg, not both"),
])
def test_bad_conditions_are_one_line_errors(text, message):
    with pytest.raises(UserError, match=None) as e:
        parse_condition(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_latency_not_a_whole_number_of_physics_steps_is_refused():
    vec, task = _task()
    try:
        with pytest.raises(UserError, match=r"latency=0.012: not a whole number of physics steps of 0.005 s"):
            Perturbed(task, {"latency": 0.012})
    finally:
        vec.close()


def test_cli_table_and_json(actor):
    """As a user runs it: the table's rows, and --json's keys holding the figures the report computes."""
    run = subprocess.run([*ROBOTRL, "eval", "--onnx", "pretrained:quadruped", "--episodes", "1", "--json",
                          "--perturb", "friction=0.4", "--perturb", "latency=0.02,push=1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert {"mean_return", "std_return", "episodes", "tracking"} <= set(out)
    tr = out["tracking"]
    for part in ("random", "scripted"):
        assert set(tr[part]) == {"err_vx", "err_vy", "err_yaw", "falls", "episodes"}
    assert [row["condition"] for row in tr["perturbed"]] == ["friction=0.4", "latency=0.02,push=1"]
    assert set(tr["perturbed"][0]["random"]) >= {"err_vx", "ratio_vx", "ratio_vy", "ratio_yaw", "falls"}
    seed = 1_000_000 + 1000 * int(actor.card["training"]["seed"])
    mine = tracking_report(actor, TASK, 1, seed, conditions=[{"friction": 0.4}])
    assert tr["random"]["err_vx"] == pytest.approx(mine["random"]["err_vx"], rel=1e-9)
    assert tr["perturbed"][0]["scripted"]["err_yaw"] == pytest.approx(mine["perturbed"][0]["scripted"]["err_yaw"],
                                                                       rel=1e-9)
    text = tracking_table(mine)
    for row in ("random commands (1 ep.)", "scripted sequence (1 ep.)", "nominal", "friction=0.4", "falls"):
        assert row in text
    bad = subprocess.run([*ROBOTRL, "eval", "--onnx", "pretrained:quadruped", "--perturb", "gravity=2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "unknown perturbation 'gravity' (known: friction" in bad.stderr


def test_a_killed_run_is_evaluated_at_its_latest_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train = subprocess.Popen([*ROBOTRL, "train", "ppo", TASK, "--steps", "1000000", "--checkpoint-every", "256",
                              "--num-envs", "4", "--rollout-steps", "64", "--minibatch-size", "64",
                              "--out", str(run_dir), "--no-progress"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "checkpoints" / "latest.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        train.send_signal(signal.SIGKILL)
        train.wait()
    assert (run_dir / "checkpoints" / "latest.pt").exists() and not (run_dir / "eval.json").exists()
    run = subprocess.run([*ROBOTRL, "eval", str(run_dir), "--episodes", "1"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    import torch

    step = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["num_steps"]
    assert f"evaluating the latest checkpoint, step {step:,} of 1,000,000, a run stopped before its end" in run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{TASK} (ppo, step {step:,} of 1,000,000): return ")
    assert lines[3].split()[:3] == ["random", "commands", "(1"] and lines[4].split()[:2] == ["scripted", "sequence"]
    assert lines[3].split()[-1] in ("0/1", "1/1") and len(lines) == 5
    from robotrl.cli import main

    assert main(["eval", str(run_dir), "--episodes", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint"] == {"step": step, "total_steps": 1_000_000, "run": "stopped"} and "tracking" in out


def test_progress_lines_say_the_time_left(capsys):
    now = [0.0]
    bar = Progress(1000, enabled=True, clock=lambda: now[0])
    now[0] = 10.0
    bar.update(100, {"return": "1.0", "tracking": "0.210 m/s, 0.350 rad/s"})
    line = capsys.readouterr().err.rstrip("\n")
    assert line == ("  step        100/1,000 (10%)  10 steps/s  1m 30s left  return=1.0  "
                    "tracking=0.210 m/s, 0.350 rad/s")
    assert [duration(s) for s in (45, 1058, 7500)] == ["45s", "17m 38s", "2h 05m"]


def test_progress_lines_every_two_minutes_on_a_long_run_not_on_a_short_one(capsys):
    now = [0.0]
    long = Progress(10**9, enabled=True, clock=lambda: now[0])  # an hour-long run: 10 % is 6 minutes
    for k in range(1, 3601):
        now[0] = float(k)
        long.update(k * 277_778, {})
    hour = capsys.readouterr().err.splitlines()
    assert 30 <= len(hour) <= 32  # every 2 minutes
    now[0] = 0.0
    short = Progress(30_000, enabled=True, clock=lambda: now[0])  # 30 s: one line per 10 %
    for k in range(1, 301):
        now[0] = k / 10
        short.update(k * 100, {})
    assert len(capsys.readouterr().err.splitlines()) == 10


def test_training_episodes_report_their_tracking_errors():
    """The vector env gives each ended episode's mean tracking errors with its return (what training's progress
    lines and metrics.csv's rollout/tracking_error_* show): the mean of the task's per-step infos."""
    vec = make_vector(TASK, 2, episode_s=0.1)  # 5 control steps
    vec2 = make_vector(TASK, 2, episode_s=0.1)
    task = vec2.task
    try:
        vec.reset(seed=11)
        task.seed([0, 1], [11, 12])
        task.reset([0, 1])
        sums = np.zeros((2, 2))
        for k in range(5):
            a = np.tile(_targets(task, k), (2, 1))
            _, _, _, _, info = vec.step(a)
            *_, tinfo = task.step(a)
            sums += np.stack([tinfo["tracking_error_lin"], tinfo["tracking_error_yaw"]], axis=1)
        assert info["_episode"].all()
        assert np.allclose(info["episode"]["tracking_error_lin"], sums[:, 0] / 5, rtol=1e-12)
        assert np.allclose(info["episode"]["tracking_error_yaw"], sums[:, 1] / 5, rtol=1e-12)
    finally:
        vec.close()
        vec2.close()


def test_perturbed_model_arrays_are_restored_even_when_a_condition_is_refused():
    vec, task = _task()
    try:
        friction = task.worlds.model.geom_friction.copy()
        with pytest.raises(UserError):
            Perturbed(task, {"friction": 0.5, "latency": 0.003})  # friction applied first, then latency refused
        assert np.array_equal(task.worlds.model.geom_friction, friction)
        assert isinstance(task.worlds.model, mujoco.MjModel)
    finally:
        vec.close()


@pytest.mark.parametrize(("algo", "flags"), [
    ("ppo", {"num_envs": "4", "rollout_steps": "32", "minibatch_size": "64", "update_epochs": "1"}),
    ("td3", {"num_envs": "4", "learning_starts": "64", "batch_size": "32", "iteration_steps": "128",
             "hidden_sizes": "32,32"}),
])
def test_training_logs_the_tracking_errors_and_checkpoints_them(tmp_path, algo, flags):
    """A legged run's metrics.csv has rollout/tracking_error_lin and _yaw (the last 100 episodes' means), and its
    checkpoint keeps them for a resumed run's first lines."""
    import csv

    import torch

    from robotrl.envs.tasks import QUADRUPED_CONFIG
    from robotrl.run.train import train

    text = Path(QUADRUPED_CONFIG).read_text().replace('model = "quadruped.xml"',
                                                      f'model = "{Path(QUADRUPED_CONFIG).parent / "quadruped.xml"}"')
    config = tmp_path / "short.toml"
    config.write_text(text + "\n[legged]\nepisode_s = 0.2\n")  # 10 control steps: episodes end in a short run
    steps = []
    run = train(algo, f"legged:{config}", algo_flags=flags,
                run_flags={"total_steps": "256", "eval_episodes": "0"}, out=tmp_path / "run", progress=False,
                callback=lambda step, metrics: steps.append(metrics) and False)
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lin = [float(r["rollout/tracking_error_lin"]) for r in rows]
    assert len(lin) == 2 and all(0 < x < 5 for x in lin)
    assert [m["rollout/tracking_error_yaw"] for m in steps] == [float(r["rollout/tracking_error_yaw"]) for r in rows]
    loop = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["loop"]
    assert len(loop["recent_means"]["tracking_error_lin"]) == min(100, loop["episodes"])
    assert sum(loop["recent_means"]["tracking_error_lin"][-100:]) / len(loop["recent_means"]["tracking_error_lin"]) \
        == pytest.approx(lin[-1])


def test_perturb_standard_is_the_benchmark_set_one_row_each(capsys):
    from robotrl.cli import _perturb_conditions
    from robotrl.envs import perturb

    rows = _perturb_conditions(["standard", "friction=0.5,payload_kg=2"], TASK)
    names = [perturb.label(c) for c in rows]
    expected = ["friction=0.4", "payload=0.25", "servos=0.7", "latency=0.02", "latency=0.04", "noise=0.05", "push=1",
                "rough=0.04"]
    assert names == [*expected, "friction=0.5,payload_kg=2"]
    with pytest.raises(UserError, match="--perturb measures velocity tracking; InvertedPendulum-v5 is not"):
        _perturb_conditions(["friction=0.5"], "InvertedPendulum-v5")
