"""The training loop: set up a run directory, drive an algorithm, log, checkpoint, evaluate, plot.

    train("ppo", "Hopper-v5", ...)  -> a new run directory
    resume("runs/ppo-Hopper-v5-...") -> continues from checkpoints/latest.pt

The loop is the same for every algorithm (see `robotrl.algorithms.core.Algorithm`). Ctrl-C or SIGTERM stops
it within one env step or update epoch (`Algorithm.should_stop`: an iteration can last hours), writes
a checkpoint and returns; a second Ctrl-C aborts at once. A run killed outright (SIGKILL, power loss)
loses at most the steps since its last periodic checkpoint. On resume the envs start fresh episodes,
seeded from the restored RNG.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robotrl import __version__
from robotrl import config as cfgmod
from robotrl.algorithms import registry as algo_registry
from robotrl.algorithms.core import IterationAborted
from robotrl.atomic import atomic_write_json
from robotrl.errors import Stopped, UserError
from robotrl.run.rundir import RunDir
from robotrl.run.settings import RunConfig, resolve_workers, with_task_sim2real

Callback = Callable[[int, dict[str, float]], bool]
"""`callback(step, metrics)` after each logged iteration of `train`/`resume`; True stops the run early."""


def _refuse_robot_config(data: dict[str, Any], config_file: str | Path, algo: str) -> None:
    """A UserError if the --config file is a robot config (a model and a robot config's fields or template tables),
    saying where it goes: the task, ``TEMPLATE:CONFIG.toml``."""
    from robotrl.envs import templates

    names = templates.names()
    if "model" in data and {"joints", "base", "feet", "end_effector", "actuated", *names} & set(data):
        tasks = " or ".join(f"{t}:{config_file}" for t in names)
        raise UserError(f"config file {str(config_file)!r} is a robot config (model, joints, ...): it goes in the "
                        f"task, {tasks}; --config takes training settings ([run] and [{algo}] tables)")


def resolve_config(algo: str, task: str, *, algo_flags: dict[str, Any] | None = None,
                   run_flags: dict[str, Any] | None = None, config_file: str | Path | None = None
                   ) -> tuple[RunConfig, Any]:
    """Apply dataclass defaults < per-task defaults (and the task template's sim-to-real settings, unless the run
    turns them off: `with_task_sim2real`) < config file < flags; every step validated."""
    info = algo_registry.get(algo)
    _, Config = info.load()
    default_steps, task_overrides = algo_registry.task_defaults(algo, task)
    cfg = cfgmod.from_dict(Config, task_overrides, source=f"per-task defaults of {task}")
    run = RunConfig(total_steps=default_steps)
    run_data: dict[str, Any] = {}
    if config_file is not None:
        data = cfgmod.load_file(config_file)
        _refuse_robot_config(data, config_file, algo)
        run_data = data.pop("run", {}) or {}
        algo_data = data.pop(algo, None)
        others = [k for k in data if k in algo_registry.ALGORITHMS]
        tables = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in algo_registry.ALGORITHMS)
        if tables:  # a misspelt [run] or [ppo]: not an option of the algorithm
            import difflib

            near = difflib.get_close_matches(tables[0], ["run", algo], n=1)
            hint = f" (did you mean [{near[0]}]?)" if near else ""
            raise UserError(f"config file {str(config_file)!r}: unknown table [{tables[0]}]{hint}; the tables are "
                            f"[run] and [{algo}]")
        if algo_data is None and others:  # e.g. a PPO run's config.json given to `train sac`
            raise UserError(f"config file {str(config_file)!r} holds settings of {others[0]} ([{others[0]}]), not "
                            f"of {algo}: give a [{algo}] table (its settings: robotrl train {algo} --help)")
        for key in ("algo", "task", "robotrl_version", "command"):
            data.pop(key, None)
        if algo_data is None:
            algo_data = data  # flat file: top-level keys are the algorithm's fields
        elif data:
            raise UserError(f"config file {str(config_file)!r}: unexpected top-level keys {sorted(data)}")
        cfg = cfgmod.from_dict(Config, algo_data, base=cfg, source=str(config_file))
        run = cfgmod.from_dict(RunConfig, run_data, base=run, source=f"{config_file} [run]")
    cfg = cfgmod.from_dict(Config, algo_flags or {}, base=cfg, source="command line", flags=True)
    run = cfgmod.from_dict(RunConfig, run_flags or {}, base=run, source="command line", flags=True)
    run = with_task_sim2real(run, task, {*run_data, *(run_flags or {})})
    check_device(run.device)
    return run, cfg


def check_device(device: str, hint: str = "use --device cpu") -> None:
    """Refuse a learner device this torch cannot use (a CPU-only build, or no such GPU)."""
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"--device {device}: this torch ({torch.__version__}) cannot use CUDA (a CPU-only build, or "
                        f"no GPU visible); {hint}")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: there are only {torch.cuda.device_count()} CUDA device(s); {hint}")


@dataclass
class Plan:
    """A run fully validated and not yet started: what `train` would write to config.json and spec.json."""

    algo: str
    task: str
    run: RunConfig
    cfg: Any
    spec: Any
    config: dict[str, Any]


def plan(algo: str, task: str, *, algo_flags: dict[str, Any] | None = None, run_flags: dict[str, Any] | None = None,
         config_file: str | Path | None = None, command: str | None = None) -> Plan:
    """Validate everything a new run depends on (task, settings, device, the task's spec) without
    writing anything; `train` creates the run directory only after this has passed."""
    from robotrl.envs import canonical_task, check_task, task_spec

    check_task(task)
    task = canonical_task(task)  # a robot config's path made absolute: eval and resume work from anywhere
    run, cfg = resolve_config(algo, task, algo_flags=algo_flags, run_flags=run_flags, config_file=config_file)
    spec = task_spec(task, sim2real=run.sim2real())  # refuses tasks robotrl cannot train (discrete actions, ...)
    if hasattr(cfg, "check_spec"):  # settings that depend on the task (SAC's target entropy)
        cfg.check_spec(spec)
    starts = getattr(cfg, "learning_starts", None)  # off-policy: a warm-up of random actions before the first update
    if starts is not None and starts >= run.total_steps:
        raise UserError(f"--learning-starts {starts:,} is not below --steps {run.total_steps:,}: the run would end "
                        "before its first update; lower --learning-starts or raise --steps")
    if run.video:  # find out now, not after training, that this machine cannot render
        from robotrl.video.film import check_can_record

        check_can_record(task)
    conf = {"algo": algo, "task": task, "robotrl_version": __version__, "command": command,
            "run": cfgmod.to_dict(run), algo: cfgmod.to_dict(cfg)}
    return Plan(algo, task, run, cfg, spec, conf)


def _default_out(algo: str, task: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    head, sep, tail = task.partition(":")
    name = f"{head}-{Path(tail).stem}" if sep else task.replace("/", "_")  # legged:/x/my_robot.toml -> legged-my_robot
    return Path("runs") / f"{algo}-{name}-s{seed}-{stamp}"


class _StopFlag:
    """SIGINT/SIGTERM/SIGHUP request a stop at the next iteration boundary; a second SIGINT aborts.

    SIGHUP is a closed terminal or a dropped ssh session: the run stops with its checkpoint, as for Ctrl-C. The
    notice is best effort: where stderr is gone with the terminal (or a parent that read it), writing it must not
    turn a clean stop into a crash without a checkpoint."""

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0  # the first stop signal
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.requested:
            self.signum = signum
        self.requested = True
        with contextlib.suppress(OSError):  # BrokenPipeError: nobody reads stderr any more
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            again = "; Ctrl-C again to abort" if signum == signal.SIGINT else ""
            print(f"\n{name}: stopping (a checkpoint will be written){again}",
                  file=sys.stderr, flush=True)

    def __enter__(self) -> _StopFlag:
        for s in (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class _StopNow(_StopFlag):
    """During the final evaluation, after the last checkpoint: a stop signal ends the command at once (there
    is no iteration to finish); `robotrl resume` runs the evaluation again."""

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested, self.signum = True, signum
        raise Stopped(signum)


def _build(algo: str, task: str, run: RunConfig, cfg: Any, *, spec: Any = None) -> Any:
    import torch

    from robotrl.envs import EnvFactory, make_vector, task_spec
    from robotrl.run.vec_env import ShardedVectorEnv

    workers = resolve_workers(run.workers, cfg.num_envs)
    torch.set_num_threads(run.threads)
    Algo, _ = algo_registry.get(algo).load()
    s2r = run.sim2real()
    spec = spec if spec is not None else task_spec(task, sim2real=s2r)
    env_kwargs = {"sim2real": s2r.to_dict()} if s2r.enabled else {}
    # a batched template task steps all its worlds in this process, sim-to-real settings applied over them as arrays;
    # other tasks step env copies (in the sim-to-real wrappers) in shards
    envs = (make_vector(task, cfg.num_envs, s2r, training=True)
            or ShardedVectorEnv(EnvFactory(task, env_kwargs), cfg.num_envs, workers))
    try:
        algo = Algo(cfg, spec, envs, seed=run.seed, total_steps=run.total_steps, device=run.device)
        if hasattr(algo, "update_threads"):  # large-batch updates with `threads`, acting with one
            algo.update_threads = run.threads
            torch.set_num_threads(1)
        return algo, spec
    except Exception:
        envs.close()
        raise


def _checkpoint_state(algo_name: str, task: str, algo: Any, loop: dict[str, Any]) -> dict[str, Any]:
    return {"algo": algo_name, "task": task, "num_steps": algo.num_steps, "robotrl_version": __version__,
            "algorithm": algo.state_dict(), "policy": algo.policy_record(), "loop": loop}


def train(algo: str, task: str, *, algo_flags: dict[str, Any] | None = None,
          run_flags: dict[str, Any] | None = None, config_file: str | Path | None = None,
          out: str | Path | None = None, progress: bool = True, command: str | None = None,
          callback: Callback | None = None) -> Path:
    """Train `algo` on `task` in a new run directory; returns its path. `command`: the command line
    that asked for it, recorded in config.json (and from there in an exported actor's card).
    `callback(step, metrics)` is called after every logged iteration; returning True stops the run
    early (checkpoint, final evaluation and eval.json as at the end; `resume` continues it).

    Nothing is written before every input has been validated (`plan`); the directory is locked while
    the run lasts, and removed again if setting up fails before training starts."""
    p = plan(algo, task, algo_flags=algo_flags, run_flags=run_flags, config_file=config_file, command=command)
    run, cfg, task = p.run, p.cfg, p.task
    rd = RunDir.create(out if out is not None else _default_out(algo, task, run.seed))
    try:
        atomic_write_json(rd.config, p.config)
        atomic_write_json(rd.spec, p.spec.to_dict())
        algorithm, _ = _build(algo, task, run, cfg, spec=p.spec)
    except BaseException:
        rd.discard()
        raise
    try:
        print(f"robotrl: training {algo} on {task} for {run.total_steps:,} steps -> {rd.path}", file=sys.stderr)
        try:
            _loop(rd, algo, task, algorithm, run, loop_state=None, progress=progress, callback=callback)
        finally:
            algorithm.close()
    finally:
        rd.unlock()
    return rd.path


def resume(path: str | Path, *, total_steps: int | None = None, device: str | None = None, progress: bool = True,
           callback: Callback | None = None) -> Path:
    """Continue the run in `path` from its latest checkpoint (optionally to a new `total_steps`, or on another
    learner `device`: a run trained on a GPU continues on a CPU-only machine and the reverse); a run killed
    before its first checkpoint starts again from step 0 with its recorded settings. `callback`: as in `train`.

    The directory is locked for the whole run. Every file is checked before anything changes, and
    config.json takes a new `total_steps` only once the checkpoint has been loaded into the algorithm."""
    rd = RunDir.open(path, lock=True)
    try:
        s = rd.read_settings()
        algo, task, cfg, run = s.algo, s.task, s.cfg, s.run
        if total_steps is not None:
            run = cfgmod.from_dict(RunConfig, {"total_steps": total_steps}, base=run, source="command line",
                                   flags=True)
        if device is not None:
            run = cfgmod.from_dict(RunConfig, {"device": device}, base=run, source="command line", flags=True)
            check_device(run.device)
        else:
            check_device(run.device, hint=f"this run was trained with --device {run.device}; continue it here with "
                                          f"robotrl resume {str(rd.path)!r} --device cpu")
        if run.video:
            from robotrl.video.film import check_can_record

            check_can_record(task)
        state = rd.load_checkpoint(s, missing_ok=True)
        spec_file = rd.read_spec(s)
        done = state["num_steps"] if state is not None else 0
        unevaluated = state is not None and run.eval_episodes > 0 and not rd.eval.exists() and total_steps is None
        if done >= run.total_steps and not unevaluated:  # (a run stopped in its final evaluation: evaluate it)
            if total_steps is not None:
                raise UserError(f"--steps {total_steps:,} is not more than the {done:,} steps run {str(rd.path)!r} "
                                "has done already")
            raise UserError(f"run {str(rd.path)!r} is already complete ({done:,} of {run.total_steps:,} steps); "
                            "pass --steps N to train further")
        if state is not None:
            _check_dims(state["policy"], spec_file, f"checkpoint {rd.latest_checkpoint}", f"{rd.spec}")
        rows = rd.read_metrics()[1] if rd.metrics.exists() else []  # damaged: stops here, before anything changed
        if state is not None and done > 0 and not rows:  # a checkpoint is written after its iteration's row
            raise UserError(f"{rd.metrics} is {'empty' if rd.metrics.exists() else 'missing'} but run "
                            f"{str(rd.path)!r} has a checkpoint at step {done:,}: resuming would drop its history "
                            "(metrics.csv and the TensorBoard events are cut back to the checkpoint); put metrics.csv "
                            "back, or start a new run")
        if rows:
            past = [int(r["step"]) for r in rows if int(r["step"]) >= s.run.checkpoint_every]
            if state is None and len(past) >= 2:  # logged on past a checkpoint step: one was written, and is gone
                raise UserError(f"run {str(rd.path)!r} has no checkpoint ({rd.latest_checkpoint} is missing) but its "
                                f"metrics.csv reaches step {past[-1]:,}, past the checkpoint at "
                                f"{s.run.checkpoint_every:,}; put the checkpoint back, or start a new run")
        algorithm, spec = _build(algo, task, run, cfg)
        try:
            _check_dims({"obs_dim": spec.obs_dim, "act_dim": spec.act_dim}, spec_file, f"task {task!r} now",
                        f"{rd.spec}")
            check_run_task(rd, s, spec, recorded=spec_file)  # spec.json as read above, not read again
            if state is not None:
                try:
                    algorithm.load_state_dict(state["algorithm"])
                except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                    raise UserError(f"checkpoint {rd.latest_checkpoint} does not fit the {algo} that config.json "
                                    f"describes ({first})") from None
            if run != s.run:  # known to work now: record it
                atomic_write_json(rd.config, {**s.raw, "run": cfgmod.to_dict(run)})
        except BaseException:
            algorithm.close()
            raise
        where = f"at step {done:,}" if state is not None else "from step 0 (it had no checkpoint yet)"
        if done >= run.total_steps:
            where += " (trained; its final evaluation was stopped: running it)"
        print(f"robotrl: resuming {algo} on {task} {where} of {run.total_steps:,} -> {rd.path}", file=sys.stderr)
        try:
            _loop(rd, algo, task, algorithm, run, loop_state=state.get("loop", {}) if state is not None else {},
                  progress=progress, callback=callback)
        finally:
            algorithm.close()
    finally:
        rd.unlock()
    return rd.path


def _check_dims(have: dict[str, Any], spec: Any, what: str, spec_name: str) -> None:
    if (have["obs_dim"], have["act_dim"]) != (spec.obs_dim, spec.act_dim):
        raise UserError(f"{what} has {have['obs_dim']} observation and {have['act_dim']} action elements but "
                        f"{spec_name} names {spec.obs_dim} and {spec.act_dim}")


def _loop(rd: RunDir, algo_name: str, task: str, algo: Any, run: RunConfig, *, loop_state: dict[str, Any] | None,
          progress: bool, callback: Callback | None = None) -> None:
    from robotrl.run.logger import MetricsLogger, Progress

    loop = {"episodes": 0, "recent_returns": [], "recent_lengths": [], "recent_means": {}, "elapsed_s": 0.0}
    if loop_state is not None:  # resuming (from step 0 if {}): rows after the checkpoint are dropped
        loop.update(loop_state)
    recent_r: deque[float] = deque(loop["recent_returns"], maxlen=100)
    recent_l: deque[int] = deque(loop["recent_lengths"], maxlen=100)
    recent_m = {k: deque(v, maxlen=100) for k, v in loop["recent_means"].items()}  # tracking errors, ... per episode
    start_step = algo.num_steps
    logger = MetricsLogger(rd.metrics, rd.tensorboard, resume_step=start_step if loop_state is not None else None)
    bar = Progress(run.total_steps, start_step, enabled=progress, desc=f"{algo_name} {task}")
    t0 = time.perf_counter()
    next_ckpt = (start_step // run.checkpoint_every + 1) * run.checkpoint_every
    next_eval = (start_step // run.eval_every + 1) * run.eval_every if run.eval_every else None
    loop_state_elapsed = float(loop["elapsed_s"])

    def save() -> None:
        loop.update(recent_returns=list(recent_r), recent_lengths=list(recent_l),
                    recent_means={k: list(v) for k, v in recent_m.items()},
                    elapsed_s=loop_state_elapsed + time.perf_counter() - t0)
        had = rd.latest_checkpoint.exists()
        try:
            rd.save_checkpoint(_checkpoint_state(algo_name, task, algo, loop))
        except OSError as e:  # full disk, quota, ...: the atomic write left the previous checkpoint as it was
            if had:
                raise UserError(f"cannot write checkpoint {rd.latest_checkpoint}: {e.strerror or e}; the previous "
                                f"checkpoint is intact; continue with 'robotrl resume {rd.path}' when it can be "
                                "written") from None
            fix = "raise the file size limit (ulimit -f)" if e.errno == errno.EFBIG else "free some space"
            raise UserError(f"cannot write checkpoint {rd.latest_checkpoint}: {e.strerror or e}; the run had none "
                            f"yet, so it cannot be resumed: {fix} and train again") from None

    try:
        early = False
        with _StopFlag() as stop:
            algo.should_stop = lambda: stop.requested  # long loops inside an iteration poll it (core.Algorithm)
            while algo.num_steps < run.total_steps and not stop.requested and not early:
                before = algo.num_steps
                try:
                    result = algo.iterate()
                except IterationAborted:  # stopped while collecting a rollout: dropped, nothing learned
                    break
                if algo.num_steps == before:  # stopped before its first step: nothing to log
                    break
                _check_finite(result.metrics, algo.num_steps)
                recent_r.extend(result.episode_returns)
                recent_l.extend(result.episode_lengths)
                for k, v in result.episode_means.items():
                    recent_m.setdefault(k, deque(maxlen=100)).extend(v)
                loop["episodes"] += len(result.episode_returns)
                elapsed = time.perf_counter() - t0
                metrics: dict[str, float] = dict(result.metrics)
                if recent_r:
                    metrics["rollout/ep_return_mean"] = sum(recent_r) / len(recent_r)
                    metrics["rollout/ep_length_mean"] = sum(recent_l) / len(recent_l)
                metrics.update({f"rollout/{k}": sum(v) / len(v) for k, v in recent_m.items() if v})
                metrics["rollout/episodes"] = loop["episodes"]
                metrics["time/elapsed_s"] = loop_state_elapsed + elapsed
                metrics["time/steps_per_s"] = (algo.num_steps - start_step) / max(elapsed, 1e-9)
                metrics.update(getattr(algo.envs, "task_metrics", dict)())  # curriculum levels of a template task
                if next_eval is not None and algo.num_steps >= next_eval and not stop.requested:
                    try:  # up to 100,000 episodes: a stop signal ends it at once (nothing of the run's state in it)
                        with _StopNow():
                            ev = _evaluate_record(algo.policy_record(), task, run.eval_episodes or 5, run.seed)
                    except Stopped as e:
                        stop.requested, stop.signum = True, stop.signum or e.signum
                    else:
                        metrics["eval/mean_return"] = ev["mean_return"]
                        metrics["eval/std_return"] = ev["std_return"]
                        if "success_rate" in ev:
                            metrics["eval/success_rate"] = ev["success_rate"]
                        next_eval += run.eval_every
                logger.log(algo.num_steps, metrics)
                early = callback is not None and bool(callback(algo.num_steps, metrics))
                bar.update(algo.num_steps, _postfix(metrics))
                if algo.num_steps >= next_ckpt:
                    save()
                    next_ckpt += run.checkpoint_every
            save()
        bar.close()
        if stop.requested:
            with contextlib.suppress(OSError):  # best effort, as the notice: stderr may be gone with the terminal
                print(f"robotrl: stopped at step {algo.num_steps:,}; checkpoint saved. "
                      f"Continue with: robotrl resume {rd.path}", file=sys.stderr)
            raise Stopped(stop.signum)
        elapsed = time.perf_counter() - t0
        summary = f"robotrl: {algo.num_steps - start_step:,} steps in {elapsed:.1f} s " \
                  f"({(algo.num_steps - start_step) / elapsed:,.0f} steps/s)"
        if early:
            summary += f"; stopped early at step {algo.num_steps:,} (robotrl resume continues it)"
        if run.eval_episodes > 0:
            try:
                with _StopNow(), _final_video(rd, run) as recorder:
                    ev = _evaluate_record(algo.policy_record(), task, run.eval_episodes, run.seed, watch=recorder)
            except Stopped:
                with contextlib.suppress(OSError):
                    print(f"robotrl: stopped during the final evaluation at step {algo.num_steps:,} (checkpoint "
                          f"saved, no eval.json); 'robotrl resume {rd.path}' runs the evaluation", file=sys.stderr)
                raise
            if recorder is not None:
                ev["video"] = recorder.record()
                summary += f"; video {recorder.settings.path} ({recorder.frames} frames)"
            ev["step"] = algo.num_steps
            atomic_write_json(rd.eval, ev)
            final = {"eval/mean_return": ev["mean_return"], "eval/std_return": ev["std_return"]}
            if "success_rate" in ev:
                final["eval/success_rate"] = ev["success_rate"]
            if not logger.logged(algo.num_steps, "eval/mean_return"):  # --eval-every's last one: the same figures
                logger.log(algo.num_steps, final)
            summary += f"; evaluation return {ev['mean_return']:.1f} +- {ev['std_return']:.1f} " \
                       f"over {episode_count(ev['episodes'])}"
            if "success_rate" in ev:
                summary += f", success rate {ev['success_rate']:.0%}"
        print(summary, file=sys.stderr)
    finally:
        bar.close()
        logger.close()
    try:
        from robotrl.run.plot import plot_runs

        plot_runs([rd.path], rd.plot, title=f"{algo_name} on {task}")
    except UserError as e:  # too short to have finished an episode
        print(f"robotrl: no learning curve: {e}", file=sys.stderr)
    print(f"robotrl: run directory {rd.path}", file=sys.stderr)


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    """What a progress line shows of an iteration's metrics: the recent return and, on a velocity-tracking task, the
    recent episodes' mean tracking errors (planar m/s, yaw rate rad/s, over every step of the episode)."""
    out = {}
    if "rollout/ep_return_mean" in metrics:
        out["return"] = f"{metrics['rollout/ep_return_mean']:.1f}"
    if "rollout/tracking_error_lin" in metrics and "rollout/tracking_error_yaw" in metrics:
        out["tracking"] = (f"{metrics['rollout/tracking_error_lin']:.3f} m/s, "
                           f"{metrics['rollout/tracking_error_yaw']:.3f} rad/s")
    return out


def _check_finite(metrics: dict[str, float], step: int) -> None:
    """Stop a diverged run before it writes a NaN checkpoint over the last good one."""
    import math

    bad = sorted(k for k, v in metrics.items() if k.startswith("train/") and not math.isfinite(v)
                 and k != "train/explained_variance")  # NaN there only means constant returns
    if bad:
        raise UserError(f"training diverged at step {step:,}: {', '.join(bad)} not finite (the last checkpoint "
                        "is from before this; try a smaller --learning-rate)")


from robotrl.run.evaluate import check_run_task, episode_count, eval_seed  # noqa: E402  (re-exported; it lives with the evaluation)


def _evaluate_record(record: dict[str, Any], task: str, episodes: int, seed: int, watch: Any = None
                     ) -> dict[str, Any]:
    from robotrl.policies import from_record
    from robotrl.run.evaluate import evaluate

    policy = from_record(record)
    return evaluate(policy.act, task, episodes, eval_seed(seed), watch=watch)


def _final_video(rd: RunDir, run: RunConfig) -> Any:
    """With `run.video`: a recorder (context manager) filming the final evaluation's first episode to
    RUN_DIR/video.mp4 as it runs; otherwise a no-op yielding None."""
    if not run.video:
        return contextlib.nullcontext()
    from robotrl.video.film import VideoSettings, recording

    return recording(VideoSettings(rd.path / "video.mp4"))

