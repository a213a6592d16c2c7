"""The sim-to-sim check: the policy node drives the simulated robot over real DDS, and its returns are
compared with an in-process evaluation of the same ONNX file on the same episode seeds.

    robotrl sim2sim actor.onnx [--episodes 3] [--free-running] [--tolerance 0.1] [--join | --domain-id N]

Both nodes run in this process on one executor, but they talk only through topics (rclpy has no
intra-process shortcut), i.e. through Fast DDS on loopback: JointState/Odometry/PointStamped out
of the robot, Float64MultiArray commands (RELIABLE) and the stamped command copy back. By default
the robot runs in lockstep (it steps when the command answering its last state arrives) and the
node computes once every source carries that state's stamp, so the comparison measures the
deployment path (observation assembly by name, onnxruntime, safety filter, messages), not clock
jitter. `--free-running` runs both on wall-clock timers instead, as on hardware.
Both run in a ROS domain of their own (`claim_private_domain`: two runs on one machine shared domain 0, and one's
node went active on the other's robot) unless told to join one (`--join`: the environment's; `--domain-id N`).
Exits non-zero if the node's mean return falls more than `tolerance` (10 %) short.

A velocity-tracking card (a walker that follows /cmd_vel) is driven through a scripted command
sequence instead (stand, forward, turn, stop: `robotrl.envs.legged.COMMAND_SCRIPT`; no random
pushes): the simulated robot is also the operator, publishing /cmd_vel as the script says, and the
node reads orientation and angular velocity from /imu. Compared are the mean absolute tracking
errors (forward velocity, yaw rate) and the falls: it fails when the node's error is more than
`tolerance` worse than in-process (plus 0.01 for rounding) or it falls more often. In lockstep the
first episode is reproduced exactly; later ones differ a little, because the node (like a robot, which
has no episodes) carries its previous action across the stand-in's reset to a new pose.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from robotrl.errors import UserError

# ROS's advice: domain IDs 0..101 keep Fast DDS's ports below Linux's ephemeral range
PRIVATE_DOMAINS = range(1, 102)
# How long DDS is given to find the other participants in a private domain (~0.1 s, at times ~2.5 s for one long
# in its domain): a best effort beside the lock files, which keep sim2sim runs apart for certain
DISCOVERY_S = 1.0


def claim_private_domain(avoid: set[int]) -> tuple[int, Any]:
    """A ROS domain ID (none of `avoid`: the shell's, those found in use) that no other sim2sim on this machine
    holds, and the open lock file that holds it: an exclusive lock per ID in the temp folder, released by the kernel
    when the file is closed or the process ends (a kill -9 too). IDs are tried from a random start, so that runs
    started together rarely contend for one."""
    import random
    import tempfile

    try:
        import fcntl
    except ImportError:  # no flock (Windows): a random ID, unlocked
        fcntl = None
    ids = [d for d in PRIVATE_DOMAINS if d not in avoid]
    start = random.SystemRandom().randrange(len(ids))
    for d in ids[start:] + ids[:start]:
        if fcntl is None:
            return d, None
        try:
            f = open(os.path.join(tempfile.gettempdir(), f"robotrl-ros-domain-{d}.lock"), "a")  # noqa: SIM115
        except OSError:  # another user's lock file
            continue
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        return d, f
    raise UserError(f"every ROS domain {PRIVATE_DOMAINS.start}..{PRIVATE_DOMAINS.stop - 1} is held by another sim2sim "
                    "on this machine; --domain-id N runs in domain N")


def environment_domain() -> int:
    """The domain rcl joins by default: ROS_DOMAIN_ID, else 0."""
    try:
        return int(os.environ.get("ROS_DOMAIN_ID", "").strip() or 0)
    except ValueError:
        return 0


def run(policy_path: str, *, episodes: int = 3, lockstep: bool = True, tolerance: float = 0.1,
        timeout_s: float = 600.0, ramp_s: float = 0.0, log: Any = print, task: str | None = None,
        domain_id: int | None = None, isolate: bool = True, other_robot: bool = False) -> dict[str, Any]:
    """`isolate` (default): the node and the simulated robot run in a ROS domain of their own
    (`claim_private_domain`), so that two runs on a machine, or other ROS nodes, cannot mix their topics;
    otherwise in `domain_id`, or the environment's (ROS_DOMAIN_ID) where None. Either way the run is refused
    when another node already publishes the simulated robot's joint states in its domain. `other_robot`: run
    an actor on a robot other than its card's (another config, gains, physics) with a note instead of a refusal."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from robotrl.deploy.node import PolicyNode
    from robotrl.deploy.runtime import OnnxPolicy
    from robotrl.run.evaluate import OTHER_ROBOT_FLAG, check_actor_fits_task, episode_count, eval_seed, evaluate
    from robotrl.simrobot.node import SimRobot, rivals_error
    from robotrl.simrobot.node import domain_id as domain_of

    policy = OnnxPolicy(policy_path)
    card = policy.card
    task, seed = task or card["task_id"], eval_seed(int(card["training"]["seed"]))  # another task: same elements
    # a robot config edited since training, or another robot at another path: refused, not run, unless asked for
    check_actor_fits_task(card, task, policy_path, other_robot=other_robot, flag=OTHER_ROBOT_FLAG)
    tracking = any(e["kind"] == "velocity_command" for e in card["spec"]["observation"])
    script = env_kwargs = ref = None
    if tracking:
        from robotrl.envs.legged import COMMAND_SCRIPT, evaluate_tracking

        script, env_kwargs = COMMAND_SCRIPT, {"push_interval_s": 0.0}

    def in_process() -> dict[str, Any]:
        t0 = time.monotonic()
        if tracking:
            ref = evaluate_tracking(policy, task, episodes=episodes, seed=seed, script=script, env_kwargs=env_kwargs)
            log(f"in-process (onnxruntime), scripted commands: forward error {ref['err_vx']:.3f} m/s, yaw-rate "
                f"error {ref['err_yaw']:.3f} rad/s, {ref['falls']} falls in "
                f"{episode_count(episodes)} ({time.monotonic() - t0:.1f} s)")
        else:
            ref = evaluate(policy, task, episodes, seed)
            log(f"in-process (onnxruntime): {ref['mean_return']:.2f} +- {ref['std_return']:.2f} over "
                f"{episode_count(episodes)} ({time.monotonic() - t0:.1f} s)")
        return ref

    private = isolate and domain_id is None
    avoid = {environment_domain()}
    if private:
        remedy = "run sim2sim again: it picks another domain"
    else:
        remedy = "leave out --join and --domain-id: sim2sim then runs in a domain of its own"
    robot = node = lock = None

    def close() -> None:
        if node is not None:
            if node._active:
                node.trigger_deactivate()
            node.destroy_node()
        if robot is not None:
            robot.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
        if lock is not None:
            lock.close()

    # The simulated robot joins its domain first; DDS discovers whoever else is there (a program long in the
    # domain answers in ~0.5 s) while the in-process evaluation runs, then the graph is read.
    for attempt in range(5):  # a "private" domain in which some other ROS 2 program runs: the next one
        if private:
            domain_id, lock = claim_private_domain(avoid)
        context = rclpy.Context()
        try:
            rclpy.init(context=context, domain_id=domain_id)  # None: the environment's
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        executor = SingleThreadedExecutor(context=context)
        try:
            robot = SimRobot(task, episodes=episodes, seed=seed, lockstep=lockstep, context=context,
                             command_script=script, env_kwargs=env_kwargs)
            joined = time.monotonic()
            if ref is None:
                ref = in_process()
            # discovery runs while the in-process evaluation does; in a shared domain (--join, --domain-id) 4 s in all
            # and at least another second: DDS finds a participant long in the domain at its next announcement (every
            # ~3 s), and a robot already running there is what this check is for
            waited = time.monotonic() - joined
            rivals = robot.wait_for_rivals(lambda t, ex=executor: ex.spin_once(timeout_sec=t),
                                           max(0.0, DISCOVERY_S - waited) if private else max(1.0, 4.0 - waited))
            me = (robot.get_name(), robot.get_namespace())
            strangers = sorted({f"{ns.rstrip('/')}/{n}" for n, ns in robot.get_node_names_and_namespaces()
                                if (n, ns) != me}) if private else []
        except BaseException:
            close()
            raise
        if not (private and (rivals or strangers) and attempt < 4):
            break
        log(f"ROS domain {domain_id} is in use ({', '.join(strangers or rivals)}); trying another")
        close()
        avoid.add(domain_id)
        robot = lock = None
    where = (f"ROS domain {domain_id}, private to this run (--join: this shell's domain {environment_domain()})"
             if private else f"ROS domain {domain_of(context)}")
    try:
        if rivals:
            raise UserError(rivals_error(rivals, domain_of(context), remedy))
        log(f"node and simulated robot in {where}")
        overrides = [Parameter("policy", value=str(policy.path)), Parameter("ramp_s", value=float(ramp_s)),
                     Parameter("trigger", value="state" if lockstep else "timer"),
                     Parameter("sync_stamps", value=bool(lockstep))]
        if lockstep:  # the lockstep clock is the message round trip, not the wall clock
            overrides += [Parameter("watchdog_s", value=5.0), Parameter("overrun_is_fault", value=False)]
        # the stand-in robot teleports to a new initial pose at each episode start, a jump the node's
        # plausibility check rightly calls a sensor fault on a real robot: off here
        overrides.append(Parameter("max_joint_speed", value=0.0))
        if tracking:  # a legged robot's orientation and angular velocity come from its IMU; the operator (the
            # simulated robot, on the script) stamps each command with the state it goes with
            overrides += [Parameter("imu_topic", value="/imu"), Parameter("cmd_vel_type", value="twist_stamped")]
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
        status, domain = node.status(), domain_of(context)
    finally:
        close()
    if tracking:
        return {**_tracking_result(ref, robot, task, episodes, lockstep, tolerance, wall, status, log),
                "ros_domain": domain}
    ros_mean = float(np.mean(robot.returns))
    ref_mean = ref["mean_return"]
    shortfall = (ref_mean - ros_mean) / abs(ref_mean) if ref_mean else 0.0
    ok = shortfall <= tolerance
    steps = int(sum(robot.lengths))
    log(f"ROS 2 node -> simulated robot over DDS ({'lockstep' if lockstep else 'free-running'}): "
        f"{ros_mean:.2f} +- {float(np.std(robot.returns)):.2f} over {episode_count(episodes)}, {steps} steps in "
        f"{wall:.1f} s; safety mode at the end: {status['mode']}")
    log(f"{'OK' if ok else 'FAIL'}: the node's mean return is {-shortfall:+.1%} of in-process "
        f"(allowed: -{tolerance:.0%})")
    return {"task": task, "episodes": episodes, "in_process": ref["returns"], "ros": robot.returns,
            "in_process_mean": ref_mean, "ros_mean": ros_mean, "shortfall": shortfall, "ok": ok,
            "lockstep": lockstep, "steps": steps, "wall_s": wall, "node_status": status, "ros_domain": domain}


def _tracking_result(ref: dict[str, Any], robot: Any, task: str, episodes: int, lockstep: bool, tolerance: float,
                     wall: float, status: dict[str, Any], log: Any) -> dict[str, Any]:
    ros = {k: float(np.mean([e[k] for e in robot.tracking])) for k in ("err_vx", "err_vy", "err_yaw")}
    ros_falls = int(sum(e["fell"] for e in robot.tracking))
    worse = {k: (ros[k] - ref[k]) / max(ref[k], 1e-9) for k in ("err_vx", "err_yaw")}
    ok = (all(ros[k] <= (1 + tolerance) * ref[k] + 0.01 for k in ("err_vx", "err_yaw"))
          and ros_falls <= ref["falls"])
    steps = int(sum(robot.lengths))
    log(f"ROS 2 node -> simulated robot over DDS ({'lockstep' if lockstep else 'free-running'}), /cmd_vel on the "
        f"script: forward error {ros['err_vx']:.3f} m/s, yaw-rate error {ros['err_yaw']:.3f} rad/s, {ros_falls} "
        f"falls; {steps} steps in {wall:.1f} s; safety mode at the end: {status['mode']}")
    log(f"{'OK' if ok else 'FAIL'}: the node's tracking errors are {worse['err_vx']:+.1%} (forward) and "
        f"{worse['err_yaw']:+.1%} (yaw) of in-process (allowed: +{tolerance:.0%} + 0.01)")
    return {"task": task, "episodes": episodes, "tracking": True, "in_process": {k: ref[k] for k in ros},
            "ros": ros, "in_process_falls": ref["falls"], "ros_falls": ros_falls, "ok": ok, "lockstep": lockstep,
            "steps": steps, "wall_s": wall, "node_status": status}
