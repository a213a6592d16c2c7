"""Bad input gets one line naming the problem and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from robotrl.cli import main


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, needle", [
    (["train", "a2c", "Hopper-v5"], "invalid choice: 'a2c'"),
    (["train", "ppo", "Hoper-v5"], "unknown task 'Hoper-v5'; did you mean Hopper-v5"),
    (["train", "ppo", "NoSuchTask-v0"], "unknown task 'NoSuchTask-v0'"),
    (["train", "ppo", "CartPole-v1", "--steps", "100"], "Discrete action space"),
    (["train", "ppo", "Hopper-v5", "--steps", "-5"], "positive number of steps, at most 1e+12, got -5"),
    (["train", "ppo", "Hopper-v5", "--steps", str(10**400)], "at most 1e+12, got 100000... (401 digits)"),
    (["train", "ppo", "Hopper-v5", "--steps", "lots"], "--steps: expected int, got 'lots'"),
    (["train", "ppo", "Hopper-v5", "--learning-rate", "abc"], "--learning-rate: expected float, got 'abc'"),
    (["train", "ppo", "Hopper-v5", "--objective", "huber"], "--objective: expected one of clip, kl_penalty"),
    (["train", "ppo", "Hopper-v5", "--minibatch-size", "100"], "must divide the batch size"),
    (["train", "ppo", "Hopper-v5", "--envs", "3"], "= 3 x 128 = 384: e.g. --minibatch-size 384"),  # per-task 512
    (["train", "ppo", "Hopper-v5", "--hidden-sizes", "64,,64"], "without empty entries (e.g. 256,256), got '64,,64'"),
    (["eval", "pretrained:hopper"], "is an exported actor, not a run directory: evaluate it with 'robotrl eval --onnx"),
    (["sweep", "/no/such/study.toml"], "study file '/no/such/study.toml' does not exist"),
    (["train", "ppo", "Hopper-v5", "--learning-rat", "1"], "unrecognized arguments: --learning-rat"),
    (["train", "ppo", "Hopper-v5", "--envs", "4", "--num-envs", "8"], "--envs 4 and --num-envs 8 name the same"),
    (["train", "ppo", "Hopper-v5", "--config", "/nonexistent.toml"], "config file '/nonexistent.toml' does not exist"),
    (["eval", "/no/such/run"], "run directory '/no/such/run' does not exist"),
    (["eval", "Hopper-v5"], "'Hopper-v5' is a task, not a run directory: evaluate a run with 'robotrl eval RUN_DIR'"),
    (["resume", "/no/such/run"], "run directory '/no/such/run' does not exist"),
    (["plot", "/no/such/run"], "run directory '/no/such/run' does not exist"),
    (["eval", "/no/such/run", "--episodes", "0"], "--episodes must be a whole number from 1 to 1,000,000, got '0'"),
    (["eval", "/no/such/run", "--episodes", "1e400"], "--episodes must be a whole number from 1 to 1,000,000"),
    (["eval", "/no/such/run", "--episodes", "2.5"], "--episodes must be a whole number from 1 to 1,000,000"),
    (["sim2sim", "pretrained:hopper", "--episodes", "nan"], "--episodes must be a whole number from 1 to 1,000,000"),
    (["resume", "/no/such/run", "--steps", "1e400"], "--steps must be a whole number from 1 to 1,000,000,000,000"),
    (["sweep", "s.toml", "--cpus", "1e6"], "--cpus must be a whole number from 1 to 100,000, got '1e6'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_user_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)  # a run would go to ./runs/...: a refused one must leave nothing there
    code, _out, err = _run(capsys, argv)
    assert code == 2
    assert err.startswith("robotrl: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_default_run_directory_is_where_the_check_above_looks(capsys, tmp_path, monkeypatch):
    """The emptiness check above can fail: an accepted train command does write under ./runs/."""
    monkeypatch.chdir(tmp_path)
    code, _out, err = _run(capsys, ["train", "ppo", "Pendulum-v1", "--steps", "256", "--num-envs", "2",
                                    "--rollout-steps", "128", "--minibatch-size", "64", "--workers", "0",
                                    "--eval-episodes", "1", "--no-progress"])
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["runs"] and any((tmp_path / "runs").iterdir())


def test_whole_numbers_may_be_written_in_exponent_form():
    from robotrl.cli import _positive_int

    parse = _positive_int("--episodes", 1000)
    assert [parse(t) for t in ("7", "1e3", "20.0", "1_000")] == [7, 1000, 20, 1000]


def test_a_directory_that_is_not_a_run(capsys, tmp_path):
    code, _, err = _run(capsys, ["eval", str(tmp_path)])
    assert code == 2 and "not a robotrl run directory" in err
    code, _, err = _run(capsys, ["resume", str(tmp_path)])
    assert code == 2 and "not a robotrl run directory" in err


def test_no_traceback_from_a_real_process():
    p = subprocess.run([sys.executable, "-m", "robotrl", "train", "ppo", "Hopper-v5", "--gamma", "2"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == "robotrl: error: gamma must be in (0, 1], got 2.0"


@pytest.mark.parametrize("algo", ["ppo", "trpo", "ddpg", "td3", "sac"])
def test_every_setting_in_train_help_states_its_default(capsys, algo):
    import dataclasses
    import re

    from robotrl.algorithms.registry import get
    from robotrl.cli import RUN_FLAGS
    from robotrl.config import cli_flag

    with pytest.raises(SystemExit):
        main(["train", algo, "--help"])
    out = capsys.readouterr().out
    entries = {m.group(1): " ".join(m.group(2).split())
               for m in re.finditer(r"^  (--[\w-]+)(?: V)?(.*?)(?=^  -|^\S|\Z)", out, re.M | re.S)}
    _, Config = get(algo).load()
    flags = [*RUN_FLAGS, *(cli_flag(f.name) for f in dataclasses.fields(Config))]
    for flag in flags:
        assert flag in entries, f"{flag} missing from 'robotrl train {algo} --help'"
        assert "default:" in entries[flag], f"{flag}: no default in its help ({entries[flag]!r})"


def test_train_help_lists_every_field_with_its_meaning(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "ppo", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for text in ("--clip-coef", "epsilon of the clipped objective", "--objective", "--kl-target",
                 "--learning-rate", "--envs", "--steps", "--seed", "--config", "--out", "--num-envs"):
        assert text in out, text


@pytest.mark.parametrize("task, needle", [
    ("robotrl/ArmReach-v0", "its 11 observation elements, robotrl/ArmReach-v0 has 18"),
    ("Hopper-v5", "its action 0 (thigh_joint) spans [-200, 200], Hopper-v5's [-1, 1]"),  # same sizes, other units
    ("robotrl/Walker2d-v5", "cannot run on robotrl/Walker2d-v5"),
])
def test_an_actor_on_a_task_it_does_not_fit_is_refused_in_one_line(capsys, task, needle):
    assert main(["eval", "--onnx", "pretrained:hopper", task, "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "leave TASK out" in err and err.count("\n") == 1, err
    assert main(["eval", "--onnx", "pretrained:hopper", "robotrl/Hopper-v5", "--episodes", "1", "--json"]) == 0
