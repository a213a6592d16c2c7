"""The sim-to-real randomisations do what they say to the model and the physics (envs/sim2real.py), and the legged
template trains with its own set of them unless a run turns them off (envs/templates/legged.py SIM2REAL, the run
settings' `randomize`).

That a batch with these settings gives what the wrapped single envs give, world by world, is in
tests/envs/test_batched_sim2real.py; here: a drawn payload and centre of mass are in that world's model (and the
nominal model is back after close), servo strength scales kp and kd together, a latency delays the servo target by
exactly k physics steps (replayed by hand with mj_step), sensor noise has each kind's scale, the defaults are on for
legged tasks only and are recorded where a run and a card record its settings, and a bad value is one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robotrl import config as cfgmod
from robotrl.cli import main
from robotrl.envs import make, make_vector
from robotrl.envs.sim2real import PhysicsLatency, Sim2Real
from robotrl.envs.templates.legged import SIM2REAL as LEGGED_SIM2REAL
from robotrl.errors import UserError
from robotrl.run.settings import RunConfig
from robotrl.run.train import plan, resolve_config

ASSETS = Path(__file__).resolve().parents[1] / "assets"
QUADRUPED = "robotrl/Quadruped-v0"
CRITTER = f"legged:{ASSETS / 'critter.toml'}"


def test_a_drawn_payload_and_centre_of_mass_are_in_that_worlds_model_and_the_nominal_is_back_after_close():
    vec = make_vector(QUADRUPED, 3, {"base_payload": (-0.05, 0.2), "base_com": 0.03})
    s2r = vec.task
    base, nominal = s2r.base_body, s2r.worlds.model
    mass, ipos = nominal.body_mass.copy(), nominal.body_ipos.copy()
    robot_mass = float(nominal.body_subtreemass[base])
    assert robot_mass == pytest.approx(13.8)  # quadruped.xml: a 6 kg trunk, four 1.95 kg legs
    others = np.arange(nominal.nbody) != base
    for _ in range(2):  # a second reset draws anew from the nominal model: nothing compounds
        vec.reset(seed=None if _ else 0)
        for i, m in enumerate(s2r.models):
            kg, shift = s2r.factors[i]["payload"][0], s2r.factors[i]["com"]
            assert -0.05 * robot_mass <= kg <= 0.2 * robot_mass and np.all(np.abs(shift) <= 0.03)
            assert m.body_mass[base] == mass[base] + kg
            np.testing.assert_array_equal(m.body_mass[others], mass[others])
            np.testing.assert_array_equal(m.body_ipos[base], ipos[base] + shift)
            np.testing.assert_array_equal(m.body_ipos[others], ipos[others])
    assert len({m.body_mass[base] for m in s2r.models}) == 3  # each world its own draw
    np.testing.assert_array_equal(nominal.body_mass, mass)  # the nominal model as built, all along
    models = s2r.models
    vec.close()
    for m in models:
        np.testing.assert_array_equal(m.body_mass, mass)
        np.testing.assert_array_equal(m.body_ipos, ipos)
    # one env in the wrappers changes its own model, and puts it back when closed
    env = make(QUADRUPED, sim2real={"base_payload": (0.2, 0.2)})
    env.reset(seed=0)
    m = env.unwrapped.model
    assert m.body_mass[base] == pytest.approx(mass[base] + 0.2 * robot_mass)
    env.close()
    np.testing.assert_array_equal(m.body_mass, mass)


def test_a_payload_on_the_base_is_in_the_physics_the_world_steps():
    """The same start and actions, with and without 2.76 kg (20 % of the robot) on the base: the loaded robot sags."""
    heights = []
    for s2r in ({}, {"base_payload": (0.2, 0.2)}):
        vec = make_vector(QUADRUPED, 2, s2r)
        vec.reset(seed=3)
        hold = np.tile((vec.task.low + vec.task.high) / 2, (2, 1))
        for _ in range(50):  # 1 s holding the default pose
            vec.step(hold)
        heights.append(vec.task.worlds.qpos[:, 2].copy())
        vec.close()
    assert np.all(heights[1] < heights[0] - 1e-3), heights


def test_servo_strength_scales_kp_and_kd_of_the_servos_the_robot_config_added_together():
    vec = make_vector(CRITTER, 2, {"randomize_gain": 0.2})  # critter.xml has no actuators: servos from the config
    s2r = vec.task
    vec.reset(seed=0)
    act = s2r.robot.actuator
    for i, m in enumerate(s2r.models):
        k = s2r.factors[i]["gain"][act]
        assert np.all((k >= 0.8) & (k <= 1.2)) and np.ptp(k) > 0
        np.testing.assert_allclose(m.actuator_gainprm[act, 0], 8.0 * k, rtol=1e-15)  # critter.toml: kp 8, kd 0.2
        np.testing.assert_allclose(m.actuator_biasprm[act, 1], -8.0 * k, rtol=1e-15)
        np.testing.assert_allclose(m.actuator_biasprm[act, 2], -0.2 * k, rtol=1e-15)
    vec.close()


def test_latency_schedule_by_hand():
    """Four physics steps per control step; world 0 delayed 0 steps, world 1 3 steps, world 2 5 steps (more than a
    control step: the target of two control steps ago holds at the first physics step)."""
    lat = PhysicsLatency(3, 1, 4, 5)
    lat.start([0, 1, 2], np.full((3, 1), 9.0), [0, 3, 5])  # 9: the target set at the reset
    first = lat.controls(np.full((3, 1), 1.0))[:, :, 0]
    second = lat.controls(np.full((3, 1), 2.0))[:, :, 0]
    np.testing.assert_array_equal(first, [[1, 1, 1, 1], [9, 9, 9, 1], [9, 9, 9, 9]])
    np.testing.assert_array_equal(second, [[2, 2, 2, 2], [1, 1, 1, 2], [9, 1, 1, 1]])


ONE_JOINT = """<mujoco model="one">
  <option timestep="0.002"/>
  <worldbody>
    <body name="link">
      <joint name="hinge" axis="0 1 0" range="-2 2" damping="0.05"/>
      <geom type="capsule" fromto="0 0 0 0 0 0.3" size="0.02" density="1000"/>
      <site name="tool" pos="0 0 0.3"/>
    </body>
  </worldbody>
</mujoco>
"""


def test_latency_delays_the_servo_target_by_exactly_k_physics_steps(tmp_path):
    """A one-joint arm (the reach template), 4 physics steps per control step, a latency of 6 ms = 3 physics steps:
    the world's state after two control steps is what mj_step gives with the targets (start, start, start, a1) then
    (a1, a1, a1, a2), and no other delay gives it."""
    (tmp_path / "one.xml").write_text(ONE_JOINT)
    (tmp_path / "one.toml").write_text('model = "one.xml"\nend_effector = "tool"\ndecimation = 4\n'
                                       '[joints."*"]\nkp = 5.0\nkd = 0.1\ndefault = 0.0\n')
    vec = make_vector(f"reach:{tmp_path / 'one.toml'}", 1, {"latency": (0.006, 0.006)})
    s2r = vec.task
    vec.reset(seed=0)
    model, worlds = s2r.worlds.model, s2r.worlds
    start, held = worlds.state[0].copy(), s2r.task.ctrl[0].copy()
    assert s2r.factors[0]["latency"][0] == 3 and held[0] == worlds.qpos[0, 0]  # the reset's target: the start pose
    a1, a2 = np.array([[0.8]]), np.array([[-0.5]])
    vec.step(a1)
    vec.step(a2)
    reached = worlds.state[0].copy()
    vec.close()

    def replay(k: int) -> np.ndarray:
        targets = [held[0]] * k + [0.8] * 4 + [-0.5] * (4 - k)  # physics step by physics step
        d = mujoco.MjData(model)
        state = mujoco.mjtState.mjSTATE_FULLPHYSICS
        mujoco.mj_setState(model, d, start, state)
        for u in targets[:8]:
            d.ctrl[0] = u
            mujoco.mj_step(model, d)
        out = np.zeros_like(start)
        mujoco.mj_getState(model, d, out, state)
        return out

    np.testing.assert_array_equal(reached, replay(3))
    for k in (0, 1, 2, 4):
        assert np.abs(reached - replay(k)).max() > 1e-6, k


def test_sensor_noise_has_each_kinds_scale():
    """legged_gym's scales: angular velocity 0.2 rad/s, gravity 0.05, joint positions 0.01 rad, joint velocities
    1.5 rad/s; none on the command and the previous action. Uniform: 400 draws per element reach past 90 % of it."""
    scale = {"base_ang_vel": 0.2, "projected_gravity": 0.05, "velocity_command": 0.0, "joint_pos_rel": 0.01,
             "joint_vel": 1.5, "prev_action": 0.0}
    for level in (1.0, 0.5):
        vec = make_vector(QUADRUPED, 8, {"sensor_noise": level})
        s2r = vec.task
        expected = level * np.array([scale[e.kind] for e in s2r.task_spec.observation])
        obs, _ = vec.reset(seed=0)
        noise = [obs - s2r.task.observe()]
        for _ in range(49):
            obs, *_ = vec.step(np.tile((s2r.low + s2r.high) / 2, (8, 1)))
            noise.append(obs - s2r.task.observe())
        vec.close()
        peak = np.abs(np.concatenate(noise)).max(axis=0)
        assert np.all(peak <= expected * (1 + 1e-9) + 1e-12), (peak, expected)
        assert np.all(peak >= 0.9 * expected), (peak, expected)


def test_the_legged_template_trains_with_its_randomisation_on_and_other_tasks_without(capsys):
    legged = Sim2Real(**LEGGED_SIM2REAL)
    assert legged.switched_on() == ("randomize_friction", "randomize_gain", "base_payload", "base_com", "latency",
                                    "sensor_noise")
    assert legged.latency == (0.0, 0.02)
    for task in (QUADRUPED, CRITTER):
        run, _ = resolve_config("ppo", task)
        assert run.sim2real() == legged, task
    for algo, task in (("ppo", "Hopper-v5"), ("ppo", "robotrl/Hopper-v5"), ("ppo", "robotrl/ArmReach-v0"),
                       ("sac", "Pendulum-v1")):
        run, _ = resolve_config(algo, task)
        assert not run.sim2real().enabled, task
    # turned off, or set one by one: a flag or a config file wins over the template's value
    run, _ = resolve_config("ppo", QUADRUPED, run_flags={"randomize": False})
    assert not run.sim2real().enabled
    run, _ = resolve_config("ppo", QUADRUPED, run_flags={"randomize": "false", "randomize_friction": "0.3"})
    assert run.sim2real().switched_on() == ("randomize_friction",) and run.randomize_friction == 0.3
    run, _ = resolve_config("ppo", QUADRUPED, run_flags={"latency": "0,0.04"})
    assert run.latency == (0.0, 0.04) and run.sensor_noise == 1.0
    # on the command line: a range whose LOW is negative is a value, not a flag
    assert main(["train", "ppo", QUADRUPED, "--no-randomize", "--base-payload", "-0.1,0.3", "--dry-run"]) == 0
    run = json.loads(capsys.readouterr().out)["run"]
    assert run["base_payload"] == [-0.1, 0.3] and run["randomize"] is False and run["randomize_gain"] == 0.0


def test_the_settings_used_are_recorded_in_the_run_and_the_card_and_read_back_for_resume(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text("[run]\nsensor_noise = 0.0\n")
    p = plan("ppo", QUADRUPED, config_file=conf)
    expected = {**Sim2Real(**LEGGED_SIM2REAL).to_dict(), "sensor_noise": 0.0}
    assert {k: p.config["run"][k] for k in expected} == {k: list(v) if isinstance(v, tuple) else v
                                                         for k, v in expected.items()}
    assert p.spec.extras["sim2real"] == expected  # the card's "sim2real"
    recorded = json.loads(json.dumps(p.config["run"]))  # config.json, as `resume` reads it (RunDir.read_settings)
    again = cfgmod.from_dict(RunConfig, recorded, source="config.json [run]")
    assert again == p.run and again.sim2real().to_dict() == expected
    # a run recorded before these settings existed resumes without them (its config.json has none of them)
    old = {k: v for k, v in recorded.items() if k not in ("base_payload", "base_com", "latency", "sensor_noise",
                                                          "randomize", "randomize_friction", "randomize_gain")}
    assert not cfgmod.from_dict(RunConfig, old, source="config.json [run]").sim2real().enabled


def test_a_run_with_the_defaults_trains_on_them_resumes_with_them_and_evaluates_the_nominal_robot(tmp_path):
    from robotrl.run.evaluate import evaluate
    from robotrl.run.rundir import RunDir
    from robotrl.run.train import _build, resume, train

    small = {"num_envs": "2", "rollout_steps": "16", "minibatch_size": "32"}
    run_dir = train("ppo", CRITTER, algo_flags=small, run_flags={"total_steps": "32", "eval_episodes": "1"},
                    out=tmp_path / "r", progress=False)
    rd = RunDir.open(run_dir)
    s = rd.read_settings()
    assert s.run.sim2real() == Sim2Real(**LEGGED_SIM2REAL)
    algo, _ = _build("ppo", s.task, s.run, s.cfg)  # what resume builds: the recorded settings on the worlds
    try:
        assert algo.envs.task.settings == Sim2Real(**LEGGED_SIM2REAL)
    finally:
        algo.close()
    resume(run_dir, total_steps=64, progress=False)
    assert rd.read_settings().run.sim2real() == s.run.sim2real()
    ev = json.loads(rd.eval.read_text())
    policy = rd.policy(rd.load_checkpoint(rd.read_settings())).act
    nominal = evaluate(policy, s.task, 1, ev["seed"])
    randomised = evaluate(policy, s.task, 1, ev["seed"], env_kwargs={"sim2real": LEGGED_SIM2REAL})
    assert ev["returns"] == nominal["returns"] != randomised["returns"]


@pytest.mark.parametrize("argv, needle", [
    (["--latency", "0.02"], "latency must be two numbers LOW,HIGH (seconds), got (0.02,)"),
    (["--latency", "0.02,0.01"], "latency must be LOW,HIGH seconds with 0 <= LOW <= HIGH <= 1, got 0.02,0.01"),
    (["--base-payload=0.3,0.1"], "base_payload must be LOW,HIGH with -0.5 <= LOW <= HIGH <= 1"),
    (["--base-com", "2"], "base_com must be in [0, 0.5] m, got 2.0"),
    (["--sensor-noise", "-1"], "sensor_noise must be in [0, 10]"),
    (["--base-payload=-0.5,0"], "base_payload -0.5 would take 6.9 kg off a base of 6 kg"),
    (["--latency", "0,0.002"], "latency up to 0.002 s is under half a physics step (0.005 s)"),
])
def test_a_bad_value_is_one_line(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "ppo", QUADRUPED, *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robotrl: error: ") and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("task, s2r, needle", [
    ("robotrl/ArmReach-v0", {"base_payload": (0.0, 0.1)}, "base_payload and base_com act on a floating base"),
    ("Hopper-v5", {"latency": (0.0, 0.02)}, "latency delays servo targets at the physics step of a template task"),
    ("Pendulum-v1", {"sensor_noise": 1.0}, "has no element of such a kind (use obs_noise)"),
])
def test_a_setting_the_task_cannot_take_is_one_line(task, s2r, needle):
    with pytest.raises(UserError) as e:
        make(task, sim2real=s2r)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
