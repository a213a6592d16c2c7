"""Rollout videos: real MuJoCo rendering offscreen (EGL or OSMesa), real H.264 and GIF files, decoded again
and checked for size, frame count, frame rate and motion; the filmed episodes are the evaluation's."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robotrl.cli import main
from robotrl.video.render import choose_backend, probe

ARM = "robotrl/ArmReach-v0"  # 50 Hz, 100-step episodes
SMALL_PPO = ["--num-envs", "4", "--rollout-steps", "64", "--minibatch-size", "64", "--update-epochs", "2"]


def _mp4(path: Path) -> tuple[dict, list[np.ndarray]]:
    """Decode with the same bundled ffmpeg: (metadata, RGB frames)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
    return meta, frames


def _run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_moving_picture(frames: list[np.ndarray]) -> None:
    """Not black, not blank, and the picture changes over time (not a frozen frame)."""
    for f in frames:
        assert f.mean() > 20 and f.std() > 10, "a black or blank frame"
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in itertools.pairwise(frames)]
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0
    assert sum(d > 0.05 for d in diffs) >= len(diffs) // 2, diffs


@pytest.fixture(scope="module")
def arm_run(tmp_path_factory) -> Path:
    """A tiny PPO run on our arm, trained with --video (its final evaluation filmed at the default 640x480)."""
    out = tmp_path_factory.mktemp("video") / "run"
    code = main(["train", "ppo", ARM, "--steps", "512", "--eval-episodes", "2", "--video", "--no-progress",
                 "--out", str(out), *SMALL_PPO])
    assert code == 0
    return out


def test_render_backend_is_chosen_automatically():
    backend = choose_backend()
    assert backend in ("egl", "osmesa")
    ok, renderer = probe(backend)
    assert ok, renderer


def test_train_video_is_the_final_evaluations_first_episode(arm_run):
    video = arm_run / "video.mp4"
    meta, frames = _mp4(video)
    ev = json.loads((arm_run / "eval.json").read_text())
    assert meta["codec"] == "h264" and meta["size"] == (640, 480) and meta["fps"] == 25
    assert ev["lengths"][0] == 100 and len(frames) == 100 // 2 + 1  # 50 Hz control, every 2nd step, + first state
    assert ev["video"] == {"file": "video.mp4", "episodes": 1, "frames": len(frames), "width": 640, "height": 480,
                           "fps": 25.0, "camera": "free", "returns": [ev["returns"][0]]}
    _assert_moving_picture(frames)
    assert not list(arm_run.glob(".video*"))  # no temporary file left behind


def test_video_of_a_run_has_the_requested_size_frames_and_fps(arm_run, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    code, stdout, err = _run_cli(capsys, ["video", str(arm_run), "-o", str(out), "--episodes", "2", "--width", "320",
                                          "--height", "240", "--fps", "10", "--json"])
    assert code == 0, err
    summary = json.loads(stdout)
    meta, frames = _mp4(out)
    assert meta["size"] == (320, 240) and meta["fps"] == 10
    assert summary["stride"] == 5 and summary["lengths"] == [100, 100]
    assert len(frames) == summary["frames"] == 2 * (100 // 5 + 1)
    _assert_moving_picture(frames)
    code, stdout, _ = _run_cli(capsys, ["eval", str(arm_run), "--episodes", "2", "--json"])
    # torch rounds a batch of 2 observations differently from 1 in the last bits (the ONNX test is exact)
    assert code == 0 and json.loads(stdout)["mean_return"] == pytest.approx(summary["mean_return"], rel=1e-6)


def test_onnx_video_runs_what_eval_onnx_runs(tmp_path, capsys):
    """The shipped Hopper (1000 steps of a chaotic system: any difference in the trajectory shows in the
    return) filmed with onnxruntime alone returns exactly what `robotrl eval --onnx` measures."""
    out = tmp_path / "hopper.mp4"
    argv = ["pretrained:hopper", "--episodes", "2", "--seed", "7"]
    code, stdout, err = _run_cli(capsys, ["video", *argv[:1], "-o", str(out), *argv[1:], "--width", "64",
                                          "--height", "48", "--fps", "5", "--json"])
    assert code == 0, err
    summary = json.loads(stdout)
    code, stdout, _ = _run_cli(capsys, ["eval", "--onnx", *argv, "--json"])
    ev = json.loads(stdout)
    assert code == 0 and summary["mean_return"] == ev["mean_return"] and np.std(summary["returns"]) == ev["std_return"]
    assert min(summary["returns"]) > 1000  # it hopped: the card's policy, not a broken one
    meta, frames = _mp4(out)
    assert meta["size"] == (64, 48) and meta["fps"] == 5
    assert len(frames) == sum(n // 25 + 1 for n in summary["lengths"])  # 125 Hz / 5 fps: every 25th step
    _assert_moving_picture(frames)


def test_onnx_video_imports_no_torch(tmp_path):
    code = ("import sys; from robotrl.cli import main; "
            f"rc = main(['video', 'pretrained:arm-reach', '-o', {str(tmp_path / 'a.mp4')!r}, '--width', '32', "
            "'--height', '32', '--fps', '5']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "a.mp4").stat().st_size > 1000


def test_gif_frames_and_timing(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "arm.gif"
    code, stdout, err = _run_cli(capsys, ["video", "pretrained:arm-reach", "-o", str(out), "--width", "80",
                                          "--height", "60", "--fps", "25", "--seconds", "1", "--json"])
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["stride"] == 2 and summary["lengths"] == [100]  # the whole episode ran; 1 s of it was filmed
    with Image.open(out) as im:
        assert im.size == (80, 60) and im.n_frames == summary["frames"] == 1 * 25 + 1
        durations, frames = [], []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
            frames.append(np.asarray(im.convert("RGB")))
    assert set(durations) == {40}  # 25 fps
    _assert_moving_picture(frames)


def _gif_frames(path: Path) -> list[np.ndarray]:
    from PIL import Image

    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")).astype(int))
    return out


def test_overlay_is_drawn_where_it_fits_and_left_out_on_request(tmp_path, capsys):
    """Found from outside: at 160x120 MuJoCo's font (it draws no smaller) covered most of the picture. The text
    is drawn in the top-left corner of frames 240 pixels high or more, never below that, nor with --no-overlay;
    the rest of the picture is the same either way."""
    films = {}
    for size, flags in itertools.product(((320, 240), (160, 120)), ((), ("--no-overlay",))):
        out = tmp_path / f"{size[0]}{''.join(flags)}.gif"
        code, stdout, err = _run_cli(capsys, ["video", "pretrained:arm-reach", "-o", str(out), "--width", str(size[0]),
                                              "--height", str(size[1]), "--seconds", "0.2", *flags])
        assert code == 0, err
        films[size, bool(flags)] = (_gif_frames(out), stdout)
    (text, said), (clean, said_clean) = films[(320, 240), False], films[(320, 240), True]
    assert "no text overlay" not in said and "no text overlay," in said_clean, (said, said_clean)
    for a, b in zip(text, clean, strict=True):
        corner = np.abs(a[:60, :120] - b[:60, :120]).mean()
        rest = np.abs(a[120:, 160:] - b[120:, 160:]).mean()
        assert corner > 5 * max(rest, 0.5), (corner, rest)  # text in the corner, the same robot elsewhere
    (small, said_small), (small_clean, _) = films[(160, 120), False], films[(160, 120), True]
    assert "no text overlay (under 240 pixels high" in said_small, said_small
    assert all(np.array_equal(a, b) for a, b in zip(small, small_clean, strict=True))


def test_default_and_named_cameras():
    """Walkers get the tracking camera, the fixed-base arm the task's default view; model cameras by name."""
    from robotrl.envs import make
    from robotrl.video.render import camera_names, make_camera

    env = make("robotrl/Hopper-v5")
    try:
        cam, name = make_camera(env)
        assert name == "track" and "track" in camera_names(env.unwrapped.model)
        assert int(cam.type) == 2 and cam.fixedcamid == camera_names(env.unwrapped.model).index("track")  # FIXED
        assert make_camera(env, "free")[1] == "free"
    finally:
        env.close()
    env = make(ARM)
    try:
        cam, name = make_camera(env)
        assert name == "free" and cam.distance == 2.0 and cam.azimuth == 135.0  # the arm's default view
    finally:
        env.close()


@pytest.mark.parametrize("task, labels", [
    ("robotrl/Hopper-v5", ["step", "return", "speed"]),
    (ARM, ["step", "return", "distance", "success"]),
    ("robotrl/Quadruped-v0", ["step", "return", "command", "actual"]),
])
def test_overlay_shows_what_the_task_reports(task, labels):
    """The text on a frame comes from the real env's step info: speed for walkers, distance and success
    for the arm, the velocity command and the velocity reached for a legged robot."""
    from robotrl.envs import make
    from robotrl.video.film import overlay_rows

    env = make(task)
    try:
        env.reset(seed=0)
        _, r, _, _, info = env.step((env.action_space.low + env.action_space.high) / 2)
    finally:
        env.close()
    rows = overlay_rows(1, r, info, episode=0, episodes=1, control_period=0.02)
    assert [label for label, _ in rows] == labels
    assert rows[0][1] == "1  (0.02 s)"
    if task == "robotrl/Quadruped-v0":
        assert rows[2][1].startswith("vx ") and " yaw " in rows[2][1]


@pytest.mark.parametrize("argv, needle", [
    (["video", "pretrained:arm-reach", "-o", "x.avi"], "use a .mp4 or .gif name"),
    (["video", "pretrained:arm-reach", "-o", "x.mp4", "--width", "101"], "--width must be even for MP4"),
    (["video", "pretrained:arm-reach", "-o", "x.gif", "--fps", "30"], "choose an --fps that divides 100"),
    (["video", "pretrained:arm-reach", "-o", "x.mp4", "--camera", "nosuch"], "no camera 'nosuch'"),
    (["video", "pretrained:arm-reach", "-o", "x.mp4", "--camera", "track"], "has no moving base"),
    (["video", "pretrained:nosuch"], "no pretrained actor 'nosuch'"),
    (["video", "/no/such/run"], "run directory '/no/such/run' does not exist"),
    (["video", "pretrained:arm-reach", "-o", "typo/x.mp4"], "folder 'typo' does not exist"),
    (["video", "pretrained:arm-reach", "--episodes", "0"], "--episodes must be a whole number from 1 to 10,000"),
    (["video", "pretrained:arm-reach", "--episodes", "1e9"], "--episodes must be a whole number from 1 to 10,000"),
    (["train", "ppo", ARM, "--video", "--eval-episodes", "0"], "--video films the final evaluation"),
    (["train", "ddpg", "Pendulum-v1", "--video"], "'Pendulum-v1' is not simulated in MuJoCo"),
])
def test_video_mistakes_are_one_line(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run_cli(capsys, argv)
    assert code == 2, err
    assert err.startswith("robotrl: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_no_renderer_names_the_package_to_install(monkeypatch):
    """GLFW needs a display; without one, forcing it fails for real and the message says what to install."""
    from robotrl.errors import UserError

    monkeypatch.setenv("MUJOCO_GL", "glfw")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    choose_backend.cache_clear()
    try:
        with pytest.raises(UserError, match="libosmesa6"):
            choose_backend()
    finally:
        choose_backend.cache_clear()


@pytest.mark.parametrize("free, needle", [(None, "ffmpeg could not write"), (0, "No space left on device"),
                                          ("gif", "v.gif: File too large; the file is larger than this process")])
def test_ffmpeg_failing_part_way_is_one_line_and_leaves_nothing(tmp_path, free, needle):
    # ffmpeg stopped by a file-size limit (SIGXFSZ) stands in for a disk that fills: a full disk is told as the
    # operating system's refusal, anything else as ffmpeg's failure; no ffmpeg chatter, no partial file
    # (a GIF is written by Pillow in this process, which Python has ignore SIGXFSZ: the write fails with EFBIG)
    out = tmp_path / ("v.gif" if free == "gif" else "v.mp4")
    code = ("import resource, shutil, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
            + (f"shutil.disk_usage = lambda p: shutil._ntuple_diskusage(1 << 30, 1 << 30, {free})\n"
               if isinstance(free, int) else "")
            + "from robotrl.cli import main\n"
            f"sys.exit(main(['video', 'pretrained:arm-reach', '-o', {str(out)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("robotrl: error:"), r.stderr
    assert list(tmp_path.iterdir()) == []
