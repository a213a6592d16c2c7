"""Rollout videos: deterministic evaluation episodes filmed offscreen, written as MP4 (H.264) or GIF.

    robotrl video RUN_DIR | actor.onnx | pretrained:NAME [-o FILE.mp4|.gif] [--episodes N] [--seed S]
                  [--camera NAME] [--width W --height H] [--fps F] [--seconds S]
    robotrl train ... --video            # the run directory gets video.mp4 of the final evaluation

The episodes are the ones `robotrl eval` runs (`robotrl.run.evaluate.evaluate`, episode k seeded
``seed + k``), watched as they happen: filming reads the simulator's state and never changes it, so a
video's returns are the evaluation's. An exported actor is run with onnxruntime alone (no torch), so
what is filmed is what the robot runs. Each frame shows the step, the return so far and, where the
task reports them, the forward speed, the distance to the goal, success, and a legged robot's velocity
command beside the velocity it achieves (not with ``--no-overlay``, nor on frames under 240 pixels high,
where MuJoCo's font, which draws no smaller, would cover most of the picture).

Frame rate: frames are taken every ``stride`` control steps and played at ``fps``. By default the
video plays in real time near 25 frames/s (Hopper at 125 Hz: every 5th step; the arm at 50 Hz:
every 2nd); ``--fps F`` takes every ``round(control_hz / F)``-th step and plays at exactly F. Each
episode gives ``length // stride + 1`` frames (its first state, then every stride-th step), fewer
with ``--seconds``.

MP4 goes through imageio-ffmpeg's bundled ffmpeg binary (libx264, yuv420p, so width and height are
even); GIF through Pillow (one palette from the first frame; frame delays are whole hundredths of a
second, so a GIF's fps divides 100). Files are written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robotrl.errors import UserError
from robotrl.video.encoders import open_writer

if TYPE_CHECKING:
    import numpy as np

DEFAULT_FPS = 25.0  # a divisor of 100 (GIF) and of every suite task's control rate (20, 50, 125 Hz)
FORMATS = (".mp4", ".gif")
MAX_SIDE = 4096
MIN_OVERLAY_HEIGHT = 240  # MuJoCo draws its font no smaller: 4 to 6 rows of ~27 pixels


@dataclass(frozen=True)
class VideoSettings:
    """What to film and how. `fps` None: real time near `DEFAULT_FPS`; `camera` None: the task's default;
    `seconds` None: whole episodes."""

    path: Path
    width: int = 640
    height: int = 480
    fps: float | None = None
    camera: str | None = None
    seconds: float | None = None
    overlay: bool = True
    """draw the text overlay (step, return, ...); it is left out of frames under `MIN_OVERLAY_HEIGHT` pixels high,
    where MuJoCo's font (it draws no smaller) would cover most of the picture"""

    @property
    def draws_overlay(self) -> bool:
        return self.overlay and self.height >= MIN_OVERLAY_HEIGHT

    def __post_init__(self) -> None:
        suffix = Path(self.path).suffix.lower()
        if suffix not in FORMATS:
            raise UserError(f"video file {str(self.path)!r}: use a .mp4 or .gif name")
        for name, v in (("--width", self.width), ("--height", self.height)):
            if not 16 <= v <= MAX_SIDE:
                raise UserError(f"{name} must be between 16 and {MAX_SIDE} pixels, got {v}")
            if suffix == ".mp4" and v % 2:
                raise UserError(f"{name} must be even for MP4 (H.264 stores colour at half resolution), got {v}")
        if self.fps is not None:
            if not (math.isfinite(self.fps) and 0 < self.fps <= 240):
                raise UserError(f"--fps must be in (0, 240], got {self.fps:g}")
            if suffix == ".gif" and (self.fps > 50 or abs(100 / self.fps - round(100 / self.fps)) > 1e-9):
                raise UserError(f"GIF frame delays are whole hundredths of a second: choose an --fps that divides "
                                f"100 and is at most 50 (e.g. 10, 20, 25, 50), got {self.fps:g}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise UserError(f"--seconds must be a positive number, got {self.seconds:g}")

    def timing(self, control_period: float) -> tuple[int, float]:
        """(stride in control steps, playback frames/s) for a task controlled every `control_period` s."""
        hz = 1.0 / control_period
        stride = max(1, round(hz / (self.fps or DEFAULT_FPS)))
        fps = self.fps if self.fps is not None else hz / stride
        if self.fps is None and Path(self.path).suffix.lower() == ".gif":
            fps = 100 / max(2, round(100 / fps))  # nearest rate a GIF can hold
        return stride, fps


# the recorder -------------------------------------------------------------------------------------------------

def overlay_rows(step: int, ret: float, info: dict[str, Any], *, episode: int, episodes: int,
                 control_period: float) -> list[tuple[str, str]]:
    """The text drawn on a frame: (label, value) rows."""
    import numpy as np

    rows = []
    if episodes > 1:
        rows.append(("episode", f"{episode + 1} of {episodes}"))
    rows.append(("step", f"{step}  ({step * control_period:.2f} s)"))
    rows.append(("return", f"{ret:,.1f}" if abs(ret) >= 100 else f"{ret:.3f}"))
    if "x_velocity" in info:
        rows.append(("speed", f"{float(info['x_velocity']):+.2f} m/s"))
    command = info.get("command")
    if command is not None:  # legged velocity tracking: vx, vy [m/s], yaw rate [rad/s], and what the base does
        command = np.ravel(command)
        axes = ("vx", "vy", "yaw") if len(command) == 3 else tuple(f"c{i}" for i in range(len(command)))
        rows.append(("command", "  ".join(f"{a} {float(c):+.2f}" for a, c in zip(axes, command, strict=True))))
        if "base_lin_vel" in info and "base_yaw_rate" in info and len(command) == 3:
            v = np.ravel(info["base_lin_vel"])
            rows.append(("actual", f"vx {v[0]:+.2f}  vy {v[1]:+.2f}  yaw {float(info['base_yaw_rate']):+.2f}"))
    if "distance" in info:
        rows.append(("distance", f"{100 * float(info['distance']):.1f} cm"))
    if "is_success" in info:
        rows.append(("success", "yes" if info["is_success"] else "no"))
    return rows


@dataclass
class Recorder:
    """An `evaluate(..., watch=)` hook that films episodes ``0 .. episodes - 1`` into one file.

    The episodes must reach it one after the other (one env, or only episode 0 filmed from several):
    frames stream to the writer and are never held back.
    """

    settings: VideoSettings
    episodes: int = 1
    backend: str | None = None  # None: `robotrl.video.render.choose_backend()`
    # filled in while filming
    frames: int = field(default=0, init=False)
    render_s: float = field(default=0.0, init=False)  # rendering frames and handing them to the encoder
    camera: str | None = field(default=None, init=False)
    control_period: float | None = field(default=None, init=False)
    returns: list[float] = field(default_factory=list, init=False)
    lengths: list[int] = field(default_factory=list, init=False)
    _writer: Any = field(default=None, init=False, repr=False)
    _renderer: Any = field(default=None, init=False, repr=False)
    _cam: Any = field(default=None, init=False, repr=False)
    _model: Any = field(default=None, init=False, repr=False)
    _current: int = field(default=-1, init=False, repr=False)
    _step: int = field(default=0, init=False, repr=False)
    _ret: float = field(default=0.0, init=False, repr=False)
    _episode_frames: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError("episodes must be >= 1")

    def __call__(self, episode: int, env: Any, reward: float | None, info: dict[str, Any], done: bool) -> None:
        if episode >= self.episodes:
            return
        if reward is None:  # a reset: a new episode starts
            if episode != self._current + 1:
                raise RuntimeError(f"episodes must be filmed in order: got {episode} after {self._current}")
            self._current, self._step, self._ret, self._episode_frames = episode, 0, 0.0, 0
            self._setup(env)
        else:
            if episode != self._current:
                raise RuntimeError(f"step of episode {episode} while filming episode {self._current}")
            self._step += 1
            self._ret += reward
        stride, _ = self.settings.timing(self.control_period)
        if done:
            self.returns.append(self._ret)
            self.lengths.append(self._step)
        if self._step % stride == 0 and self._episode_frames < self._max_frames(stride):
            t = time.perf_counter()
            rows = overlay_rows(self._step, self._ret, info, episode=episode, episodes=self.episodes,
                                control_period=self.control_period) if self.settings.draws_overlay else None
            frame = self._renderer.render(env.unwrapped.data, self._cam, rows)
            self._writer.append(frame)
            self.render_s += time.perf_counter() - t
            self.frames += 1
            self._episode_frames += 1

    def _max_frames(self, stride: int) -> float:
        if self.settings.seconds is None:
            return math.inf
        return math.floor(self.settings.seconds / (self.control_period * stride) + 1e-9) + 1

    def _setup(self, env: Any) -> None:
        from robotrl.video.render import OffscreenRenderer, make_camera

        base = env.unwrapped
        s = self.settings
        self._cam, self.camera = make_camera(env, s.camera)  # afresh: every episode starts with the same view
        if self.control_period is None:
            self.control_period = float(base.dt)
        if self._model is base.model:
            return
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = OffscreenRenderer(base.model, s.width, s.height, backend=self.backend)
        self.backend = self._renderer.backend
        self._model = base.model
        if self._writer is None:
            self._writer = open_writer(s.path, s.width, s.height, s.timing(self.control_period)[1])

    def close(self, ok: bool = True) -> None:
        """Finish the file (`ok`) or throw it away; free the GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close(ok and len(self.lengths) == self.episodes)

    @property
    def fps(self) -> float:
        return self.settings.timing(self.control_period)[1] if self.control_period else float("nan")

    def record(self) -> dict[str, Any]:
        """What eval.json says about the video of a run's final evaluation."""
        return {"file": Path(self.settings.path).name, "episodes": self.episodes, "frames": self.frames,
                "width": self.settings.width, "height": self.settings.height, "fps": self.fps, "camera": self.camera,
                "returns": self.returns}

    def summary(self) -> dict[str, Any]:
        stride, fps = self.settings.timing(self.control_period)
        return {"path": str(self.settings.path), "episodes": self.episodes, "frames": self.frames,
                "width": self.settings.width, "height": self.settings.height, "fps": fps, "stride": stride,
                "speed": fps * stride * self.control_period, "camera": self.camera, "backend": self.backend,
                "returns": self.returns, "lengths": self.lengths, "render_s": self.render_s,
                "overlay": self.settings.draws_overlay}


@contextlib.contextmanager
def recording(settings: VideoSettings, episodes: int = 1, backend: str | None = None) -> Iterator[Recorder]:
    """A `Recorder` whose file is complete when the block ends normally and removed when it raises."""
    rec = Recorder(settings, episodes=episodes, backend=backend)
    ok = False
    try:
        yield rec
        ok = True
    finally:
        rec.close(ok)


def check_can_record(task: str | None = None) -> str:
    """Fail early (before a training run) if `task` cannot be filmed or nothing can render or encode here;
    returns the GL back-end."""
    from robotrl.video.render import choose_backend, make_camera

    if task is not None:
        from robotrl.envs import make

        env = make(task)
        try:
            make_camera(env)  # refuses a task that MuJoCo does not simulate
        finally:
            env.close()
    backend = choose_backend()
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise UserError("MP4 videos need imageio-ffmpeg: pip install 'robotrl[train]'") from None
    return backend


# sources and the command ---------------------------------------------------------------------------------------

@dataclass
class Source:
    """A policy to film: ``act`` maps [N, obs_dim] observations to commands."""

    act: Callable[[np.ndarray], np.ndarray]
    task: str
    algo: str
    step: int
    seed: int  # default first episode seed: the run's evaluation seed
    label: str
    default_out: Path


def load_source(text: str) -> Source:
    """A run directory (torch checkpoint), an exported actor or ``pretrained:NAME`` (onnxruntime only)."""
    from robotrl.run.evaluate import check_actor_fits_task, check_run_task, eval_seed

    path = Path(text)
    if text.startswith("pretrained:") or path.suffix == ".onnx" or path.is_file():
        from robotrl.deploy.runtime import CardError, OnnxPolicy

        try:
            policy = OnnxPolicy(text)
        except CardError as e:
            raise UserError(str(e)) from None
        card = policy.card
        check_actor_fits_task(card, card["task_id"], text)
        out = Path(f"{text.split(':', 1)[1]}.mp4") if text.startswith("pretrained:") else path.with_suffix(".mp4")
        return Source(policy, card["task_id"], card["algo"], int(card["training"]["steps"]),
                      eval_seed(int(card["training"]["seed"])), f"{text} (onnxruntime)", out)
    from robotrl.run.rundir import RunDir

    rd = RunDir.open(text)
    settings = rd.read_settings()
    state = rd.load_checkpoint(settings)
    check_run_task(rd, settings)
    return Source(rd.policy(state).act, settings.task, settings.algo, int(state["num_steps"]),
                  eval_seed(settings.run.seed), text, rd.path / "video.mp4")


def film(source: Source, settings: VideoSettings, *, episodes: int = 1, seed: int | None = None,
         script: bool = False) -> dict[str, Any]:
    """Film `episodes` evaluation episodes of `source` into ``settings.path``; the summary, with the
    evaluation's own figures (``evaluation``) beside the video's. `script`: a walker follows the scripted
    command sequence of `robotrl sim2sim` (stand, forward, turn, stop) instead of its random commands."""
    from robotrl.run.evaluate import evaluate
    from robotrl.video.render import choose_backend

    backend = choose_backend()
    seed = source.seed if seed is None else seed
    t0 = time.perf_counter()
    with recording(settings, episodes, backend) as rec:
        if script:
            import numpy as np

            from robotrl.envs.legged import COMMAND_SCRIPT, evaluate_tracking

            ev = evaluate_tracking(lambda o: source.act(np.asarray(o)[None])[0], source.task, episodes=episodes,
                                   seed=seed, script=COMMAND_SCRIPT, env_kwargs={"push_interval_s": 0.0}, watch=rec)
        else:
            ev = evaluate(source.act, source.task, episodes, seed, num_envs=1, watch=rec)
    out = rec.summary()
    out.update(task=source.task, algo=source.algo, seed=seed, wall_s=time.perf_counter() - t0, evaluation=ev,
               bytes=settings.path.stat().st_size)
    return out
