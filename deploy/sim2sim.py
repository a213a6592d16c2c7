"""The sim-to-sim check: the policy node drives the simulated robot over real DDS, and its returns are
compared with an in-process evaluation of the same ONNX file on the same episode seeds.

    robotrl sim2sim actor.onnx [--episodes 3] [--free-running] [--tolerance 0.1]

Both nodes run in this process on one executor, but they talk only through topics (rclpy has no
intra-process shortcut), i.e. through Fast DDS on loopback: JointState/Odometry/PointStamped out
of the robot, Float64MultiArray commands (RELIABLE) and the stamped command copy back. By default
the robot runs in lockstep (it steps when the command answering its last state arrives) and the
node computes once every source carries that state's stamp, so the comparison measures the
deployment path (observation assembly by name, onnxruntime, safety filter, messages), not clock
jitter. `--free-running` runs both on wall-clock timers instead, as on hardware.
Exits non-zero if the node's mean return falls more than `tolerance` (10 %) short.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def run(policy_path: str, *, episodes: int = 3, lockstep: bool = True, tolerance: float = 0.1,
        timeout_s: float = 600.0, ramp_s: float = 0.0, log: Any = print) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from robotrl.deploy.node import PolicyNode
    from robotrl.deploy.runtime import OnnxPolicy
    from robotrl.deploy.sim_robot import SimRobot
    from robotrl.evaluate import eval_seed, evaluate

    policy = OnnxPolicy(policy_path)
    card = policy.card
    task, seed = card["task_id"], eval_seed(int(card["training"]["seed"]))
    t0 = time.monotonic()
    ref = evaluate(policy, task, episodes, seed)
    log(f"in-process (onnxruntime): {ref['mean_return']:.2f} +- {ref['std_return']:.2f} over {episodes} episodes "
        f"({time.monotonic() - t0:.1f} s)")

    context = rclpy.Context()
    rclpy.init(context=context)
    robot = node = None
    executor = SingleThreadedExecutor(context=context)
    try:
        robot = SimRobot(task, episodes=episodes, seed=seed, lockstep=lockstep, context=context)
        overrides = [Parameter("policy", value=str(policy.path)), Parameter("ramp_s", value=float(ramp_s)),
                     Parameter("trigger", value="state" if lockstep else "timer"),
                     Parameter("sync_stamps", value=bool(lockstep))]
        if lockstep:  # the lockstep clock is the message round trip, not the wall clock
            overrides += [Parameter("watchdog_s", value=5.0), Parameter("overrun_is_fault", value=False)]
        # the stand-in robot teleports to a new initial pose at each episode start, a jump the node's
        # plausibility check rightly calls a sensor fault on a real robot: off here
        overrides.append(Parameter("max_joint_speed", value=0.0))
        node = PolicyNode(context=context, parameter_overrides=overrides)
        executor.add_node(robot)
        executor.add_node(node)
        deadline = time.monotonic() + timeout_s
        node.trigger_configure()
        while node.activation_blockers() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        if node.trigger_activate() is None or not node._active:
            raise RuntimeError("the policy node did not activate: " + "; ".join(node.activation_blockers()))
        t1 = time.monotonic()
        while not robot.done and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        if not robot.done:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s with {len(robot.returns)} of {episodes} episodes")
        wall = time.monotonic() - t1
        status = node.status()
    finally:
        if node is not None:
            if node._active:
                node.trigger_deactivate()
            node.destroy_node()
        if robot is not None:
            robot.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
    ros_mean = float(np.mean(robot.returns))
    ref_mean = ref["mean_return"]
    shortfall = (ref_mean - ros_mean) / abs(ref_mean) if ref_mean else 0.0
    ok = shortfall <= tolerance
    steps = int(sum(robot.lengths))
    log(f"ROS 2 node -> simulated robot over DDS ({'lockstep' if lockstep else 'free-running'}): "
        f"{ros_mean:.2f} +- {float(np.std(robot.returns)):.2f} over {episodes} episodes, {steps} steps in "
        f"{wall:.1f} s; safety mode at the end: {status['mode']}")
    log(f"{'OK' if ok else 'FAIL'}: the node's mean return is {-shortfall:+.1%} of in-process "
        f"(allowed: -{tolerance:.0%})")
    return {"task": task, "episodes": episodes, "in_process": ref["returns"], "ros": robot.returns,
            "in_process_mean": ref_mean, "ros_mean": ros_mean, "shortfall": shortfall, "ok": ok,
            "lockstep": lockstep, "steps": steps, "wall_s": wall, "node_status": status}
