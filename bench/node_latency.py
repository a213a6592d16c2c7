"""End-to-end latency and loop-period jitter of the ROS 2 policy node, over real DDS on loopback.

    python bench/node_latency.py [--cycles 10000] [--rates 100,500] [--triggers timer,state]

A separate process publishes the arm's JointState, goal and fingertip point at the rate (a robot's
drivers); the node (`robotrl.deploy.node.PolicyNode`, the shipped `arm-reach` actor, rclpy's
SingleThreadedExecutor) runs for `cycles` control steps. Latency: from the receipt of the newest
JointState to the publish of the command it produced. Jitter: |measured period - nominal period| of
the node's loop (the timer's own period for trigger=timer; the JointState inter-arrival time for
trigger=state). Overruns are counted, not faulted. Writes the `node-latency` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save_json, update_section, versions


def measure(rate: float, trigger: str, cycles: int) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from robotrl.deploy.node import PolicyNode, Telemetry

    seconds = cycles / rate + 6.0
    robot = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_state_publisher.py"), str(rate),
                              str(seconds)])
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    node = PolicyNode(context=ctx, parameter_overrides=[
        Parameter("policy", value="pretrained:arm-reach"), Parameter("rate_hz", value=float(rate)),
        Parameter("trigger", value=trigger), Parameter("ramp_s", value=0.0),
        Parameter("overrun_is_fault", value=False), Parameter("watchdog_s", value=1.0)])
    ex.add_node(node)
    arrivals: list[float] = []
    try:
        node.trigger_configure()
        t0 = time.monotonic()
        while node.activation_blockers() and time.monotonic() - t0 < 10:
            ex.spin_once(timeout_sec=0.01)
        node.trigger_activate()
        node.telemetry = Telemetry(n=cycles + 100)
        orig = node._on_joint_state

        def on_js(msg):  # record arrivals for the state-triggered loop period
            arrivals.append(time.monotonic())
            orig(msg)

        node._subs[0].callback = on_js
        while node.telemetry.steps < 200:  # warm-up, not measured
            ex.spin_once(timeout_sec=0.01)
        node.telemetry = Telemetry(n=cycles + 100)
        arrivals.clear()
        while node.telemetry.steps < cycles and time.monotonic() - t0 < seconds + 10:
            ex.spin_once(timeout_sec=0.01)
        steps = node.telemetry.steps
        latency = np.asarray(node.telemetry.latency) * 1e3
        period = np.diff(arrivals) if trigger == "state" else np.asarray(node.telemetry.period)
        jitter = np.abs(period - 1.0 / rate) * 1e3
        overruns = node.telemetry.overruns
        mode = node.safety.mode
    finally:
        if node._active:
            node.trigger_deactivate()
        node.destroy_node()
        ex.shutdown()
        rclpy.shutdown(context=ctx)
        robot.terminate()
        robot.wait()

    def pct(a: np.ndarray) -> dict:
        return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}

    return {"rate_hz": rate, "trigger": trigger, "cycles": int(steps), "latency_ms": pct(latency),
            "jitter_ms": pct(jitter), "overruns": int(overruns), "mode": mode}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=10_000)
    p.add_argument("--rates", default="100,500")
    p.add_argument("--triggers", default="timer,state")
    a = p.parse_args()
    results = []
    for rate in (float(r) for r in a.rates.split(",")):
        for trigger in a.triggers.split(","):
            r = measure(rate, trigger, a.cycles)
            results.append(r)
            print(f"{rate:.0f} Hz {trigger:5s}: {r['cycles']} cycles, latency p50 {r['latency_ms']['p50']:.3f} "
                  f"p99 {r['latency_ms']['p99']:.3f} max {r['latency_ms']['max']:.2f} ms; jitter p50 "
                  f"{r['jitter_ms']['p50']:.3f} p99 {r['jitter_ms']['p99']:.3f} max {r['jitter_ms']['max']:.2f} ms; "
                  f"overruns {r['overruns']}", flush=True)
    save_json("node-latency", {"machine": machine(), "results": results})
    cmd = ("python bench/node_latency.py " + shlex.join(sys.argv[1:])).strip()
    lines = [f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}; {machine()}; {versions('ros-rclpy', 'onnxruntime')}, "
             "Fast DDS, rclpy SingleThreadedExecutor).", "",
             "Latency: receipt of the newest JointState to publish of its command. Jitter: |loop period - nominal|.",
             "",
             "| rate | trigger | cycles | latency p50 | latency p99 | jitter p50 | jitter p99 | jitter max "
             "| overruns |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lat, jit = r["latency_ms"], r["jitter_ms"]
        lines.append(f"| {r['rate_hz']:.0f} Hz | {r['trigger']} | {r['cycles']:,} | {lat['p50']:.2f} ms | "
                     f"{lat['p99']:.2f} ms | {jit['p50']:.3f} ms | {jit['p99']:.3f} ms | {jit['max']:.2f} ms | "
                     f"{r['overruns']} |")
    update_section("node-latency", "\n".join(lines))


if __name__ == "__main__":
    main()
