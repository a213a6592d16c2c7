"""`robotrl video`: its arguments and its command (the filming is `robotrl.video.film`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robotrl.errors import UserError
from robotrl.video.film import MAX_SIDE, MIN_OVERLAY_HEIGHT, VideoSettings, film, load_source


def _is_tracking(task: str) -> bool:
    from robotrl.envs import task_spec

    return any(e.kind == "velocity_command" for e in task_spec(task).observation)


def describe(s: dict[str, Any]) -> str:
    speed = "real time" if abs(s["speed"] - 1) < 0.01 else f"{s['speed']:.2f}x real time"
    returns = ", ".join(f"{r:,.1f}" if abs(r) >= 100 else f"{r:.3f}" for r in s["returns"])
    return (f"{s['path']}: {s['episodes']} episode{'s' if s['episodes'] > 1 else ''} of {s['task']} (seed "
            f"{s['seed']}), {s['frames']} frames {s['width']}x{s['height']} at {s['fps']:g} fps ({speed}, every "
            f"{s['stride']} control step{'s' if s['stride'] > 1 else ''}), camera {s['camera']}{_no_overlay(s)}, "
            f"{s['bytes']:,} "
            f"bytes; return {returns}; rendered with {s['backend']} in {s['render_s']:.1f} s")


def _no_overlay(s: dict[str, Any]) -> str:
    if s.get("overlay", True):
        return ""
    return (", no text overlay" if s["height"] >= MIN_OVERLAY_HEIGHT else
            f", no text overlay (under {MIN_OVERLAY_HEIGHT} pixels high it would cover the picture)")


def main(args: Any) -> int:
    """`robotrl video` (arguments parsed by robotrl.cli)."""
    import json

    from robotrl.video.render import check_environment

    check_environment()  # before mujoco is imported: it refuses an unknown MUJOCO_GL with a traceback
    source = load_source(args.source)
    out = Path(args.out) if args.out else source.default_out
    if args.out and not out.parent.is_dir():  # as export and plot: a mistyped folder is not created
        raise UserError(f"-o {str(out)!r}: folder {str(out.parent)!r} does not exist")
    settings = VideoSettings(out, width=args.width, height=args.height, fps=args.fps, camera=args.camera,
                             seconds=args.seconds, overlay=not args.no_overlay)
    if args.script and not _is_tracking(source.task):
        raise UserError(f"--script: {source.task} does not follow a velocity command (a legged task does)")
    summary = film(source, settings, episodes=args.episodes, seed=args.seed, script=args.script)
    if args.json:
        ev = summary.pop("evaluation")
        summary["mean_return"] = ev["mean_return"]
        print(json.dumps(summary))
    else:
        print(describe(summary))
    return 0


def add_parser(sub: Any, positive_int: Callable[..., Callable[[str], int]], seed: Callable[[str], int]) -> None:
    """The `robotrl video` sub-command's arguments (called by robotrl.cli.build_parser, which passes its
    checking parsers for positive integers and seeds)."""
    p = sub.add_parser("video", help="film evaluation episodes of a run, an exported actor or a shipped one (MP4/GIF)",
                       description="Render deterministic evaluation episodes offscreen (EGL or OSMesa) to MP4 "
                                   "(H.264) or GIF. An .onnx actor runs with onnxruntime alone.")
    p.add_argument("source", metavar="RUN_DIR|FILE.onnx|pretrained:NAME")
    p.add_argument("-o", "--out", metavar="FILE", help="FILE.mp4 or FILE.gif (default: RUN_DIR/video.mp4, "
                                                       "FILE.mp4 beside FILE.onnx, NAME.mp4 for pretrained:NAME)")
    p.add_argument("--episodes", metavar="N", type=positive_int("--episodes", 10**4), default=1,
                   help="episodes to film, one after the other (default: 1)")
    p.add_argument("--seed", metavar="S", type=seed, default=None,
                   help="first episode seed (default: the run's evaluation seed, as robotrl eval)")
    p.add_argument("--camera", metavar="NAME", default=None,
                   help="track (follows a walker), free (the task's default view) or a camera of the model "
                        "(default: track for walkers, free otherwise)")
    p.add_argument("--width", metavar="W", type=positive_int("--width", MAX_SIDE, 16), default=640,
                   help="pixels, even for MP4 (default: 640)")
    p.add_argument("--height", metavar="H", type=positive_int("--height", MAX_SIDE, 16), default=480,
                   help="pixels, even for MP4 (default: 480)")
    p.add_argument("--fps", metavar="F", type=float, default=None,
                   help="frames per second of the video, above 0 and at most 240 (a GIF: 100 divided by a whole "
                        "number, at most 50) (default: real time, about 25 fps)")
    p.add_argument("--seconds", metavar="S", type=float, default=None,
                   help="film only the first S seconds of each episode (the episode still runs to its end)")
    p.add_argument("--no-overlay", action="store_true",
                   help=f"frames without the text (step, return, speed, distance, command); frames under "
                        f"{MIN_OVERLAY_HEIGHT} pixels high never have it")
    p.add_argument("--script", action="store_true",
                   help="a walker follows the scripted command sequence of robotrl sim2sim (stand, forward, turn, "
                        "stop; no pushes) instead of its task's random commands")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
