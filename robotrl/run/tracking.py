"""How well a policy tracks velocity commands: what `robotrl eval` reports on a velocity-tracking task.

    report = tracking_report(policy, "robotrl/Quadruped-v0", episodes=10, seed=1_000_000,
                             conditions=[{"friction": 0.4}])
    print(tracking_table(report))

Forward, lateral and yaw-rate errors are mean absolute differences between the command and the base's velocity
(m/s, m/s, rad/s), counted from `SETTLE_S` after each command change (`robotrl.envs.legged.TrackingMeter`'s rule):
per episode, then averaged over the episodes that counted any step. A fall is an episode the task terminated. Two
sets of episodes: the task's own random commands over whole episodes, and the scripted sequence
(`robotrl.envs.legged.COMMAND_SCRIPT`: stand, forward, turn while walking, turn on the spot, stop); episode k is
seeded ``seed + k`` in both. The task's training pushes are off (a perturbation, ``push``, puts pushes back on
purpose). Under a condition (`robotrl.envs.perturb`) the same episodes run with the same seeds.

The episodes run on up to `MAX_WORLDS` worlds of the batched task in lockstep, one policy call per step; world j's
episode gives the numbers a single env seeded alike gives (`robotrl.envs.legged.evaluate_tracking`). Measured with
the pretrained quadruped, 10 episodes each of random commands and the script: 3.2 s batched (10 worlds, 2 threads),
against 7.0 s one world at a time (`evaluate_tracking`), measured in one process on the shared 2-core machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from robotrl.envs.legged import COMMAND_SCRIPT, SETTLE_S, command_at, script_steps

MAX_WORLDS = 16
AXES = ("err_vx", "err_vy", "err_yaw")
Policy = Callable[[np.ndarray], np.ndarray]  # [M, obs_dim] raw observations -> [M, act_dim] commands


def velocity_task(task_id: str) -> bool:
    """Whether `task_id` is a batched velocity-tracking task (its worlds take `set_command`)."""
    from robotrl.envs import task_template

    template = task_template(task_id)
    if template is None:
        return False
    cls = getattr(template.load_env(), "settings_class", None)
    return cls is not None and hasattr(cls, "set_command") and hasattr(cls, "observe")


class _Meter:
    """`TrackingMeter` over worlds: per world, the sums and count of absolute errors after the settle time."""

    def __init__(self, n: int, dt: float):
        self.dt = dt
        self.since = np.zeros(n)
        self.last = np.full((n, 3), np.nan)
        self.sums = np.zeros((n, 3))
        self.count = np.zeros(n, dtype=np.int64)

    def start(self, worlds: Any) -> None:
        self.since[worlds], self.last[worlds], self.sums[worlds], self.count[worlds] = 0.0, np.nan, 0.0, 0

    def add(self, info: dict[str, Any]) -> None:
        cmd = info["command"]
        changed = np.any(cmd != self.last, axis=1)
        self.since = np.where(changed, 0.0, self.since + self.dt)
        self.last = cmd.copy()
        counted = self.since >= SETTLE_S
        v = info["base_lin_vel"]
        err = np.abs(cmd - np.stack([v[:, 0], v[:, 1], info["base_yaw_rate"]], axis=1))
        self.sums[counted] += err[counted]
        self.count[counted] += 1


def run_episodes(task: Any, policy: Policy, episodes: int, seed: int, script: Any = None) -> dict[str, Any]:
    """`episodes` episodes of `policy` on the worlds of `task` (a batched velocity-tracking task, perturbed or not),
    episode k seeded ``seed + k``: the task's random commands (`script` None) or the script's. Mean errors, falls and
    per-episode figures."""
    n, dt = task.num_worlds, task.dt
    steps = script_steps(script, dt) if script is not None else None
    err = np.full((episodes, 3), np.nan)
    fell = np.zeros(episodes, dtype=bool)
    returns = np.zeros(episodes)
    meter = _Meter(n, dt)
    episode = np.full(n, -1)
    next_episode = 0
    hold = (task.low + task.high) / 2

    def start(j: int) -> None:
        nonlocal next_episode
        episode[j] = next_episode
        if script is None:  # the task's own commands again, after a scripted run locked them
            task.set_command(j, 0.0, 0.0, 0.0, lock=False)
        task.seed([j], [seed + next_episode])
        task.reset([j])
        meter.start(j)
        next_episode += 1

    for j in range(min(n, episodes)):
        start(j)
    while (episode >= 0).any():
        active = np.flatnonzero(episode >= 0)
        if script is not None:
            for j in active:
                task.set_command(j, *command_at(script, task.t[j] * dt))
        actions = np.tile(hold, (n, 1))
        actions[active] = np.asarray(policy(task.observe()[active]), dtype=np.float64)
        _, reward, terminated, truncated, info = task.step(actions)
        meter.add(info)
        returns[episode[active]] += reward[active]
        ended = terminated | truncated | (task.t >= steps if steps is not None else False)
        for j in active[ended[active]]:
            k = episode[j]
            fell[k] = bool(terminated[j])
            if meter.count[j]:
                err[k] = meter.sums[j] / meter.count[j]
            if next_episode < episodes:
                start(j)
            else:
                episode[j] = -1
    counted = ~np.isnan(err[:, 0])
    mean = err[counted].mean(axis=0) if counted.any() else np.full(3, np.nan)
    return {**{a: float(mean[i]) for i, a in enumerate(AXES)}, "falls": int(fell.sum()), "episodes": episodes,
            "per_episode": [{**{a: float(err[k, i]) for i, a in enumerate(AXES)}, "fell": bool(fell[k]),
                             "return": float(returns[k])} for k in range(episodes)]}


def tracking_report(policy: Policy, task_id: str, episodes: int, seed: int, *,
                    conditions: list[dict[str, float]] = (), script: Any = COMMAND_SCRIPT,
                    num_worlds: int | None = None) -> dict[str, Any]:
    """Tracking over the task's random commands and over `script`, nominal and under each condition (see the module
    docstring): ``{"settle_s", "random": {...}, "scripted": {...}, "perturbed": [{"condition", "random",
    "scripted"}, ...]}``, each {...} with ``err_vx, err_vy, err_yaw, falls, episodes``, and under a condition the
    ratios of its errors to the nominal ones (``ratio_vx``, ...)."""
    from robotrl.envs import make_vector
    from robotrl.envs.perturb import Perturbed, label, rebuilt

    worlds = num_worlds or min(episodes, MAX_WORLDS)
    vec = make_vector(task_id, worlds, push_interval_s=0.0)
    if vec is None or not hasattr(vec.task, "set_command"):
        raise ValueError(f"{task_id} is not a batched velocity-tracking task")
    try:
        def both(task: Any) -> dict[str, Any]:
            return {"random": run_episodes(task, policy, episodes, seed),
                    "scripted": run_episodes(task, policy, episodes, seed, script)}

        out: dict[str, Any] = {"settle_s": SETTLE_S, **both(vec.task), "perturbed": []}
        for condition in conditions:
            change = rebuilt(condition)  # rough ground: a task of its own, built from the changed robot config
            built = make_vector(task_id, worlds, push_interval_s=0.0, config_change=change) if change else None
            try:
                with Perturbed(built.task if built else vec.task, condition) as task:
                    row = {"condition": label(condition), "settings": dict(condition), **both(task)}
            finally:
                if built is not None:
                    built.close()
            for part in ("random", "scripted"):
                for a in AXES:
                    nominal = out[part][a]
                    row[part][f"ratio_{a[4:]}"] = row[part][a] / nominal if nominal > 0 else math.nan
            out["perturbed"].append(row)
    finally:
        vec.close()
    return out


def _cell(x: float, ratio: float | None = None) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:.3f}" + (f" ({ratio:.1f}x)" if ratio is not None and math.isfinite(ratio) else "")


def tracking_table(report: dict[str, Any]) -> str:
    """The report as a small table: one row per command set, and under --perturb one table per command set with one
    row per condition (errors, their ratio to nominal, falls)."""
    lines = [f"velocity tracking (mean absolute error from {report['settle_s']:g} s after each command change; "
             "no pushes unless asked):"]
    head = f"  {'':28s} {'forward m/s':>14s} {'lateral m/s':>14s} {'yaw rate rad/s':>15s} {'falls':>7s}"
    lines.append(head)
    names = {"random": "random commands", "scripted": "scripted sequence"}
    for part, name in names.items():
        r = report[part]
        title = f"{name} ({r['episodes']} ep.)"
        lines.append(f"  {title:28s} {_cell(r['err_vx']):>14s} {_cell(r['err_vy']):>14s} "
                     f"{_cell(r['err_yaw']):>15s} {r['falls']:>3d}/{r['episodes']:<3d}")
    if report["perturbed"]:
        for part, name in names.items():
            lines.append(f"robustness, {name} (the same episodes; x: error / nominal):")
            lines.append(head.replace(f"  {'':28s}", f"  {'condition':28s}"))
            rows = [{"condition": "nominal", part: report[part]}, *report["perturbed"]]
            for row in rows:
                r = row[part]
                vx, vy, yaw = (_cell(r[a], r.get(f"ratio_{a[4:]}")) for a in AXES)
                falls = f"{r['falls']:>3d}/{r['episodes']:<3d}"
                lines.append(f"  {row['condition']:28s} {vx:>14s} {vy:>14s} {yaw:>15s} {falls}")
    return "\n".join(lines)
