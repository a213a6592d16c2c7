"""What the outside re-check of issue 31 found (new variants of its classes), each as the user met it: a real
process, one line, exit 2, and nothing lost or hung."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robotrl.deploy.runtime import CardError, load_card, resolve, validate_card

QUADRUPED = Path(__file__).resolve().parents[1] / "envs" / "assets"


def _cli(*args: str, timeout: float = 120) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "robotrl", *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stderr


def _one_line(code: int, err: str, needle: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and lines and lines[-1].startswith("robotrl: error:") and needle in lines[-1], (code, err)
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("outside") / "run"
    code, err = _cli("train", "td3", "Pendulum-v1", "--steps", "2000", "--checkpoint-every", "1000",
                     "--learning-starts", "500", "--eval-episodes", "1", "--out", str(out), "--no-progress",
                     timeout=300)
    assert code == 0, err
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


@pytest.mark.parametrize("how", ["empty", "missing"])
def test_resume_refuses_a_run_whose_metrics_are_gone_instead_of_dropping_its_history(run, tmp_path, how):
    r = _copy(run, tmp_path)
    events = sorted((r / "tb").iterdir())
    sizes = [p.stat().st_size for p in events]
    if how == "empty":
        (r / "metrics.csv").write_text("")
    else:
        (r / "metrics.csv").unlink()
    code, err = _cli("resume", str(r), "--steps", "3000")
    _one_line(code, err, f"metrics.csv is {how} but run")
    assert sorted((r / "tb").iterdir()) == events and [p.stat().st_size for p in events] == sizes  # untouched


def test_a_pipe_in_place_of_a_run_file_is_named_not_opened(run, tmp_path):
    r = _copy(run, tmp_path)
    (r / "metrics.csv").unlink()
    os.mkfifo(r / "metrics.csv")
    code, err = _cli("resume", str(r), "--steps", "3000", timeout=60)  # blocked for ever opening the pipe
    _one_line(code, err, "metrics.csv is a named pipe (FIFO), not a regular file")
    code, err = _cli("plot", str(r), timeout=60)
    _one_line(code, err, "named pipe")


def test_a_pipe_or_a_device_given_as_the_actor_is_named(tmp_path):
    os.mkfifo(tmp_path / "a.onnx")
    code, err = _cli("card", str(tmp_path / "a.onnx"), timeout=60)
    _one_line(code, err, "a.onnx': is a named pipe (FIFO), not a regular file")
    code, err = _cli("card", "/dev/zero", timeout=60)
    _one_line(code, err, "'/dev/zero': is a character device")


def test_a_card_whose_command_range_does_not_hold_zero_is_refused():
    """A robot config with command_yaw = [0.5, 1.0] is refused (the template trains on ranges holding 0); a card edited
    to say so was accepted by card and deploy, which would clamp 'stand' to 0.5 rad/s."""
    card = load_card(resolve("pretrained:quadruped"))
    yaw = next(e for e in card["spec"]["observation"] if e["kind"] == "velocity_command" and e["axis"] == "yaw")
    yaw["range"] = [0.5, 1.0]
    with pytest.raises(CardError, match=r"velocity_command\.yaw .* is \[0\.5, 1\], which does not hold 0"):
        validate_card(card)


def test_an_mjcf_that_is_not_utf8_is_named_not_a_traceback(tmp_path):
    shutil.copy(QUADRUPED / "quadruped.toml", tmp_path)
    xml = (QUADRUPED / "quadruped.xml").read_bytes().replace(b'name="trunk"', b'name="tr\xfcnk"', 1)
    (tmp_path / "quadruped.xml").write_bytes(xml)
    code, err = _cli("tasks", "--spec", f"legged:{tmp_path / 'quadruped.toml'}")
    _one_line(code, err, "quadruped.xml': is not UTF-8 text")
    assert "is not UTF-8 text (byte 0xfc at offset" in err
    code, err = _cli("robot", "inspect", str(tmp_path / "quadruped.xml"))
    _one_line(code, err, "is not UTF-8 text")
