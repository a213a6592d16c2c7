"""The `robotrl` command.

    robotrl train ALGO TASK [--steps N] [--seed S] [--envs K] [--out DIR] [--config FILE] [--FIELD V ...]
    robotrl eval RUN_DIR | --onnx FILE [TASK] [--episodes N] [--json] [--perturb NAME=VALUE[,...]]...
    robotrl plot RUN_DIR... [-o OUT.png] [--metric NAME]
    robotrl resume RUN_DIR [--steps N] [--device cpu|cuda[:N]]
    robotrl video RUN_DIR | FILE.onnx | pretrained:NAME [-o FILE.mp4|.gif] [--episodes N] [--camera NAME] ...
    robotrl sweep STUDY.toml [--out DIR] [--address auto|HOST:PORT] [--cpus N] [--dry-run] | robotrl sweep --resume DIR

User mistakes print one line, ``robotrl: error: ...``, and exit with status 2; a stopped run exits with 128 + the
signal (Ctrl-C 130, SIGTERM 143, SIGHUP 129).
Heavy imports (torch, gymnasium) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from robotrl import __version__
from robotrl.errors import UserError, shorten_numbers

MAX_EPISODES = 10**6  # evaluation episodes of one command: a million is days of simulation; more is a typo
_NUMBER = r"((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)"
NEGATIVE_NUMBER = re.compile(rf"^-{_NUMBER}(,\s*-?{_NUMBER})*$", re.IGNORECASE)
"""a value, not a flag: a negative number, or a list of numbers that starts with one (--base-payload -0.05,0.2)"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UserError (printed as one line) instead of printing usage and exiting, and
    that does not accept abbreviated flags (``--learning-rat`` must not silently mean ``--learning-rate``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # A value such as -5e-1 or -inf is a negative number, not a flag (argparse knows only -5 and -0.5), so
        # `--target-entropy -5e-1` works and `--actor-learning-rate -1e-3` is refused for its value; so is a range
        # LOW,HIGH with a negative LOW (`--base-payload -0.05,0.2`).
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


class _OneOfAliases(argparse.Action):
    """Stores a value that two flags name (--envs and --num-envs); giving both with different values is refused
    rather than letting the last one win unseen."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        seen = getattr(namespace, "_aliases_seen", {})
        earlier = seen.get(self.dest)
        if earlier and earlier[0] != option_string and earlier[1] != values:
            parser.error(f"{earlier[0]} {earlier[1]} and {option_string} {values} name the same setting; give one")
        seen[self.dest] = (option_string, values)
        namespace._aliases_seen = seen
        setattr(namespace, self.dest, values)


def _positive_int(name: str, most: int = 10**12, least: int = 1):
    """A parser of a whole number from `least` to `most`; 1e6 and 2000.0 are whole numbers, 1.5 and 1e400 are not.
    Its bounds are what `build_parser` writes into the flag's help (`_state_bounds`), so help and check agree."""

    def parse(text: str) -> int:
        try:
            value: int | float | None = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = None
        if isinstance(value, float):
            value = int(value) if math.isfinite(value) and value.is_integer() else None
        if value is None or not least <= value <= most:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number from {least:,} to {most:,}, got {text!r}")
        return value

    parse.bounds = (least, most)  # type: ignore[attr-defined]
    return parse


def _state_bounds(parser: argparse.ArgumentParser) -> None:
    """Append the accepted range to the help of every flag checked by `_positive_int`, in every sub-command
    (issue 31: `video --width` was checked against 1 to 1e12 while 16 to 4096 held)."""
    for action in parser._actions:
        bounds = getattr(action.type, "bounds", None)
        if bounds is not None and action.help and action.help != argparse.SUPPRESS:
            action.help += f" [{bounds[0]:,} to {bounds[1]:,}]".replace("%", "%%")
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _state_bounds(child)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in [0, 2**32), got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"--seed must be an integer in [0, 2**32), got {text!r}")
    return value


def _domain_id(text: str) -> int:
    """A ROS domain ID: 0..232 (Fast DDS's ports run out above 232; ROS advises 0..101)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 232:
        raise argparse.ArgumentTypeError(f"--domain-id must be a ROS domain ID, an integer in [0, 232], got {text!r}")
    return value


def _fraction(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 1:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{name} must be a number in [0, 1], got {text!r}")
        return value

    return parse


RUN_FLAGS = {  # flag -> RunConfig field; values are parsed and checked by robotrl.config
    "--steps": "total_steps",
    "--seed": "seed",
    "--workers": "workers",
    "--checkpoint-every": "checkpoint_every",
    "--eval-episodes": "eval_episodes",
    "--eval-every": "eval_every",
    "--device": "device",
    "--threads": "threads",
    "--randomize-mass": "randomize_mass",
    "--randomize-friction": "randomize_friction",
    "--randomize-damping": "randomize_damping",
    "--randomize-gain": "randomize_gain",
    "--base-payload": "base_payload",
    "--base-com": "base_com",
    "--latency": "latency",
    "--obs-noise": "obs_noise",
    "--sensor-noise": "sensor_noise",
    "--action-delay": "action_delay",
}


def _add_train_parser(sub: Any, *, with_algorithms: bool) -> None:
    from robotrl.algorithms import registry as algos

    p = sub.add_parser("train", help="train a policy on a task", description="Train ALGO on TASK.")
    if not with_algorithms:  # listed for `robotrl --help` without importing torch
        p.add_argument("algo", metavar="ALGO", help=f"one of: {', '.join(algos.ALGORITHMS)}")
        return
    from robotrl import config as cfgmod
    from robotrl.run.settings import RunConfig

    algo_sub = p.add_subparsers(dest="algo", metavar="ALGO", required=True, parser_class=_Parser)
    run_docs = cfgmod.field_docs(RunConfig)
    run_defaults = RunConfig()
    for name, info in algos.ALGORITHMS.items():
        _, Config = info.load()
        ap = algo_sub.add_parser(name, help=info.summary, description=f"{info.summary}.\n\n"
                                 "Precedence: defaults < per-task defaults < --config FILE < flags. The defaults "
                                 "below are the algorithm's;\na task can have its own (robotrl train ALGO TASK "
                                 "--dry-run prints every value a run would use).",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("task", metavar="TASK", help="a Gymnasium id (e.g. Hopper-v5) or a robotrl task")
        g = ap.add_argument_group("run")
        for flag, field in RUN_FLAGS.items():
            default = getattr(run_defaults, field)
            shown = ",".join(f"{v:g}" for v in default) if isinstance(default, tuple) else default
            doc = f"{run_docs.get(field, '')} [default: {shown}]".replace("%", "%%")
            g.add_argument(flag, dest=f"run_{field}", metavar="V", default=argparse.SUPPRESS, help=doc)
        g.add_argument("--envs", dest="num_envs", metavar="K", default=argparse.SUPPRESS, action=_OneOfAliases,
                       help="number of parallel environments (same as --num-envs)")
        g.add_argument("--out", metavar="DIR", help="run directory (default: runs/ALGO-TASK-sSEED-TIMESTAMP)")
        g.add_argument("--config", metavar="FILE", help="TOML or JSON file of settings (a run's config.json works)")
        g.add_argument("--no-progress", action="store_true", help="no progress bar")
        g.add_argument("--video", dest="run_video", action="store_true", default=argparse.SUPPRESS,
                       help="film the final evaluation's first episode to RUN_DIR/video.mp4 (robotrl video)")
        g.add_argument("--no-randomize", dest="run_randomize", action="store_const", const=False,
                       default=argparse.SUPPRESS, help=run_docs.get("randomize", "").replace("%", "%%"))
        g.add_argument("--dry-run", action="store_true",
                       help="check every setting and print the resolved config.json; create nothing")
        h = ap.add_argument_group(f"{name} hyper-parameters")
        cfgmod.add_arguments(h, Config, skip=("num_envs",))
        h.add_argument("--num-envs", dest="num_envs", metavar="V", default=argparse.SUPPRESS, action=_OneOfAliases,
                       help=f"{cfgmod.field_docs(Config).get('num_envs', '')} [int; default: {Config().num_envs}]")


def build_parser(argv: Sequence[str]) -> _Parser:
    parser = _Parser(prog="robotrl", description="Train robot policies in MuJoCo, export them, run them on ROS 2.")
    parser.add_argument("--version", action="version", version=f"robotrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    _add_train_parser(sub, with_algorithms=bool(argv) and argv[0] == "train")

    p = sub.add_parser("eval", help="evaluate a run's policy, or an exported actor.onnx (deterministic actions)",
                       description="robotrl eval RUN_DIR | robotrl eval --onnx actor.onnx [TASK]")
    p.add_argument("run_dir", metavar="RUN_DIR|TASK", nargs="?",
                   help="a run directory; with --onnx, the task to run it on (default: the card's task)")
    p.add_argument("--onnx", metavar="FILE", help="evaluate this exported actor with onnxruntime alone")
    p.add_argument("--episodes", type=_positive_int("--episodes", MAX_EPISODES), default=10,
                   help="episodes to run (default 10)")
    p.add_argument("--seed", type=_seed, default=None, help="first episode seed (default: the run's evaluation seed)")
    p.add_argument("--json", action="store_true", help='print {"mean_return", "std_return", "episodes"} as JSON '
                   '(a velocity-tracking task adds "tracking": the table\'s figures)')
    p.add_argument("--perturb", action="append", metavar="NAME=VALUE[,...]", default=[],
                   help="a velocity-tracking task: run the same episodes under this condition too, one table row per "
                        "--perturb (repeat it; NAME=VALUE pairs joined by commas act together). Names: friction "
                        "(factor), payload (fraction of the base's mass) or payload_kg, servos (factor on kp and kd), "
                        "latency (s), noise (fraction of each sensor's full scale), push (m/s, every push_every s, "
                        "default 3), rough (m). 'standard': friction=0.4, payload=0.25, servos=0.7, latency=0.02, "
                        "latency=0.04, noise=0.05, push=1, rough=0.04, a row each")
    p.add_argument("--other-robot", action="store_true",
                   help="with --onnx: run the actor on TASK although its physics, gains, control rate or settings "
                        "differ from the card's (a robot config edited since training, or another robot); a note "
                        "names the first difference")

    p = sub.add_parser("plot", help="plot learning curves of one or more runs to a PNG")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    p.add_argument("-o", "--out", metavar="PNG", help="output file (default: RUN_DIR/learning_curve.png for one "
                                                      "run, learning_curves.png for several)")
    p.add_argument("--metric", default="rollout/ep_return_mean", help="column of metrics.csv to plot")

    p = sub.add_parser("export", help="export a run's actor alone to ONNX, with its policy card")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--out", metavar="FILE", help="output file (default: RUN_DIR/actor.onnx)")
    p.add_argument("--json", action="store_true", help="print the export summary as JSON")

    p = sub.add_parser("card", help="print the policy card of an exported actor")
    p.add_argument("onnx", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the card as JSON")

    p = sub.add_parser("deploy", help="run an exported actor in the ROS 2 policy node (configure + activate)",
                       usage="%(prog)s [-h] FILE [--ros-args -p NAME:=VALUE ...]",
                       description="Run the lifecycle policy node. Arguments after the file go to ROS, e.g. "
                                   "robotrl deploy actor.onnx --ros-args -p ramp_s:=2.0 -p imu_topic:=/imu")
    p.add_argument("onnx", metavar="FILE", help="actor.onnx or pretrained:NAME")
    ros_args = p.add_argument("ros_args", metavar="--ros-args ...", nargs=argparse.REMAINDER,
                              help="optional: ROS arguments, e.g. -p NAME:=VALUE, --params-file FILE, -r FROM:=TO "
                                   "(parameters: deploy/config/policy.yaml)")
    ros_args.required = False  # argparse calls a REMAINDER positional required; it may be empty

    p = sub.add_parser("sim-robot", help="a MuJoCo robot behind ROS 2 topics (the stand-in for hardware)")
    p.add_argument("task", metavar="TASK|FILE.onnx|pretrained:NAME",
                   help="the task to simulate, or an exported actor: the task of its card, with the episodes "
                        "'robotrl eval --onnx' runs (its evaluation seed) unless --seed")
    p.add_argument("--episodes", type=_positive_int("--episodes", MAX_EPISODES), default=10,
                   help="episodes to play before it exits (default 10); it also stops on Ctrl-C or SIGTERM")
    p.add_argument("--seed", type=_seed, default=None,
                   help="episode k is seeded seed + k (default: 0 for a TASK; an actor's evaluation seed, 1000000 "
                        "for a run of seed 0)")
    p.add_argument("--lockstep", action="store_true", help="step when the command answering the last state arrives")

    p = sub.add_parser("sim2sim", help="the policy node against the simulated robot over DDS, vs in-process")
    p.add_argument("onnx", metavar="FILE", help="actor.onnx or pretrained:NAME")
    p.add_argument("task", metavar="TASK", nargs="?", default=None,
                   help="the task to run it on (default: the card's); another must measure and command the same "
                        "elements, e.g. the same robot config at a new path (reach:moved/arm.toml); another robot "
                        "only with --other-robot")
    p.add_argument("--episodes", type=_positive_int("--episodes", MAX_EPISODES), default=3,
                   help="episodes on each side (default 3)")
    p.add_argument("--free-running", action="store_true", help="wall-clock timers on both sides, as on hardware")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--join", action="store_true",
                       help="run in this shell's ROS domain (ROS_DOMAIN_ID, else 0), e.g. to watch it with ros2 topic "
                            "echo (default: a domain of its own, so that other nodes and other runs cannot mix in)")
    where.add_argument("--domain-id", type=_domain_id, default=None, metavar="N", help="run in ROS domain N")
    p.add_argument("--other-robot", action="store_true",
                   help="run on TASK although its physics, gains, control rate or settings differ from the card's (a "
                        "robot config edited since training, or another robot); a note names the first difference")
    p.add_argument("--tolerance", type=_fraction("--tolerance"), default=0.1,
                   help="allowed shortfall of the mean return (0.1: 10%%)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("tasks", help="list the task suite: observation/action sizes, control rate")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--spec", metavar="TASK", help="print one task's full observation/action spec")

    p = sub.add_parser("resume", help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--steps", type=_positive_int("--steps"), default=None, help="new total steps (to train further)")
    p.add_argument("--device", default=None, help="learner device from now on: cpu, cuda or cuda:N (default: the "
                                                  "run's own; a GPU run continues on a CPU-only machine with cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("sweep", help="a study over seeds and settings on Ray: table, curves, best config",
                       description="Run a study (grid, random or TPE search over settings x seeds) on Ray, each "
                                   "trial a run directory under the study's folder. Needs pip install "
                                   "'robotrl[sweep]'. The study file's format: README, 'Studies (sweeps)'.")
    p.add_argument("study", metavar="STUDY.toml", nargs="?", help="the study file")
    p.add_argument("--resume", metavar="DIR", help="continue the study in DIR (a killed driver): finished trials "
                                                   "are kept, interrupted ones continue from their checkpoints")
    p.add_argument("--out", metavar="DIR", help="the study's folder (default: runs/sweep-STUDY)")
    p.add_argument("--address", metavar="auto|HOST:PORT",
                   help="join a running Ray cluster: auto finds the one this machine belongs to (ray start --head, "
                        "RAY_ADDRESS); default: start a private Ray of this command's own, even when a cluster runs "
                        "here (it does not join or disturb it)")
    p.add_argument("--cpus", type=_positive_int("--cpus", 10**5), default=None,
                   help="CPUs of the private local Ray (default: all); a trial takes one. Not with --address: a "
                        "cluster has the CPUs its nodes give it ([study] max_concurrent limits trials at once)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the study (every setting of every trial, on its task) and the folder, print the "
                        "trials it would run, and stop: no Ray, nothing written")

    from robotrl.video.cli import add_parser as add_video_parser

    add_video_parser(sub, _positive_int, _seed)

    p = sub.add_parser("robot", help="your own robot: inspect an MJCF model and its robot config",
                       description="Your own robot enters as an MJCF model plus a robot config (TOML); train it with "
                                   "TASK = TEMPLATE:CONFIG.toml, e.g. legged:CONFIG.toml ('robot inspect' lists the "
                                   "templates and what each needs).")
    robot_sub = p.add_subparsers(dest="robot_command", metavar="SUBCOMMAND", required=True, parser_class=_Parser)
    p = robot_sub.add_parser("inspect", help="joints, actuators, bodies, sites, sensors, floating base; what the "
                                             "config still has to say for each task template")
    p.add_argument("model", metavar="MODEL.xml|CONFIG.toml")
    p.add_argument("--config", metavar="FILE", help="the robot config (TOML) to check against the model")
    _state_bounds(parser)
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from robotrl.run.train import train

    ns = vars(args)
    run_flags = {field: ns[f"run_{field}"] for field in RUN_FLAGS.values() if f"run_{field}" in ns}
    if ns.get("run_video"):
        run_flags["video"] = True
    if "run_randomize" in ns:
        run_flags["randomize"] = False
    skip = {"command", "algo", "task", "out", "config", "no_progress", "argv", "dry_run", "_aliases_seen"}
    algo_flags = {k: v for k, v in ns.items() if k not in skip and not k.startswith("run_")}
    import shlex

    command = "robotrl " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))
    if getattr(args, "dry_run", False):
        from robotrl.run.train import plan

        p = plan(args.algo, args.task, algo_flags=algo_flags, run_flags=run_flags, config_file=args.config,
                 command=command)
        print(json.dumps(p.config, indent=2))
        return 0
    train(args.algo, args.task, algo_flags=algo_flags, run_flags=run_flags, config_file=args.config,
          out=args.out, progress=not args.no_progress, command=command)
    return 0


def _is_task(name: str) -> bool:
    from robotrl.envs import check_task

    try:
        check_task(name)
    except UserError:
        return False
    return True


def _cmd_eval(args: argparse.Namespace) -> int:
    from robotrl.run.evaluate import OTHER_ROBOT_FLAG, check_actor_fits_task, check_run_task, episode_count, evaluate
    from robotrl.run.train import eval_seed

    unfinished: tuple[str, str] | None = None
    if args.onnx:
        policy, task, step, algo = _onnx_policy(args.onnx)
        task = args.run_dir or task
        check_actor_fits_task(policy.card, task, args.onnx, other_robot=args.other_robot, flag=OTHER_ROBOT_FLAG)
        seed = args.seed if args.seed is not None else eval_seed(int(policy.card["training"]["seed"]))
        act = policy
    else:
        from pathlib import Path

        from robotrl.run.rundir import RunDir

        if not args.run_dir:
            raise UserError("give a RUN_DIR, or --onnx FILE [TASK]")
        if args.other_robot:
            raise UserError(f"{OTHER_ROBOT_FLAG} is for an exported actor on a task (eval --onnx FILE TASK); a run "
                            "evaluates on the task it was trained on")
        if args.run_dir.startswith("pretrained:") or (args.run_dir.endswith(".onnx") and Path(args.run_dir).is_file()):
            raise UserError(f"{args.run_dir!r} is an exported actor, not a run directory: evaluate it with "
                            f"'robotrl eval --onnx {args.run_dir}'")
        if not Path(args.run_dir).exists() and _is_task(args.run_dir):
            raise UserError(f"{args.run_dir!r} is a task, not a run directory: evaluate a run with 'robotrl eval "
                            "RUN_DIR', an exported actor on it with 'robotrl eval --onnx FILE TASK'")
        rd = RunDir.open(args.run_dir)
        settings = rd.read_settings()
        state = rd.load_checkpoint(settings)
        check_run_task(rd, settings)
        act = rd.policy(state).act
        import torch

        # one forward pass per step for a few worlds: more threads gain nothing, and on a busy machine their spinning
        # made an evaluation 7x slower (88 s against 13 s, a 1-episode tracking evaluation at load 9 on 2 cores)
        torch.set_num_threads(1)
        task, step, algo = settings.task, state["num_steps"], settings.algo
        seed = args.seed if args.seed is not None else eval_seed(settings.run.seed)
        unfinished = _unfinished(rd, step, settings.run.total_steps, settings.run.eval_episodes)
        if unfinished:
            print(f"robotrl: note: evaluating the latest checkpoint, step {step:,} of {settings.run.total_steps:,}, "
                  f"{unfinished[1]}", file=sys.stderr)
    conditions = _perturb_conditions(args.perturb, task)
    ev = evaluate(act, task, args.episodes, seed)
    tracking = None
    from robotrl.run.tracking import tracking_report, tracking_table, velocity_task

    if velocity_task(task):
        tracking = tracking_report(act, task, args.episodes, seed, conditions=conditions)
    if args.json:
        keys = ("mean_return", "std_return", "episodes", "success_rate")
        out: dict[str, Any] = {k: ev[k] for k in keys if k in ev}
        if tracking is not None:
            out["tracking"] = _without_episodes(tracking)
        if unfinished:  # a run evaluated before its end: which checkpoint
            out["checkpoint"] = {"step": step, "total_steps": settings.run.total_steps, "run": unfinished[0]}
        print(json.dumps(out))
    else:
        where = f"step {step:,}" + (f" of {settings.run.total_steps:,}" if unfinished else "")
        print(f"{task} ({algo}, {where}{', onnxruntime' if args.onnx else ''}): return "
              f"{ev['mean_return']:.2f} +- {ev['std_return']:.2f} over {episode_count(ev['episodes'])} "
              f"(mean length {ev['mean_length']:.0f})"
              + (f", success rate {ev['success_rate']:.0%}" if "success_rate" in ev else ""))
        if tracking is not None:
            print(tracking_table(tracking))
    return 0


def _unfinished(rd: Any, step: int, total: int, eval_episodes: int) -> tuple[str, str] | None:
    """Where a run has not finished, what it is ("training", "stopped", "final evaluation stopped") and a note
    saying so; None where it has finished."""
    if step >= total and (rd.eval.exists() or eval_episodes == 0):
        return None
    holder = rd.holder()
    if holder is not None:
        return "training", "a run still training" + (f" (PID {holder})" if holder else "")
    if step >= total:
        return "final evaluation stopped", (f"a run trained whose final evaluation was stopped ('robotrl resume "
                                            f"{rd.path}' writes eval.json)")
    return "stopped", f"a run stopped before its end (no final evaluation; 'robotrl resume {rd.path}' continues it)"


STANDARD_CONDITIONS = ("friction=0.4", "payload=0.25", "servos=0.7", "latency=0.02", "latency=0.04", "noise=0.05",
                       "push=1", "rough=0.04")
"""`eval --perturb standard`: the conditions of issue 33's robustness benchmark, one row each"""


def _perturb_conditions(given: list[str], task: str) -> list[dict[str, float]]:
    """The --perturb conditions, parsed and checked (a UserError before any episode runs)."""
    if not given:
        return []
    from robotrl.envs import perturb
    from robotrl.run.tracking import velocity_task

    if not velocity_task(task):
        raise UserError(f"--perturb measures velocity tracking; {task} is not a velocity-tracking task (legged:"
                        "ROBOT.toml, robotrl/Quadruped-v0)")
    texts = [t for g in given for t in (STANDARD_CONDITIONS if g.strip() == "standard" else (g,))]
    return [perturb.parse_condition(t) for t in texts]


def _without_episodes(report: dict[str, Any]) -> dict[str, Any]:
    """A tracking report without its per-episode lists (the JSON of `eval --json`)."""
    def strip(part: dict[str, Any]) -> dict[str, Any]:  # NaN (no step counted): null, as JSON has no NaN
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in part.items()
                if k != "per_episode"}

    return {"settle_s": report["settle_s"], "random": strip(report["random"]), "scripted": strip(report["scripted"]),
            "perturbed": [{**row, "random": strip(row["random"]), "scripted": strip(row["scripted"])}
                          for row in report["perturbed"]]}


def _onnx_policy(path: str):
    from robotrl.deploy.runtime import CardError, OnnxPolicy

    try:
        policy = OnnxPolicy(path)
    except CardError as e:
        raise UserError(str(e)) from None
    card = _check_training_fields(policy.card, path)
    return policy, card["task_id"], int(card["training"]["steps"]), card["algo"]


def _cmd_export(args: argparse.Namespace) -> int:
    from robotrl.policies.export import export_run

    info = export_run(args.run_dir, args.out)
    if args.json:
        print(json.dumps({k: v for k, v in info.items() if k != "card"}))
    else:
        print(f"{info['path']}: {info['bytes']:,} bytes, {info['graph_parameters']:,} numbers in the graph "
              f"({info['actor_parameters']:,} actor parameters + normaliser and action bounds); "
              f"max |onnxruntime - torch| = {info['parity_max_abs_diff']:.2e} in normalised action units (limit "
              f"{info['parity_limit']:.2g}: passed), {info['parity_max_abs_diff_robot_units']:.2e} in robot units")
    return 0


def _load_card(path: str) -> dict[str, Any]:
    """The validated card of an exported actor; a bad file is a one-line user error."""
    from robotrl.deploy.runtime import CardError, load_card

    try:
        card = load_card(path)
    except CardError as e:
        raise UserError(str(e)) from None
    return _check_training_fields(card, path)


def _check_training_fields(card: dict[str, Any], path: str) -> dict[str, Any]:
    from robotrl.card import check_training_fields

    try:
        check_training_fields(card, repr(str(path)))
    except ValueError as e:
        raise UserError(str(e)) from None
    return card


def _cmd_card(args: argparse.Namespace) -> int:
    from robotrl.run.evaluate import episode_count

    card = _load_card(args.onnx)
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
        return 0
    spec, tr, ev = card["spec"], card["training"], card.get("evaluation") or {}
    print(f"task        {card['task_id']}  ({card['algo']}, {tr['steps']:,} steps, seed {tr['seed']})")
    period = card.get("control_period")
    print(f"control     {f'{period} s ({1 / period:.0f} Hz)' if period else 'unknown'}")
    if ev:
        extra = f", success rate {ev['success_rate']:.0%}" if "success_rate" in ev else ""
        print(f"evaluation  {ev['mean_return']:.1f} +- {ev['std_return']:.1f} over "
              f"{episode_count(ev['episodes'])}{extra}")
    norm = card["normalizer"]
    frozen = f"frozen after {norm['frozen_after_steps']:,} steps" if norm["enabled"] else "none"
    print(f"normalizer  {frozen}")
    s2r = {k: v for k, v in (card.get("sim2real") or {}).items() if (any(v) if isinstance(v, list) else v)}
    print(f"sim2real    {', '.join(f'{k} {v}' for k, v in s2r.items()) or 'none'}")
    print(f"robotrl     {card['robotrl_version']}")
    from robotrl.spec import TaskSpec

    try:
        elements = TaskSpec.from_dict(spec)
    except (ValueError, TypeError) as e:
        raise UserError(f"{args.onnx!r}: the policy card's spec: {e}") from None
    _print_elements(elements)
    return 0


def _print_elements(spec: Any) -> None:
    """The observation and action elements of a `TaskSpec`, one per line."""
    print(f"observation ({spec.obs_dim}):")
    for i, e in enumerate(spec.observation):
        clip = f"  clipped to +-{e.clip:g}" if e.clip is not None else ""
        if e.range is not None:
            clip += f"  range [{e.range[0]:g}, {e.range[1]:g}]"
        if e.kind == "joint_pos_rel":
            clip += f"  minus default {e.offset:g}"
        print(f"  {i:3d}  {e.label():45s} {e.unit}{clip}")
    print(f"action ({spec.act_dim}):")
    for i, a in enumerate(spec.action):
        print(f"  {i:3d}  {a.joint:30s} {a.kind:9s} [{a.low:g}, {a.high:g}] {a.unit}")


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robotrl.run.plot import plot_runs

    out = args.out or (Path(args.run_dirs[0]) / "learning_curve.png" if len(args.run_dirs) == 1
                       else Path("learning_curves.png"))
    print(plot_runs(args.run_dirs, out, metric=args.metric))
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from robotrl.envs import list_tasks, task_spec

    if args.spec:
        spec = task_spec(args.spec)
        if args.json:
            print(spec.to_json())
            return 0
        print(f"{spec.task_id}: control period {spec.control_period} s, {spec.max_episode_steps} steps per episode")
        _print_elements(spec)
        return 0
    rows = list_tasks()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'task':26s} {'obs':>4s} {'act':>4s} {'action':9s} {'rate':>7s} {'steps':>6s}  description")
    for r in rows:
        print(f"{r['task']:26s} {r['obs_dim']:4d} {r['act_dim']:4d} {r['action']:9s} {r['control_hz']:5.0f}Hz "
              f"{r['episode_steps']:6d}  {r['summary']}")
    print("\nAny Gymnasium id with a Box action space also trains (with a generic, non-deployable spec).")
    return 0


def _need_ros() -> None:
    try:
        import rclpy  # noqa: F401
    except ImportError:
        raise UserError("this command needs ROS 2's rclpy: source a ROS 2 installation (Humble, Jazzy, Kilted) "
                        "or pip install 'robotrl[ros]' (x86_64)") from None


def _cmd_deploy(args: argparse.Namespace) -> int:
    _load_card(args.onnx)  # fail here, with one line, before ROS starts
    _need_ros()
    from robotrl.deploy.node import main as node_main

    extra = list(args.ros_args)
    if extra and extra[0] != "--ros-args":
        raise UserError(f"unexpected arguments {' '.join(extra)!r}; ROS parameters go after --ros-args")
    # the policy given here wins over any parameter; autostart unless a parameter says otherwise
    return node_main(["robotrl_deploy", "--ros-args", *extra[1:]], policy=args.onnx, autostart_default=True)


def _check_deployable_task(task: str) -> None:
    """A task the node can run (every observation element named), else a one-line error."""
    from robotrl.envs import check_task, task_spec

    check_task(task)
    if not task_spec(task).deployable:
        raise UserError(f"task {task!r} has unnamed observation elements; use a robotrl/ task (robotrl tasks)")


def _cmd_sim_robot(args: argparse.Namespace) -> int:
    task, seed = args.task, args.seed
    if task.endswith(".onnx") or task.startswith("pretrained:"):  # an actor: its card's task and evaluation seed
        from robotrl.run.evaluate import check_actor_fits_task, eval_seed

        card = _load_card(task)
        check_actor_fits_task(card, card["task_id"], task)  # a robot config edited since training: refused
        task, seed = card["task_id"], eval_seed(int(card["training"]["seed"])) if seed is None else seed
    seed = 0 if seed is None else seed
    from pathlib import Path

    if Path(task).is_dir():
        raise UserError(f"{task!r} is a folder: give a task (robotrl tasks) or an exported actor, e.g. "
                        f"{str(Path(task) / 'actor.onnx')!r} (robotrl export RUN writes it)")
    _check_deployable_task(task)
    _need_ros()
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from robotrl.deploy.node import init_without_signal_handlers
    from robotrl.simrobot.node import SimRobot, domain_id, rivals_error

    # SIGINT/SIGTERM only set a flag, seen between waits: with rclpy's own handlers a signal could invalidate the
    # context between the loop's check and the next wait, and the wait raised RCLError (a traceback)
    stopping = []
    init_without_signal_handlers([])
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    robot = SimRobot(task, episodes=args.episodes, seed=seed, lockstep=args.lockstep)
    try:
        rivals = robot.wait_for_rivals(lambda t: rclpy.spin_once(robot, timeout_sec=t))
        if rivals and not stopping:  # two robots on one set of topics: a node would go active on the wrong one
            raise UserError(rivals_error(rivals, domain_id(), "give each its own domain: ROS_DOMAIN_ID=N robotrl "
                                         "sim-robot ..., and your node with the same ROS_DOMAIN_ID=N"))
        while rclpy.ok() and not robot.done and not stopping:
            rclpy.spin_once(robot, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):  # an rclpy without the option keeps its handlers
        pass
    finally:
        robot.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    if robot.returns:
        print(json.dumps({"returns": robot.returns, "mean_return": float(sum(robot.returns) / len(robot.returns))}))
    return 0


def _cmd_sim2sim(args: argparse.Namespace) -> int:
    card = _load_card(args.onnx)
    if not card["spec"].get("deployable"):
        raise UserError(f"{args.onnx}: task {card['task_id']!r} has unnamed observation elements; train on a "
                        "robotrl/ task to deploy")
    _need_ros()
    from robotrl.simrobot.sim2sim import run

    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.task is not None:
        _check_deployable_task(args.task)
    result = run(args.onnx, episodes=args.episodes, lockstep=not args.free_running, tolerance=args.tolerance,
                 log=log, task=args.task, domain_id=args.domain_id,
                 isolate=not args.join and args.domain_id is None, other_robot=args.other_robot)
    if args.json:
        print(json.dumps(result))
    return 0 if result["ok"] else 1


def _cmd_resume(args: argparse.Namespace) -> int:
    from robotrl.run.train import resume

    resume(args.run_dir, total_steps=args.steps, device=args.device, progress=not args.no_progress)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    if (args.study is None) == (args.resume is None):
        raise UserError("give a STUDY.toml, or --resume DIR to continue a study" if args.resume is None
                        else "give a STUDY.toml or --resume DIR, not both")
    if args.resume and args.out:
        raise UserError("--out is the folder of a new study; --resume DIR continues the one in DIR")
    if args.address and args.cpus:
        raise UserError("--cpus sizes a local Ray; a cluster (--address) has the CPUs its nodes give it")
    from robotrl.sweep.results import markdown
    from robotrl.sweep.runner import describe, prepare, run

    if args.dry_run:
        print(describe(*prepare(args.study, resume_dir=args.resume, out=args.out, address=args.address)), end="")
        return 0
    folder, rows = run(args.study, resume_dir=args.resume, out=args.out, address=args.address, cpus=args.cpus)
    print(markdown(rows), end="")
    curves = "curves.png" if (folder / "curves.png").is_file() else "no curves.png (no trial logged its curve column)"
    print(f"study {folder}: results.md, results.csv, {curves}, best.toml (robotrl train {rows[0]['algo']} "
          f"{rows[0]['task']} --config {folder / 'best.toml'}), trials/")
    return 0


def _cmd_video(args: argparse.Namespace) -> int:
    from robotrl.video.cli import main as video_main

    return video_main(args)


def _cmd_robot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robotrl.envs.robot import Robot
    from robotrl.envs.robot_config import RobotConfig
    from robotrl.envs.robot_inspect import inspect_report

    if args.model.endswith(".toml"):
        if args.config:
            raise UserError("give the model or the config as MODEL, and --config only with a model")
        config = RobotConfig.load(args.model)
    elif args.config:
        config = RobotConfig.load(args.config)
        if config.model.resolve() != Path(args.model).resolve():
            raise UserError(f"{args.config} describes model {str(config.model)!r}, not {args.model!r}")
    else:
        config = RobotConfig(model=Path(args.model))
    text, failing = inspect_report(Robot(config))
    print(text)
    if failing:  # a user's mistake like any other: exit 2 after the report that names it
        where = f"robot config {config.path}" if config.path else f"model {config.model}"
        raise UserError(f"{where}: template {' and '.join(failing)} cannot train on this robot (see 'template ...' "
                        f"above)")
    return 0


COMMANDS = {"robot": _cmd_robot, "train": _cmd_train, "eval": _cmd_eval, "plot": _cmd_plot, "export": _cmd_export,
            "card": _cmd_card, "deploy": _cmd_deploy, "sim-robot": _cmd_sim_robot, "sim2sim": _cmd_sim2sim,
            "tasks": _cmd_tasks, "resume": _cmd_resume, "video": _cmd_video, "sweep": _cmd_sweep}


TRAIN_EXTRA = ("torch", "gymnasium", "mujoco", "onnx", "tensorboard", "matplotlib", "tqdm")  # pyproject's `train`
BUG_HINT = ("robotrl: internal error: this is a bug in robotrl, not a mistake of yours; please report it with the "
            "command line and the traceback above")


def _one_line(text: str) -> str:
    """The message on one line; a number of 30+ digits (10**400 in a file) shortened to its first digits and length."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or "(no message)"
    return shorten_numbers(line)


def _os_error(e: OSError, command: str = "") -> str:
    """'cannot ...: <reason>' for an operating-system refusal (full disk, read-only, missing folder, ...); a full
    disk during `train`/`resume` adds how to continue the run."""
    import errno

    reason = e.strerror or type(e).__name__
    where = f" {e.filename!s}" if e.filename is not None else ""
    if e.filename2 is not None:
        where += f" -> {e.filename2!s}"
    run = " (a stopped run continues with 'robotrl resume RUN_DIR')" if command in ("train", "resume", "sweep") else ""
    hint = {errno.ENOSPC: f"; free some space{run}",
            errno.EFBIG: "; the file is larger than this process may write (ulimit -f) or the file system allows",
            errno.EDQUOT: "; free some space or raise the quota",
            errno.EROFS: "; choose a writable location",
            errno.EACCES: "; check the permissions or choose another location"}.get(e.errno or -1, "")
    return f"the operating system refused{where}: {reason}{hint}"


def _check_mujoco_gl() -> None:
    """MuJoCo loads the OpenGL library MUJOCO_GL names when it is imported: one that is not installed (osmesa without
    libOSMesa) fails every command there, so it is named in one line, before any work."""
    import os

    gl = os.environ.get("MUJOCO_GL", "").strip()
    if not gl or "mujoco" in sys.modules:
        return
    try:
        import mujoco  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name == "mujoco":  # not installed: the command that needs it says so
            return
        raise UserError(f"MUJOCO_GL={gl}: MuJoCo could not load that OpenGL back-end ({_one_line(str(e))[:120]}); "
                        "install it (osmesa: apt-get install libosmesa6) or unset MUJOCO_GL") from None
    except Exception as e:  # an ImportError, or PyOpenGL's AttributeError on a library it could not load
        raise UserError(f"MUJOCO_GL={gl}: MuJoCo could not load that OpenGL back-end ({type(e).__name__}: "
                        f"{_one_line(str(e))[:120]}); install it (osmesa: apt-get install libosmesa6) or unset "
                        "MUJOCO_GL") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status: 0 done; 2 a mistake in the input, or the operating system said no
    (one line on stderr); 128 + the signal for a run stopped with its checkpoint (130 Ctrl-C, 143 SIGTERM, 129
    SIGHUP); 1 a bug in robotrl (traceback and a hint to report it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
        args.argv = argv
        if args.command not in ("card", "deploy"):  # the robot side imports no mujoco
            _check_mujoco_gl()
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"robotrl: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes stderr with it
            print("robotrl: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except BrokenPipeError:  # the reader went away (robotrl card ... | head): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in TRAIN_EXTRA:
            return _bug()
        command = argv[0] if argv else "robotrl"
        print(f"robotrl: error: 'robotrl {command}' needs the Python package {top!r} of the training extra, which "
              "is not installed (a robot-side install has only the runtime): pip install 'robotrl[train]'",
              file=sys.stderr)
        return 2
    except OSError as e:
        print(f"robotrl: error: {_one_line(_os_error(e, argv[0] if argv else ''))}", file=sys.stderr)
        return 2
    except MemoryError:
        print("robotrl: error: out of memory; use fewer or smaller environments, networks, batches or a smaller "
              "--buffer-size", file=sys.stderr)
        return 2
    except Exception:
        return _bug()


def _bug() -> int:
    """The exception being handled is a bug of ours: its traceback, and a request to report it."""
    import traceback

    traceback.print_exc()
    print(BUG_HINT, file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
