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
