"""Rendering speed of `robotrl video` and what `robotrl train ... --video` costs, on this machine.

    python bench/render.py [--frames 200] [--repeats 3] [--train-steps 150000] [--section render]

1. Frames/s of the offscreen renderer alone (scene update, render with MuJoCo's default shadows and
   reflections, text overlay, read-back) at 640x480, for each OpenGL back-end that works here (each in
   its own process: PyOpenGL binds one platform per process), on the shipped Hopper (tracking camera,
   reflective floor) and our arm, driven by their shipped actors.
2. The whole `robotrl video pretrained:NAME` process at 640x480 (start-up, simulation, onnxruntime,
   rendering, H.264 encoding), against `robotrl eval --onnx` of the same episode.
3. `robotrl train ppo robotrl/ArmReach-v0 --steps N` (what `make demo` runs) with and without `--video`,
   whole process, alternating, median of the repeats.

Results: bench/out/render.json and the `render` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, machine, run_timed, save_json, update_section, versions

TASKS = {"hopper": "robotrl/Hopper-v5", "arm-reach": "robotrl/ArmReach-v0"}


def worker(backend: str, name: str, frames: int, width: int, height: int) -> dict:
    """In a process of its own: frames/s of OffscreenRenderer.render alone while the shipped actor runs."""
    import numpy as np

    from robotrl.deploy.runtime import OnnxPolicy
    from robotrl.envs import make
    from robotrl.video.render import OffscreenRenderer, make_camera

    policy = OnnxPolicy(f"pretrained:{name}")
    env = make(policy.card["task_id"])
    obs, _ = env.reset(seed=0)
    cam, camera = make_camera(env)
    times = []
    with OffscreenRenderer(env.unwrapped.model, width, height, backend=backend) as r:
        for k in range(frames + 5):
            obs, _, term, trunc, _ = env.step(policy(obs))
            if term or trunc:
                obs, _ = env.reset(seed=k)
            t = time.perf_counter()
            frame = r.render(env.unwrapped.data, cam, [("step", str(k)), ("return", "0.0")])
            if k >= 5:  # the first frames compile llvmpipe's shaders
                times.append(time.perf_counter() - t)
    env.close()
    assert frame.shape == (height, width, 3) and frame.std() > 10
    return {"backend": backend, "policy": name, "camera": camera, "frames": frames,
            "fps": frames / sum(times), "ms_p50": 1000 * float(np.median(times))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=150_000)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--section", default="render")
    p.add_argument("--worker", nargs=2, metavar=("BACKEND", "POLICY"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.frames, a.width, a.height)))
        return

    from robotrl.video.render import BACKENDS, probe

    load = os.getloadavg()[0]
    backends = {}
    for b in BACKENDS:
        ok, info = probe(b)
        print(f"{b}: {'works' if ok else 'unavailable'} ({info})", flush=True)
        if ok:
            backends[b] = info
    renderer = []
    for b in backends:
        for name in TASKS:
            runs = []
            for _ in range(a.repeats):
                _, out = run_timed([sys.executable, __file__, "--worker", b, name, "--frames", str(a.frames),
                                    "--width", str(a.width), "--height", str(a.height)],
                                   env={"MUJOCO_GL": b, "PYOPENGL_PLATFORM": b})
                runs.append(json.loads(out.strip().splitlines()[-1]))
            best = statistics.median(r["fps"] for r in runs)
            renderer.append({**runs[0], "fps": best, "fps_runs": [r["fps"] for r in runs]})
            print(f"renderer {b} {name}: {best:.1f} frames/s ({[round(r['fps'], 1) for r in runs]})", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="robotrl-render-"))
    try:
        whole = []
        for name in TASKS:
            video_t, eval_t, summary = [], [], None
            for r in range(a.repeats):
                order = ("video", "eval") if r % 2 == 0 else ("eval", "video")
                for side in order:
                    if side == "video":
                        wall, out = run_timed([str(BIN / "robotrl"), "video", f"pretrained:{name}", "-o",
                                               str(tmp / f"{name}.mp4"), "--width", str(a.width), "--height",
                                               str(a.height), "--json"])
                        summary = json.loads(out)
                        video_t.append(wall)
                    else:
                        wall, _ = run_timed([str(BIN / "robotrl"), "eval", "--onnx", f"pretrained:{name}",
                                             "--episodes", "1"])
                        eval_t.append(wall)
            mv, me = statistics.median(video_t), statistics.median(eval_t)
            whole.append({"policy": name, "frames": summary["frames"], "steps": summary["lengths"][0],
                          "fps_video": summary["fps"], "backend": summary["backend"], "bytes": summary["bytes"],
                          "video_s": video_t, "eval_s": eval_t, "video_median_s": mv, "eval_median_s": me,
                          "render_s": summary["render_s"]})
            print(f"robotrl video pretrained:{name}: {mv:.1f} s vs eval {me:.1f} s, {summary['frames']} frames: "
                  f"{summary['frames'] / (mv - me):.1f} frames/s added", flush=True)

        train = {"off": [], "on": []}
        for r in range(a.repeats):
            for side in (("off", "on") if r % 2 == 0 else ("on", "off")):
                out = tmp / f"train-{side}-{r}"
                cmd = [str(BIN / "robotrl"), "train", "ppo", "robotrl/ArmReach-v0", "--steps", str(a.train_steps),
                       "--out", str(out), "--no-progress", *(["--video"] if side == "on" else [])]
                wall, _ = run_timed(cmd)
                if side == "on":
                    frames = json.loads((out / "eval.json").read_text())["video"]["frames"]
                shutil.rmtree(out, ignore_errors=True)
                train[side].append(wall)
                print(f"train {side} repeat {r}: {wall:.1f} s", flush=True)
        t_off, t_on = statistics.median(train["off"]), statistics.median(train["on"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load_after = os.getloadavg()[0]
    result = {"machine": machine(), "backends": backends, "renderer": renderer, "whole": whole,
              "train": {"steps": a.train_steps, "off_s": train["off"], "on_s": train["on"], "off_median_s": t_off,
                        "on_median_s": t_on, "video_frames": frames},
              "load_before": load, "load_after": load_after}
    save_json(a.section, result)

    cmd = "python bench/render.py " + shlex.join(sys.argv[1:])
    lines = [
        f"Command: `{cmd.strip()}` ({time.strftime('%Y-%m-%d')}; {machine()}; "
        f"{versions('mujoco', 'imageio-ffmpeg', 'pillow', 'onnxruntime')}; one-minute load average "
        f"{load:.1f} before, {load_after:.1f} after).",
        "",
        f"Offscreen renderer alone at {a.width}x{a.height} (scene, render with the model's shadows and "
        f"reflections, overlay, read-back), {a.frames} frames after 5 warm-up frames, median of {a.repeats} "
        "processes; the shipped actor drives the robot:",
        "",
        "| back-end | OpenGL renderer | robot (camera) | frames/s | ms/frame p50 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in renderer:
        lines.append(f"| {r['backend']} | {backends[r['backend']]} | {r['policy']} ({r['camera']}) | "
                     f"**{r['fps']:.1f}** | {r['ms_p50']:.1f} |")
    lines += [
        "",
        f"Whole `robotrl video pretrained:NAME --width {a.width} --height {a.height}` process (default back-end, "
        "one episode at real time, 25 frames/s, H.264 encoding alongside), against `robotrl eval --onnx` of the "
        f"same episode, median of {a.repeats} alternating runs:",
        "",
        "| policy | episode | frames | robotrl video | robotrl eval --onnx | added per frame | file |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in whole:
        added = (w["video_median_s"] - w["eval_median_s"]) / w["frames"]
        lines.append(f"| {w['policy']} | {w['steps']} steps | {w['frames']} | {w['video_median_s']:.1f} s | "
                     f"{w['eval_median_s']:.1f} s | {1000 * added:.0f} ms ({1 / added:.1f} frames/s) | "
                     f"{w['bytes'] / 1e3:,.0f} kB |")
    lines += [
        "",
        f"`robotrl train ppo robotrl/ArmReach-v0 --steps {a.train_steps:,}` (the demo's task and settings; the demo "
        "trains 150,000 steps, and the video's cost does not depend on the steps), whole process, "
        f"median of {a.repeats} alternating runs: {t_off:.1f} s without `--video`, {t_on:.1f} s with it "
        f"(**+{t_on - t_off:.1f} s**, {100 * (t_on - t_off) / t_off:+.1f} %; {frames} frames of the final "
        "evaluation's first episode at 640x480, and the back-end probe). A walker's 1,000-step episode is 201 "
        "frames: its cost is the Hopper row above.",
    ]
    update_section(a.section, "\n".join(lines))


if __name__ == "__main__":
    main()
