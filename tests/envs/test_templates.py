"""The template registry (`robotrl.envs.templates`): a template registered from outside the package (here a toy
"hold the home pose" task on our 3-joint arm, tests/assets/arm3.*) is offered by `robot inspect`, taken as
``hold:CONFIG.toml`` by training's task check, reads its ``[hold]`` table and gets per-task defaults, with no edit
anywhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from robotrl.algorithms import registry as algos
from robotrl.envs import templates
from robotrl.envs.robot import Robot
from robotrl.envs.robot_config import RobotConfigError
from robotrl.envs.templates import Template
from robotrl.spec import ActElement, ObsElement, TaskSpec

ARM3 = Path(__file__).resolve().parents[1] / "assets" / "arm3.toml"


class HoldEnv(gym.Env):
    """Hold the default pose: joint positions and velocities in, position targets out, reward -|q - default|^2."""

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, robot: Robot, *, task_id: str = "hold", episode_steps: int = 20, weight: float = 1.0,
                 render_mode: str | None = None):
        if weight < 0:
            raise ValueError("weight must be >= 0")
        self.robot, self.model, r = robot, robot.model, robot
        self.data = mujoco.MjData(self.model)
        self.dt, self.frame_skip = r.control_period, r.config.decimation
        self.max_steps, self.weight = episode_steps, weight
        n = len(r.joints)
        self.action_space = gym.spaces.Box(r.action_low.astype(np.float32), r.action_high.astype(np.float32))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2 * n,), np.float64)
        obs = [ObsElement("joint_pos", j, "rad") for j in r.joints] + [ObsElement("joint_vel", j, "rad/s")
                                                                      for j in r.joints]
        act = [ActElement(j, "position", float(lo), float(hi), "rad")
               for j, lo, hi in zip(r.joints, r.action_low, r.action_high, strict=True)]
        self.task_spec = TaskSpec(task_id=task_id, observation=tuple(obs), action=tuple(act), control_period=self.dt,
                                  frame_skip=self.frame_skip, max_episode_steps=episode_steps, deployable=True)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[self.robot.qpos_adr], self.data.qvel[self.robot.dof_adr]])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.robot.qpos_adr] = self.robot.default
        mujoco.mj_forward(self.model, self.data)
        return self._obs(), {}

    def step(self, action):
        self.data.ctrl[self.robot.actuator] = action
        mujoco.mj_step(self.model, self.data, self.frame_skip)
        error = float(np.sum((self.data.qpos[self.robot.qpos_adr] - self.robot.default) ** 2))
        return self._obs(), -self.weight * error, False, False, {"reward_terms": {"pose": -self.weight * error}}


@pytest.fixture
def hold():
    """The toy template, registered for one test."""
    entry = templates.register(Template("hold", "holding the home pose: a default pose", lambda: HoldEnv,
                                        needs=templates.default_pose_needed))
    yield entry
    templates.unregister("hold")


def test_the_builtin_templates_register_themselves():
    assert templates.names()[:2] == ("legged", "reach")
    assert templates.find("legged").family == "legged" and templates.find("nothing") is None


def test_robot_inspect_offers_a_registered_template(hold, capsys):
    from robotrl.cli import main

    assert main(["robot", "inspect", str(ARM3)]) == 0
    out = capsys.readouterr().out
    assert "template hold    ready   (holding the home pose: a default pose)" in out, out
    assert "template reach   ready" in out


def test_training_takes_a_registered_template_as_a_task(hold, tmp_path):
    from robotrl.envs import check_task, make, make_vector, task_template
    from robotrl.run.train import plan

    task = f"hold:{ARM3}"
    check_task(task)
    assert task_template(task) is hold
    p = plan("ppo", task)
    assert p.run.total_steps == algos.DEFAULT_STEPS and p.spec.act_dim == 3
    assert algos.task_defaults("sac", task) == (algos.DEFAULT_STEPS, {})
    env = make(task)
    env.reset(seed=0)
    assert env.step(env.unwrapped.robot.default)[1] <= 0.0
    env.close()
    assert make_vector(task, 2) is None  # no batched form: the caller steps copies of `make(task)`


def test_a_registered_template_reads_its_own_table(hold, tmp_path):
    from robotrl.envs import make

    p = tmp_path / "arm3.toml"
    model = ARM3.parent / "arm3.xml"
    p.write_text(ARM3.read_text().replace('"arm3.xml"', f'"{model}"') + "[hold]\nepisode_steps = 7\n")
    assert make(f"hold:{p}").unwrapped.max_steps == 7
    p.write_text(p.read_text() + "weight = -1.0\n")
    with pytest.raises(RobotConfigError, match=r"\[hold\]: weight must be >= 0"):
        make(f"hold:{p}")
    p.write_text(p.read_text().replace("weight = -1.0", "speed = 1.0"))
    with pytest.raises(RobotConfigError, match=r"\[hold\]: unknown setting 'speed'; known: episode_steps, weight"):
        make(f"hold:{p}")


def test_a_template_shares_per_task_defaults_through_its_family():
    entry = templates.register(Template("stand", "standing: base, feet", lambda: HoldEnv, family="legged"))
    try:
        steps, overrides = algos.task_defaults("ppo", "stand:my_robot.toml")
        assert steps == algos.TASK_DEFAULTS["ppo"]["legged"]["steps"] and overrides["num_envs"] == 32
        assert entry.family == "legged"
    finally:
        templates.unregister("stand")


@pytest.mark.parametrize("name, needle", [("legged", "registered already"), ("joints", "is a robot config key"),
                                          ("Hold", "lowercase letters"), ("a:b", "lowercase letters")])
def test_a_template_name_that_would_be_ambiguous_is_refused(name, needle):
    with pytest.raises(ValueError, match=needle):
        templates.register(Template(name, "", lambda: HoldEnv))
