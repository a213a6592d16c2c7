"""Issue 31 (second outside sweep), run directories and training: TensorBoard after kill + resume, replay
buffers too small to sample from, stop signals during training, and messages that named the wrong thing."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROBOTRL = [sys.executable, "-m", "robotrl"]


def _one_line_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The CLI's `main` (in this process: the suite must stay fast) refusing `args`: exit 2, one line."""
    from robotrl.cli import main

    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err

# -- TensorBoard says what metrics.csv says, however often the run was killed ------------------------------

TINY = {
    "td3": ["Pendulum-v1", "--iteration-steps", "100", "--learning-starts", "100", "--batch-size", "16",
            "--hidden-sizes", "8,8", "--buffer-size", "5000"],
    "ppo": ["InvertedPendulum-v5", "--num-envs", "2", "--rollout-steps", "50", "--minibatch-size", "50",
            "--update-epochs", "1", "--hidden-sizes", "8,8"],
}


def _csv_points(run: Path) -> set[tuple[str, int]]:
    with (run / "metrics.csv").open(newline="") as f:
        text = f.read()
    text = text[: text.rfind("\n") + 1]  # a row torn by the kill
    points = set()
    for row in csv.DictReader(text.splitlines()):
        for k, v in row.items():
            if k != "step" and v not in ("", None) and math.isfinite(float(v)):
                points.add((k, int(row["step"])))
    return points


def _tb_points(run: Path) -> tuple[set[tuple[str, int]], int]:
    """(tag, step) pairs TensorBoard shows, and how many of them it shows more than once."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(run / "tb"), size_guidance={ea.SCALARS: 0})
    acc.Reload()
    points: set[tuple[str, int]] = set()
    repeated = 0
    for tag in acc.Tags()["scalars"]:
        steps = [e.step for e in acc.Scalars(tag)]
        repeated += len(steps) - len(set(steps))
        points |= {(tag, s) for s in steps}
    return points, repeated


def _checkpoint_steps(run: Path) -> int:
    import torch

    try:
        return int(torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["num_steps"])
    except Exception:  # not there yet, or being replaced right now
        return 0


def _kill_after(args: list[str], run: Path, steps: int, timeout: float = 60) -> None:
    """Start the CLI with `args`; SIGKILL it once its checkpoint has reached `steps`."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while _checkpoint_steps(run) < steps:
            assert proc.poll() is None, f"ended before step {steps}: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.02)
        time.sleep(0.1)  # a row or two past the checkpoint, which the resume must take back
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("algo", ["td3", "ppo"])
def test_tensorboard_says_what_metrics_csv_says_after_kills_and_resumes(tmp_path, algo):
    run = tmp_path / "run"
    task, *flags = TINY[algo]
    _kill_after([*ROBOTRL, "train", algo, task, "--steps", "2000", "--checkpoint-every", "400", "--workers", "0",
                 "--eval-episodes", "1", "--no-progress", "--out", str(run), *flags], run, 400)
    csv_points, (tb_points, repeated) = _csv_points(run), _tb_points(run)
    assert repeated == 0 and tb_points <= csv_points
    last = max(s for _, s in csv_points)
    assert {p for p in csv_points - tb_points if p[1] != last} == set()  # a kill loses no flushed row's events

    _kill_after([*ROBOTRL, "resume", str(run), "--no-progress"], run, 1200)  # killed again
    r = subprocess.run([*ROBOTRL, "resume", str(run), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    csv_points, (tb_points, repeated) = _csv_points(run), _tb_points(run)
    assert repeated == 0
    assert tb_points == csv_points
    steps = sorted({s for tag, s in csv_points if tag == "rollout/episodes"})
    assert steps[0] <= 400 and steps[-1] == 2000 and ("eval/mean_return", 2000) in tb_points
    assert len(list((run / "tb").iterdir())) == 1  # one event file, no temporary left behind


# -- a replay buffer too small to sample from is refused; a stop signal always stops ------------------------

@pytest.mark.parametrize("algo,flags,bound", [
    ("td3", ["--buffer-size", "1", "--batch-size", "1"], "4 x num_envs = 4, got 1"),
    ("ddpg", ["--buffer-size", "2", "--batch-size", "1"], "4 x num_envs = 4, got 2"),
    ("sac", ["--buffer-size", "3", "--batch-size", "2"], "4 x num_envs = 4, got 3"),
    ("sac", ["--num-envs", "8", "--buffer-size", "16", "--batch-size", "8"], "4 x num_envs = 32, got 16"),
])
def test_a_replay_buffer_too_small_to_sample_from_is_refused_with_its_bound(algo, flags, bound, capsys):
    err = _one_line_error(["train", algo, "Pendulum-v1", "--dry-run", *flags], capsys)
    assert err.startswith("robotrl: error: buffer_size must be at least") and bound in err, err
    from robotrl.cli import main

    with pytest.raises(SystemExit):
        main(["train", algo, "--help"])
    assert "at least 4 x num_envs" in " ".join(capsys.readouterr().out.split())  # the bound is in --help


def test_the_smallest_replay_buffer_trains_and_resumes(tmp_path):
    from robotrl.run.train import resume, train

    flags = {"buffer_size": "4", "batch_size": "2", "learning_starts": "10", "iteration_steps": "250",
             "hidden_sizes": "8,8"}
    run = train("td3", "Pendulum-v1", algo_flags=flags, out=tmp_path / "run", progress=False,
                run_flags={"total_steps": "500", "eval_episodes": "0", "workers": "0"})  # an episode ends at 200, 400
    resume(run, total_steps=750, progress=False)  # fresh episodes after a resume keep a transition to sample


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("algo,flags", [
    ("td3", ["Pendulum-v1", "--iteration-steps", "10000000", "--learning-starts", "50", "--batch-size", "8",
             "--hidden-sizes", "8,8", "--buffer-size", "10000"]),
    ("ppo", ["InvertedPendulum-v5", "--num-envs", "1", "--rollout-steps", "2000000", "--minibatch-size", "1000",
             "--hidden-sizes", "8,8"]),
    ("td3", ["Pendulum-v1", "--iteration-steps", "100", "--learning-starts", "50", "--batch-size", "8",  # in an
             "--hidden-sizes", "8,8", "--eval-every", "100", "--eval-episodes", "100000"]),  # evaluation of hours
])
def test_a_stop_signal_stops_inside_a_long_iteration(tmp_path, algo, flags, sig, code):
    """An iteration of millions of steps: the signal must not wait for its end."""
    run = tmp_path / "run"
    proc = subprocess.Popen([*ROBOTRL, "train", algo, *flags, "--steps", "20000000", "--workers", "0",
                             "--no-progress", "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run / "tb").is_dir():  # training has started
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert "checkpoint saved" in err and "Traceback" not in err, err[-2000:]
    assert (run / "checkpoints" / "latest.pt").is_file()


# -- messages name the field, table, file or bound that is wrong -------------------------------------------



@pytest.mark.parametrize("args,expected", [
    (["train", "td3", "Pendulum-v1", "--num-envs", "100000", "--dry-run"], "num_envs must be <= 4096, got 100000"),
    (["train", "sac", "Pendulum-v1", "--envs", "5000", "--dry-run"], "num_envs must be <= 4096, got 5000"),
    (["train", "ddpg", "Pendulum-v1", "--noise-sigma-final", "-0.1", "--dry-run"],
     "noise_sigma_final must be >= 0, got -0.1"),
    (["train", "td3", "Pendulum-v1", "--noise-sigma-final", "0.05", "--dry-run"],
     "noise_sigma_final needs noise_decay_steps > 0"),
    (["video", "pretrained:hopper", "--width", "8"], "--width must be a whole number from 16 to 4,096, got '8'"),
    (["video", "pretrained:hopper", "--height", "5000"], "--height must be a whole number from 16 to 4,096"),
])
def test_a_bad_setting_is_named_itself_not_a_field_derived_from_it(args, expected, capsys):
    assert expected in _one_line_error(args, capsys)


@pytest.mark.parametrize("table,hint", [("runn", "did you mean [run]?"), ("ppo_", "did you mean [ppo]?"),
                                        ("network", "the tables are [run] and [ppo]")])
def test_a_misspelt_table_of_a_config_file_is_called_an_unknown_table(tmp_path, table, hint, capsys):
    (tmp_path / "c.toml").write_text(f"[{table}]\nseed = 1\n")
    err = _one_line_error(["train", "ppo", "Pendulum-v1", "--config", str(tmp_path / "c.toml"), "--dry-run"], capsys)
    assert f"unknown table [{table}]" in err and hint in err and "PPOConfig" not in err, err


def test_plot_names_a_file_given_as_a_run_and_an_empty_metrics_csv(tmp_path, capsys):
    (tmp_path / "afile").write_text("step\n")
    assert "is a file, not a run directory" in _one_line_error(["plot", str(tmp_path / "afile")], capsys)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_bytes(b"")
    err = _one_line_error(["plot", str(tmp_path / "run")], capsys)
    assert "metrics.csv is empty" in err and "episode" not in err, err


def test_help_states_the_bounds_each_integer_flag_is_checked_against():
    """Every flag parsed by the CLI's whole-number parser says its real range in --help (video --width said
    nothing and was checked against 1 to 1e12, where 16 to 4096 holds)."""
    import argparse

    from robotrl.cli import build_parser

    checked = []

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            bounds = getattr(action.type, "bounds", None)
            if bounds is not None:
                assert f"[{bounds[0]:,} to {bounds[1]:,}]" in action.help, (action.option_strings, action.help)
                checked.append(action.option_strings[0])
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    walk(child)

    walk(build_parser(["train"]))
    assert {"--width", "--height", "--episodes", "--steps", "--cpus"} <= set(checked)


def test_sampling_ends_however_few_slots_hold_a_transition():
    """Rejection sampling over slots could loop for ever on a buffer with no transition start; where starts are
    rare it now draws from the listed starts, and where there are none it says so."""
    import numpy as np

    from robotrl.algorithms.buffers import ReplayBuffer

    buf = ReplayBuffer(100_000, 1, 2, 1)
    buf.starts[:] = False
    buf.high, buf.has_transitions = 100_000, True
    with pytest.raises(ValueError, match="no complete transition"):
        buf.sample(1, np.random.default_rng(0))
    buf.starts[77_777, 0] = True
    buf.obs[77_777, 0], buf.obs[77_778, 0] = 1.0, 2.0
    b = buf.sample(4, np.random.default_rng(0))
    assert b.obs[:, 0].tolist() == [1.0] * 4 and b.next_obs[:, 0].tolist() == [2.0] * 4


def test_the_last_step_is_evaluated_once_with_eval_every(tmp_path):
    """--eval-every dividing --steps evaluated the last step twice (periodic and final, the same figures): two eval
    points at one step in metrics.csv and TensorBoard."""
    from robotrl.run.train import train

    run = train("ppo", "InvertedPendulum-v5", out=tmp_path / "run", progress=False,
                algo_flags={"num_envs": "2", "rollout_steps": "50", "minibatch_size": "50", "update_epochs": "1",
                            "hidden_sizes": "8,8"},
                run_flags={"total_steps": "200", "eval_every": "100", "eval_episodes": "1", "workers": "0"})
    with (run / "metrics.csv").open(newline="") as f:
        evals = [(int(r["step"]), float(r["eval/mean_return"])) for r in csv.DictReader(f) if r.get("eval/mean_return")]
    assert [s for s, _ in evals] == [100, 200]
    assert json.loads((run / "eval.json").read_text())["mean_return"] == evals[-1][1]  # the twin had the same figures
    assert _tb_points(run) == (_csv_points(run), 0)
