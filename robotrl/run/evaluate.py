"""Deterministic evaluation: run a policy for exactly N episodes, episode k seeded with ``seed + k``.

Episodes run on a few envs in lockstep (one batched policy call per step), but each episode's
seed depends only on its index, so the result does not depend on how many envs ran them. The torch
policy and its ONNX export play the same episodes (same seeds); their returns agree to the digits
printed unless the task is chaotic enough to grow float32 rounding differences (README, `eval --onnx`).
The environments are imported when an evaluation runs: `episode_count` serves the robot-side `card`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def eval_seed(seed: int) -> int:
    """Evaluation episodes use seeds disjoint from training's: ``10**6 + 1000 * seed + k``."""
    return 1_000_000 + 1000 * seed


Policy = Callable[[np.ndarray], np.ndarray]  # [M, obs_dim] raw observations -> [M, act_dim] commands
# watch(episode, env, reward, info, done): after each reset (reward None) and each step of every episode
Watch = Callable[[int, Any, float | None, dict[str, Any], bool], None]


def episode_count(n: int) -> str:
    """``"1 episode"``, ``"10 episodes"``: the count as messages print it."""
    return f"{n} episode{'' if n == 1 else 's'}"


OTHER_ROBOT_FLAG = "--other-robot"  # eval --onnx and sim2sim: run an actor on a robot its card does not describe


def robot_change(recorded: Any, current: Any) -> str | None:
    """The first difference between a task as trained (a card's or run's spec) and a task as built now, the task
    id aside: e.g. ``extras.robot.kp[0]: 40.0 then, 60.0 now``; None where they agree.

    The task id of a robot task is its config's path, so a config moved (or copied) elsewhere compares equal, and
    one edited compares the same wherever it lies: elements, action bounds, control period, gains, default pose,
    command ranges, template settings and the model's physics (`robotrl.spec.spec_change`)."""
    from dataclasses import replace

    from robotrl.spec import spec_change

    return spec_change(replace(recorded, task_id=current.task_id), current)


def _elements_differ(mine: Any, theirs: Any) -> str | None:
    """Why an actor of spec `mine` cannot run on a task of spec `theirs` at all (other elements, sizes or action
    ranges: its inputs would mean other things, its outputs other commands), e.g. ``its action 0 (thigh_joint)
    spans [-200, 200], Hopper-v5's [-1, 1]``; None where they match."""
    task = theirs.task_id
    for what, a, b in (("observation", [e.label() for e in mine.observation], [e.label() for e in theirs.observation]),
                       ("action", [e.joint for e in mine.action], [e.joint for e in theirs.action])):
        if a == b:
            continue
        if len(a) != len(b):
            return f"its {len(a)} {what} elements, {task} has {len(b)}"
        if mine.deployable and theirs.deployable:  # a gymnasium task's elements are unnamed: sizes only
            i = next(i for i in range(len(a)) if a[i] != b[i])
            return f"its {what} element {i} is {a[i]}, {task}'s is {b[i]}"
    for i, (a, b) in enumerate(zip(mine.action, theirs.action, strict=True)):  # sizes checked above
        if not (math.isclose(a.low, b.low, rel_tol=1e-6, abs_tol=1e-9)
                and math.isclose(a.high, b.high, rel_tol=1e-6, abs_tol=1e-9)):
            return f"its action {i} ({a.joint}) spans [{a.low:g}, {a.high:g}], {task}'s [{b.low:g}, {b.high:g}]"
    return None


def check_actor_fits_task(card: dict[str, Any], task: str, path: str, *, other_robot: bool = False,
                          flag: str | None = None) -> None:
    """Refuse (UserError, one line naming the first difference) to run an exported actor on `task` unless the
    task is the one its card describes, wherever its robot config now lies: the card's own task edited since
    training and another path to a different robot are the same case (`robot_change`), as a config moved
    elsewhere is no case at all. A task with other elements or action ranges is refused outright; one with other
    physics, gains, rate or settings only runs with `other_robot` (the command's `flag`, named in the refusal
    where the command offers one), and then a note on stderr says what differs."""
    from robotrl.envs import canonical_task, task_spec
    from robotrl.errors import UserError
    from robotrl.spec import TaskSpec

    task = canonical_task(task)  # reach:arm.toml here is the card's reach:/abs/path/arm.toml
    try:  # (the spec's own task_id is optional on the robot side: the card's is the one)
        mine = TaskSpec.from_dict({**card["spec"], "task_id": card["task_id"]})
    except ValueError as e:
        raise UserError(f"{path}: the policy card's spec: {e}") from None
    theirs = task_spec(task)
    same = task == card["task_id"]
    change = robot_change(mine, theirs)
    if change is None:
        return
    elements = _elements_differ(mine, theirs)
    if same and elements:
        raise UserError(f"{path} was trained on {task} as it was then, and that task has changed since: {change} "
                        f"(its robot config or model was edited; put it back, or train again)")
    if elements:
        raise UserError(f"{path} was trained on {card['task_id']} and cannot run on {task}: {elements} "
                        f"(leave TASK out to use the card's task)")
    if other_robot:
        import sys

        print(f"robotrl: note: running {path} on {task}, not the robot it was trained on: {change}", file=sys.stderr)
        return
    anyway = f"; to run it on this robot anyway, pass {flag}" if flag else ""
    if same:
        raise UserError(f"{path} was trained on {task} as it was then, and that task has changed since: {change} "
                        f"(its robot config or model was edited; put it back, or train again{anyway})")
    raise UserError(f"{path} was trained on {card['task_id']}, and {task} differs from it: {change} (another robot, "
                    f"or its config edited; a config only moved elsewhere runs as it is. Put the trained values back, "
                    f"or train on this robot{anyway})")


def check_run_task(rd: Any, settings: Any, current: Any = None, recorded: Any = None) -> None:
    """Refuse (UserError) to evaluate or continue a run whose task is no longer the one it was trained on: its
    spec.json (`recorded`, read here if not given) against `current`, the task's spec as built now (built here
    if not given), compared as an actor's card is (`robot_change`). A robot config or model edited since training
    changes the task under the same name."""
    from robotrl.envs import task_spec
    from robotrl.errors import UserError

    recorded = recorded if recorded is not None else rd.read_spec(settings)
    change = robot_change(recorded, current if current is not None else task_spec(settings.task))
    if change:
        raise UserError(f"task {settings.task} is not what run {str(rd.path)!r} was trained on: {change} (its robot "
                        f"config or model was edited since; put it back, or train a new run)")


def evaluate(policy: Policy, task_id: str, episodes: int, seed: int, *, num_envs: int = 8,
             env_kwargs: dict[str, Any] | None = None, watch: Watch | None = None) -> dict[str, Any]:
    """Mean, std and per-episode returns and lengths of `episodes` episodes of `policy` on `task_id`.

    `watch` sees every episode's states as they happen, with the env that runs it (`robotrl.video` films
    them); it must not change the env's state, so the returns are the same with or without it.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    m = min(num_envs, episodes)
    if watch is None:
        batched = _evaluate_batched(policy, task_id, episodes, seed, m, env_kwargs)
        if batched is not None:
            return batched
    from robotrl.envs import make

    envs = [make(task_id, **(env_kwargs or {})) for _ in range(m)]
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    success = np.full(episodes, np.nan)  # info["is_success"] at an episode's last step, where the task says
    try:
        episode = [-1] * m  # episode index each env is running; -1: idle
        obs = np.zeros((m, envs[0].observation_space.shape[0]))
        next_episode = 0
        for j in range(m):
            episode[j] = next_episode
            obs[j], info = envs[j].reset(seed=seed + next_episode)
            if watch is not None:
                watch(next_episode, envs[j], None, info, False)
            next_episode += 1
        while any(e >= 0 for e in episode):
            active = [j for j in range(m) if episode[j] >= 0]
            actions = policy(obs[active])
            for a, j in zip(actions, active, strict=True):
                o, r, terminated, truncated, info = envs[j].step(a)
                k = episode[j]
                returns[k] += r
                lengths[k] += 1
                obs[j] = o
                if watch is not None:
                    watch(k, envs[j], float(r), info, bool(terminated or truncated))
                if terminated or truncated:
                    if "is_success" in info:
                        success[k] = float(info["is_success"])
                    if next_episode < episodes:
                        episode[j] = next_episode
                        obs[j], info = envs[j].reset(seed=seed + next_episode)
                        if watch is not None:
                            watch(next_episode, envs[j], None, info, False)
                        next_episode += 1
                    else:
                        episode[j] = -1
    finally:
        for env in envs:
            env.close()
    return _summary(returns, lengths, success, episodes, seed)


def _evaluate_batched(policy: Policy, task_id: str, episodes: int, seed: int, m: int,
                      env_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """`evaluate` on `m` worlds of a batched template task (None where the task has none): the same episodes, seeds
    and numbers as one env per episode slot (a world is the single-world env seeded alike), without an env's
    per-step Python. Worlds with no episode left to play hold their default pose until the others finish."""
    from robotrl.envs import make_vector

    kwargs = dict(env_kwargs or {})
    vec = make_vector(task_id, m, kwargs.pop("sim2real", None), **kwargs)
    if vec is None:
        return None
    task = vec.task
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
    success = np.full(episodes, np.nan)  # info["is_success"] at an episode's last step, where the task says
    try:
        episode = np.arange(m)  # the episode each world plays; -1: idle
        task.seed(range(m), [seed + k for k in range(m)])
        task.reset(np.arange(m))
        next_episode = m
        hold = (task.low + task.high) / 2
        while (episode >= 0).any():
            active = np.flatnonzero(episode >= 0)
            actions = np.tile(hold, (m, 1))
            actions[active] = np.asarray(policy(task.observe()[active]), dtype=np.float64)
            _, reward, terminated, truncated, info = task.step(actions)
            returns[episode[active]] += reward[active]
            lengths[episode[active]] += 1
            for j in active[(terminated | truncated)[active]]:
                if "is_success" in info:
                    success[episode[j]] = float(info["is_success"][j])
                if next_episode < episodes:
                    episode[j] = next_episode
                    task.seed([j], [seed + next_episode])
                    task.reset([j])
                    next_episode += 1
                else:
                    episode[j] = -1
    finally:
        vec.close()
    return _summary(returns, lengths, success, episodes, seed)


def _summary(returns: np.ndarray, lengths: np.ndarray, success: np.ndarray, episodes: int, seed: int
             ) -> dict[str, Any]:
    out = {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": int(episodes),
        "mean_length": float(lengths.mean()),
        "returns": [float(r) for r in returns],
        "lengths": [int(n) for n in lengths],
        "seed": int(seed),
    }
    if not np.isnan(success).any():
        out["success_rate"] = float(success.mean())
    return out
