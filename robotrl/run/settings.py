"""A run's settings that are not hyper-parameters of its algorithm (`RunConfig`: steps, seed, workers, checkpoints,
evaluation, device, threads, the sim-to-real randomisation, and `with_task_sim2real`: a task template's). The training
loop (`robotrl.run.train`) and the run directory's reader (`robotrl.run.rundir`) both use it; it depends on neither."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from robotrl.algorithms.functional import available_cores
from robotrl.algorithms.registry import DEFAULT_STEPS
from robotrl.envs.sim2real import Sim2Real

MAX_STEPS = 10**12  # a trillion environment steps: years of one machine; more is a typo


@dataclass
class RunConfig(Sim2Real):
    """Settings of a run that are not hyper-parameters of the algorithm. The sim-to-real settings
    (`Sim2Real`'s fields: randomize_mass, ..., obs_noise, action_delay) apply to the training envs."""

    total_steps: int = DEFAULT_STEPS
    """Environment steps to train for, all envs together (the last iteration may overshoot)."""
    seed: int = 0
    """Seeds network initialisation, exploration and the envs."""
    workers: int = -1
    """Env worker processes besides the main one; -1: one per spare CPU core; 0: none. A template task (legged:,
    robotrl/Quadruped-v0) steps all its worlds in this process, its physics on threads, and takes no workers."""
    checkpoint_every: int = 50_000
    """Write checkpoints/latest.pt every this many steps (and always at the end or on Ctrl-C)."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes at the end of training."""
    eval_every: int = 0
    """Also evaluate every this many steps (0: only at the end); logged as eval/*."""
    device: str = "cpu"
    """Torch device for the learner: cpu or cuda."""
    threads: int = 1
    """Torch intra-op threads of the learner's large-batch updates (PPO, TRPO; everywhere for the off-policy
    algorithms); acting uses one. More than one pays on an idle machine only: beside other busy processes, threads
    that wait for each other at every operation run far slower than one. Results are bit-identical only for the same
    number."""
    video: bool = False
    """Film the final evaluation's first episode to video.mp4 in the run directory (robotrl.video)."""
    randomize: bool = True
    """Train with the sim-to-real settings the task's template gives its tasks (the legged template's: friction,
    servo strength, base payload and centre of mass, 0-20 ms latency, sensor noise) where the run does not set them;
    false (--no-randomize): only those the run sets. Other tasks have none. Evaluation runs the nominal robot."""

    def __post_init__(self) -> None:
        if not 0 < self.total_steps <= MAX_STEPS:
            raise ValueError(f"--steps must be a positive number of steps, at most {MAX_STEPS:.0e}, got "
                             f"{self.total_steps}")
        if not 0 < self.checkpoint_every <= MAX_STEPS:
            raise ValueError(f"--checkpoint-every must be positive, at most {MAX_STEPS:.0e}, got "
                             f"{self.checkpoint_every}")
        if self.eval_episodes < 0 or self.eval_every < 0:
            raise ValueError("--eval-episodes and --eval-every must be >= 0")
        if not 1 <= self.threads <= 1024:
            raise ValueError(f"--threads must be in [1, 1024], got {self.threads}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        if not -1 <= self.workers <= 1024:
            raise ValueError(f"--workers must be -1 (one per spare core) or in [0, 1024], got {self.workers}")
        if self.video and self.eval_episodes < 1:
            raise ValueError("--video films the final evaluation; it needs --eval-episodes >= 1")
        if self.eval_episodes > 100_000:
            raise ValueError(f"--eval-episodes must be <= 100000, got {self.eval_episodes}")
        if not re.fullmatch(r"cpu|cuda(:\d{1,3})?", self.device):
            raise ValueError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        self.check_sim2real()

    def sim2real(self) -> Sim2Real:
        return Sim2Real(**Sim2Real.to_dict(self))


def with_task_sim2real(run: RunConfig, task: str, given: Iterable[str]) -> RunConfig:
    """`run` with its task's template's sim-to-real settings (`robotrl.envs.templates.Template.sim2real`) in those
    sim-to-real settings that are not `given` (set by a config file or a flag), unless `run.randomize` is off: the
    layer between the defaults and the config file, applied last because a later layer may turn it off. A run records
    the values it used (config.json, and the card's ``sim2real``), so a resumed run keeps them."""
    from robotrl import config as cfgmod
    from robotrl.envs import task_template

    template = task_template(task)
    defaults = dict(template.sim2real) if template is not None and run.randomize else {}
    given = set(given)
    chosen = {k: v for k, v in defaults.items() if k not in given}
    if not chosen:
        return run
    return cfgmod.from_dict(RunConfig, chosen, base=run, source=f"the sim-to-real defaults of the {template.name} "
                                                                "template")


def resolve_workers(requested: int, num_envs: int) -> int:
    """Worker processes to start: never more than envs to give them, nor than this machine's cores (each is
    a Python process with its own MuJoCo, a few hundred MB: `--workers 1000` must not exhaust the memory)."""
    if requested >= 0:
        return min(requested, num_envs - 1, available_cores())
    return max(0, min(available_cores() - 1, num_envs - 1))
