"""The study file: what to run, read and checked in one place before anything starts. No Ray here.

    [study]
    algo = "ppo"                     # or a list: ["ppo", "trpo"]; every (algo, task) pair is searched apart
    task = "Hopper-v5"               # or a list
    seeds = 5                        # seeds 0..4 per configuration, or a list [0, 1, 2]
    sampler = "grid"                 # grid | random | tpe (Optuna's Tree-structured Parzen Estimator)
    trials = 8                       # budget: configurations per (algo, task) for random and tpe
    sampler_seed = 0
    max_failures = 3                 # restarts of a trial whose worker or node dies (it resumes from its checkpoint)
    max_concurrent = 0               # trials at once; 0: one per CPU the Ray cluster has
    curve = "rollout/ep_return_mean" # metrics.csv column of the learning curves

    [run]                            # fixed run settings of every trial (robotrl train's --steps, ... as in --config)
    total_steps = 1_000_000
    [ppo]                            # fixed hyper-parameters of an algorithm (one table per algorithm)
    num_envs = 8

    [space]                          # searched: a list is a grid axis (random/tpe: a choice), a table a range
    learning_rate = { log_uniform = [1e-5, 1e-3] }
    clip_range = [0.1, 0.2, 0.3]
    "run.obs_noise" = { uniform = [0.0, 0.05] }    # "run." names a run setting; otherwise the algorithm's field

    [early_stop]                     # optional: ASHA on eval/mean_return (needs [run] eval_every)
    min_steps = 100_000              # first rung; rungs at min_steps * reduction**k
    reduction = 3                    # keep the top 1/reduction at each rung

Every value is checked with the same code as ``robotrl train --config`` (`robotrl.config.from_dict`
on top of the per-task defaults), and every message names the study file and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robotrl import algos as algo_registry
from robotrl import config as cfgmod
from robotrl.errors import UserError
from robotrl.spec import finite_number

SAMPLERS = ("grid", "random", "tpe")
RANGES = ("uniform", "log_uniform", "int_uniform")
STUDY_KEYS = {"algo", "task", "seeds", "sampler", "trials", "sampler_seed", "max_failures", "max_concurrent",
              "curve"}
TOP_KEYS = {"study", "run", "space", "early_stop"}
MAX_TRIALS = 100_000


@dataclass(frozen=True)
class Dim:
    """One searched setting: `section` is "run" or "algo"; `values` for a list, `low`/`high` for a range."""

    key: str
    section: str
    name: str
    kind: str  # "choice" | one of RANGES
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "log_uniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.randint(int(self.low), int(self.high))

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial proposes."""
        if self.kind == "choice":
            # Optuna's categorical takes None/bool/int/float/str: lists (hidden sizes) travel as their index
            if all(v is None or isinstance(v, bool | int | float | str) for v in self.values):
                return trial.suggest_categorical(self.key, list(self.values))
            return self.values[trial.suggest_categorical(self.key, list(range(len(self.values))))]
        if self.kind == "int_uniform":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log_uniform")


@dataclass(frozen=True)
class EarlyStop:
    min_steps: int
    reduction: int

    def rungs(self, total_steps: int) -> list[int]:
        out, r = [], self.min_steps
        while r < total_steps:
            out.append(r)
            r *= self.reduction
        return out


@dataclass
class Study:
    path: Path
    algos: list[str]
    tasks: list[str]
    seeds: list[int]
    sampler: str
    trials: int
    sampler_seed: int
    max_failures: int
    max_concurrent: int
    curve: str
    run: dict[str, Any]
    fixed: dict[str, dict[str, Any]]  # algo -> fixed hyper-parameters
    space: list[Dim]
    early_stop: EarlyStop | None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return list(itertools.product(self.algos, self.tasks))

    def configurations(self, algo: str, task: str) -> list[dict[str, Any]]:
        """grid: every combination; random: `trials` draws (seeded); tpe: none up front (asked as it runs)."""
        if self.sampler == "grid":
            axes = [[(d.key, v) for v in d.values] for d in self.space]
            return [dict(combo) for combo in itertools.product(*axes)]
        if self.sampler == "random":
            rng = random.Random(f"{self.sampler_seed}/{algo}/{task}")
            return [{d.key: d.sample(rng) for d in self.space} for _ in range(self.trials)]
        return []

    def settings(self, algo: str, task: str, params: dict[str, Any], *, source: str) -> tuple[Any, Any]:
        """(RunConfig, algorithm config) of one configuration, checked as `robotrl train --config` checks."""
        from robotrl.train import RunConfig

        _, Config = algo_registry.get(algo).load()
        default_steps, overrides = algo_registry.task_defaults(algo, task)
        cfg = cfgmod.from_dict(Config, overrides, source=f"per-task defaults of {task}")
        cfg = cfgmod.from_dict(Config, self.fixed.get(algo, {}), base=cfg, source=f"{self.path} [{algo}]")
        run = cfgmod.from_dict(RunConfig, self.run_settings(), base=RunConfig(total_steps=default_steps),
                               source=f"{self.path} [run]")
        algo_p = {d.name: params[d.key] for d in self.space if d.section == "algo" and d.key in params}
        run_p = {d.name: params[d.key] for d in self.space if d.section == "run" and d.key in params}
        cfg = cfgmod.from_dict(Config, algo_p, base=cfg, source=source)
        run = cfgmod.from_dict(RunConfig, run_p, base=run, source=source)
        if hasattr(cfg, "check_spec"):  # settings that depend on the task, as robotrl train checks them
            try:
                cfg.check_spec(_task_spec(task))
            except UserError as e:
                raise UserError(f"{source}: {e}") from None
        return run, cfg

    def run_settings(self) -> dict[str, Any]:
        """The [run] table with the trial defaults: no env worker processes (one trial per core)."""
        return {"workers": 0, **self.run}

    def config_file(self, algo: str, task: str, params: dict[str, Any]) -> dict[str, Any]:
        """A configuration as a `robotrl train --config` file: [run] and [ALGO] tables (no seed)."""
        run, cfg = self.settings(algo, task, params, source=f"{self.path} [space]")
        run_d = cfgmod.to_dict(run)
        run_d.pop("seed")
        return {"algo": algo, "task": task, "run": run_d, algo: cfgmod.to_dict(cfg)}

    def cpus_per_trial(self) -> int:
        """Cores a trial occupies: its main process plus its env workers ([run] workers)."""
        return 1 + max(0, int(self.run_settings()["workers"]))


def _err(path: Path, msg: str) -> UserError:
    return UserError(f"study file {str(path)!r}: {msg}")


def _str_list(path: Path, key: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise _err(path, f"[study] {key}: expected a name or a list of names, got {value!r}")
    if len(set(items)) != len(items):
        raise _err(path, f"[study] {key}: {value!r} names one twice")
    return items


def _int(path: Path, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _err(path, f"{key}: expected an integer in [{lo}, {hi}], got {value!r}")
    return value


def load(path: str | Path) -> Study:
    """Read and check a study file; raises UserError naming the file and the field."""
    p = Path(path)
    data = cfgmod.load_file(p, "study file")
    if p.suffix != ".toml":
        raise _err(p, "a study is a .toml file")
    unknown = sorted(set(data) - TOP_KEYS - set(algo_registry.ALGORITHMS))
    if unknown:
        raise _err(p, f"unknown table or key {unknown[0]!r} (expected [study], [run], [space], [early_stop] "
                      f"and one table per algorithm: {', '.join(algo_registry.ALGORITHMS)})")
    for key in TOP_KEYS | set(algo_registry.ALGORITHMS):
        if key in data and not isinstance(data[key], dict):
            raise _err(p, f"[{key}] must be a table, got {type(data[key]).__name__}")
    st = data.get("study")
    if st is None:
        raise _err(p, "missing the [study] table (algo, task, seeds, ...)")
    bad = sorted(set(st) - STUDY_KEYS)
    if bad:
        import difflib

        hint = difflib.get_close_matches(bad[0], sorted(STUDY_KEYS), n=1)
        raise _err(p, f"[study] unknown key {bad[0]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    for key in ("algo", "task"):
        if key not in st:
            raise _err(p, f"[study] {key}: missing (the algorithm(s) and task(s) to run)")
    algos = _str_list(p, "algo", st["algo"])
    for a in algos:
        if a not in algo_registry.ALGORITHMS:
            raise _err(p, f"[study] algo: unknown algorithm {a!r} (one of {', '.join(algo_registry.ALGORITHMS)})")
    tasks = _str_list(p, "task", st["task"])
    from robotrl.envs import canonical_task, check_task

    for t in tasks:
        try:
            check_task(t)
        except UserError as e:
            raise _err(p, f"[study] task: {e}") from None
    tasks = [canonical_task(t) for t in tasks]
    seeds_v = st.get("seeds", 1)
    if isinstance(seeds_v, int) and not isinstance(seeds_v, bool):
        seeds = list(range(_int(p, "[study] seeds", seeds_v, 1, 10_000)))
    elif isinstance(seeds_v, list) and seeds_v:
        seeds = [_int(p, "[study] seeds", s, 0, 2**32 - 1) for s in seeds_v]
        if len(set(seeds)) != len(seeds):
            raise _err(p, f"[study] seeds: {seeds_v!r} repeats a seed")
    else:
        raise _err(p, f"[study] seeds: expected a count or a list of seeds, got {seeds_v!r}")
    sampler = st.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise _err(p, f"[study] sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    trials = _int(p, "[study] trials", st.get("trials", 1 if sampler == "grid" else 10), 1, MAX_TRIALS)
    if sampler != "grid" and "trials" not in st:
        raise _err(p, f"[study] trials: missing (the budget: how many configurations {sampler} tries)")
    curve = st.get("curve", "rollout/ep_return_mean")
    if not isinstance(curve, str) or not curve:
        raise _err(p, f"[study] curve: expected a metrics.csv column name, got {curve!r}")
    group = curve.split("/")[0]
    if group not in ("rollout", "eval", "time", "train") or (group != "train" and curve not in CURVE_COLUMNS):
        raise _err(p, f"[study] curve: {curve!r} is not a metrics.csv column (one of {', '.join(CURVE_COLUMNS)}, "
                      "or the algorithm's own train/...)")
    study = Study(
        path=p, algos=algos, tasks=tasks, seeds=seeds, sampler=sampler, trials=trials,
        sampler_seed=_int(p, "[study] sampler_seed", st.get("sampler_seed", 0), 0, 2**32 - 1),
        max_failures=_int(p, "[study] max_failures", st.get("max_failures", 3), 0, 1000),
        max_concurrent=_int(p, "[study] max_concurrent", st.get("max_concurrent", 0), 0, 100_000),
        curve=curve, run=dict(data.get("run", {})), fixed={a: dict(data.get(a, {})) for a in algos},
        space=[], early_stop=None, raw=data)
    for a in set(algo_registry.ALGORITHMS) - set(algos):
        if a in data:
            raise _err(p, f"[{a}] is given but [study] algo does not run {a}")
    if "seed" in study.run:
        raise _err(p, "[run] seed: the seeds are [study] seeds")
    study.space = _space(p, data.get("space", {}), algos, sampler)
    if sampler == "grid":
        n = math.prod(len(d.values) for d in study.space)
        if n > MAX_TRIALS:
            raise _err(p, f"[space]: the grid has {n:,} configurations; more than {MAX_TRIALS:,}")
        study.trials = n
    if "early_stop" in data:
        study.early_stop = _early_stop(p, data["early_stop"])
    # every fixed setting, and every value or bound of the space, checked on every (algo, task) now
    for algo, task in study.pairs:
        run, _ = study.settings(algo, task, {}, source=f"{p} [space]")
        for d in study.space:
            for v in (d.values if d.kind == "choice" else (d.low, d.high)):
                v = int(v) if d.kind == "int_uniform" else v
                study.settings(algo, task, {d.key: v}, source=f"{p} [space] {d.key}")
        if study.early_stop is not None and run.eval_every <= 0:
            raise _err(p, "[early_stop] needs evaluations during training: set [run] eval_every (steps)")
        if study.early_stop is not None and not study.early_stop.rungs(run.total_steps):
            raise _err(p, f"[early_stop] min_steps {study.early_stop.min_steps:,} is not below [run] total_steps "
                          f"{run.total_steps:,}: no trial would ever be judged")
    if sampler == "grid":
        for algo, task in study.pairs:  # cross-field rules (a minibatch dividing a batch) of each combination
            for params in study.configurations(algo, task):
                study.settings(algo, task, params, source=f"{p} [space] {params}")
    return study


CURVE_COLUMNS = ("rollout/ep_return_mean", "rollout/ep_length_mean", "rollout/episodes", "eval/mean_return",
                 "eval/std_return", "eval/success_rate", "time/steps_per_s", "time/elapsed_s", "time/collect_s",
                 "time/update_s")
"""The metrics.csv columns every run has (eval/ with [run] eval_every; success_rate where the task has one)."""


@functools.cache
def _task_spec(task: str) -> Any:
    from robotrl.envs import task_spec

    return task_spec(task)


def _space(p: Path, space: dict[str, Any], algos: list[str], sampler: str) -> list[Dim]:
    from robotrl.train import RunConfig

    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    algo_fields = [{f.name for f in dataclasses.fields(algo_registry.get(a).load()[1])} for a in algos]
    dims = []
    for key, spec in space.items():
        where = f"[space] {key}"
        if key.startswith("run."):
            section, name = "run", key[4:]
            if name not in run_fields:
                raise _err(p, f"{where}: {name!r} is not a run setting ({', '.join(sorted(run_fields))})")
            if name == "seed":
                raise _err(p, f"{where}: the seeds are [study] seeds, not a searched setting")
        else:
            section, name = "algo", key
            missing = [a for a, fields in zip(algos, algo_fields, strict=True) if name not in fields]
            if missing:
                hint = " (a run setting: write \"run." + name + "\")" if name in run_fields else ""
                raise _err(p, f"{where}: {missing[0]} has no hyper-parameter {name!r}{hint}")
        if isinstance(spec, list):
            if not spec:
                raise _err(p, f"{where}: an empty list")
            dims.append(Dim(key, section, name, "choice", values=tuple(spec)))
            continue
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in RANGES:
            raise _err(p, f"{where}: expected a list of values or one of {{uniform|log_uniform|int_uniform = "
                          f"[low, high]}}, got {spec!r}")
        kind, bounds = next(iter(spec.items()))
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not all(finite_number(b) for b in bounds) or not bounds[0] < bounds[1]):
            raise _err(p, f"{where}: {kind} takes [low, high] with low < high, got {bounds!r}")
        if kind == "log_uniform" and bounds[0] <= 0:
            raise _err(p, f"{where}: log_uniform needs low > 0, got {bounds[0]!r}")
        if kind == "int_uniform" and not all(float(b).is_integer() for b in bounds):
            raise _err(p, f"{where}: int_uniform takes integer bounds, got {bounds!r}")
        if sampler == "grid":
            raise _err(p, f"{where}: a range cannot be a grid axis; give a list of values or use "
                          "sampler = \"random\" or \"tpe\"")
        dims.append(Dim(key, section, name, kind, low=bounds[0], high=bounds[1]))
    return dims


def _early_stop(p: Path, es: dict[str, Any]) -> EarlyStop:
    bad = sorted(set(es) - {"min_steps", "reduction"})
    if bad:
        raise _err(p, f"[early_stop] unknown key {bad[0]!r} (min_steps, reduction)")
    if "min_steps" not in es:
        raise _err(p, "[early_stop] min_steps: missing (the steps of the first rung)")
    return EarlyStop(_int(p, "[early_stop] min_steps", es["min_steps"], 1, 10**12),
                     _int(p, "[early_stop] reduction", es.get("reduction", 3), 2, 100))


def to_toml(data: dict[str, Any], header: str = "") -> str:
    """A config dict (scalars, lists and one level of tables) as TOML text (what tomllib reads back)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, str):
            import json

            return json.dumps(v)  # a JSON string is a TOML basic string
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} to TOML")

    lines = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for k, v in data.items():
        if not isinstance(v, dict) and v is not None:
            lines.append(f"{k} = {value(v)}")
    for name, table in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"
