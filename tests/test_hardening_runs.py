"""Issue 31 (second outside sweep), run directories and training: TensorBoard after kill + resume, replay
buffers too small to sample from, stop signals during training, and messages that named the wrong thing."""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROBOTRL = [sys.executable, "-m", "robotrl"]

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
def test_a_replay_buffer_too_small_to_sample_from_is_refused_with_its_bound(algo, flags, bound):
    r = subprocess.run([*ROBOTRL, "train", algo, "Pendulum-v1", "--dry-run", *flags], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("robotrl: error: buffer_size must be at least") and bound in r.stderr, r.stderr
    help_text = subprocess.run([*ROBOTRL, "train", algo, "--help"], capture_output=True, text=True).stdout
    assert "at least 4 x num_envs" in " ".join(help_text.split())  # the bound is in --help


def test_the_smallest_replay_buffer_trains_and_resumes(tmp_path):
    from robotrl.train import resume, train

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
