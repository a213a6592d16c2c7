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
import difflib
import functools
import itertools
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robotrl import config as cfgmod
from robotrl.algorithms import registry as algo_registry
from robotrl.errors import UserError, brief_json
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
    _bases: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict, repr=False, compare=False)

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

    def settings(self, algo: str, task: str, params: dict[str, Any]) -> tuple[Any, Any]:
        """(RunConfig, algorithm config) of one configuration, checked as `robotrl train --config` checks it and
        against its task (`check_on_task`): what passes here is a trial that starts. Errors name the study file
        and the field once, as the study writes it ("[space] run.obs_noise must be >= 0, got -1.0")."""
        from robotrl.run.settings import RunConfig, with_task_sim2real

        _, Config = algo_registry.get(algo).load()
        run0, cfg0 = self._base(algo, task)
        dims = [d for d in self.space if d.key in params]
        if len(params) == 1 and dims:  # one value of one setting: a message about it names it as the study does
            given, note = {d.name: d.key for d in dims}, f"{dims[0].key} = {brief_json(params[dims[0].key])}"
        else:  # a combination: the message says which
            given, note = {}, "{" + ", ".join(f"{k} = {brief_json(v)}" for k, v in params.items()) + "}"
        algo_p = {d.name: params[d.key] for d in dims if d.section == "algo"}
        run_p = {d.name: params[d.key] for d in dims if d.section == "run"}
        cfg = _build(self.path, "[space]", Config, algo_p, cfg0, given, note)
        run = _build(self.path, "[space]", RunConfig, run_p, run0, given, note)
        run = with_task_sim2real(run, task, {*self.run_settings(), *run_p})  # as `robotrl train` gives them
        try:
            check_on_task(algo, task, run, cfg)
        except UserError as e:
            if params:
                raise _err(self.path, _place("[space]", str(e), given, note)) from None
            lead = _LEAD.match(str(e))  # the fixed tables: the one that set the setting the message is about
            table = next((t for t, keys in (("[run]", self.run), (f"[{algo}]", self.fixed.get(algo, {})))
                          if lead and lead[0] in keys), "")
            raise _err(self.path, _place(table, str(e), {lead[0]: lead[0]} if table and lead else None)) from None
        return run, cfg

    def _base(self, algo: str, task: str) -> tuple[Any, Any]:
        """The settings every configuration of (algo, task) starts from: defaults < per-task defaults < the
        study's [ALGO] and [run] tables; computed once (a grid checks each of its combinations on it)."""
        key = (algo, task)
        if key not in self._bases:
            from robotrl.run.settings import RunConfig

            _, Config = algo_registry.get(algo).load()
            default_steps, overrides = algo_registry.task_defaults(algo, task)
            cfg = cfgmod.from_dict(Config, overrides, source=f"per-task defaults of {task}")
            cfg = _build(self.path, f"[{algo}]", Config, self.fixed.get(algo, {}), cfg)
            run = _build(self.path, "[run]", RunConfig, self.run_settings(), RunConfig(total_steps=default_steps))
            self._bases[key] = (run, cfg)
        return self._bases[key]

    def run_settings(self) -> dict[str, Any]:
        """The [run] table with the trial defaults: no env worker processes (one trial per core)."""
        return {"workers": 0, **self.run}

    def config_file(self, algo: str, task: str, params: dict[str, Any]) -> dict[str, Any]:
        """A configuration as a `robotrl train --config` file: [run] and [ALGO] tables (no seed)."""
        run, cfg = self.settings(algo, task, params)
        run_d = cfgmod.to_dict(run)
        run_d.pop("seed")
        return {"algo": algo, "task": task, "run": run_d, algo: cfgmod.to_dict(cfg)}

    def cpus_per_trial(self) -> int:
        """Cores a trial occupies: its main process plus its env workers ([run] workers)."""
        return 1 + max(0, int(self.run_settings()["workers"]))


def _err(path: Path, msg: str) -> UserError:
    return UserError(f"study file {str(path)!r}: {msg}")


_SOURCE = "\x00study"  # the `source` given to cfgmod.from_dict, replaced by the study's own words in _place
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
_FIELD_OF_FLAG = {flag: name for name, flag in cfgmod.FLAG_NAMES.items()}
_LEAD = re.compile(r"[A-Za-z_]\w*(?=[: ]|$)")


def _place(table: str, msg: str, given: dict[str, str] | None = None, note: str = "") -> str:
    """A settings message in the study's words, naming each field once and as the study file writes it.

    `msg` comes from the config dataclasses (written for the command line too): it starts with the field
    ("learning_rate must be > 0, got -1.0", "obs_noise: expected float, got 'a'") and may name flags
    (--steps). `given`: field -> its name in the study, for the fields this table set (run.obs_noise for
    obs_noise); a message about one of them reads "[space] run.obs_noise must be >= 0, got -1.0", any other
    "[space] num_envs = 3: minibatch_size 64 must divide ...", with `note` saying which value was tried."""
    msg = _FLAG.sub(lambda m: _FIELD_OF_FLAG.get(f"--{m[1]}", m[1].replace("-", "_")), msg)
    lead = _LEAD.match(msg)
    if lead and given and lead[0] in given:
        return f"{table} {given[lead[0]]}{msg[lead.end():]}"
    head = " ".join(x for x in (table, note) if x)
    return f"{head}: {msg}" if head else msg


def _build(path: Path, table: str, cls: type, data: dict[str, Any], base: Any,
           given: dict[str, str] | None = None, note: str = "") -> Any:
    """`cfgmod.from_dict` (the checks of `robotrl train --config`) with messages in the study's words; a fixed
    table ([run], [ppo]: `given` None) also has its keys checked here, with a suggestion for a misspelt one."""
    if given is None:
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(data) - set(names), key=str)
        if unknown:
            hint = difflib.get_close_matches(str(unknown[0]), names, n=1)
            what = "a run setting" if table == "[run]" else f"a hyper-parameter of {table.strip('[]')}"
            raise _err(path, f"{table} unknown key {unknown[0]!r}: not {what}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else
                                f" ('robotrl train {table.strip('[]') if table != '[run]' else 'ALGO'} --help' "
                                "lists them)"))
        given = {k: k for k in data}
    try:
        return cfgmod.from_dict(cls, data, base=base, source=_SOURCE)
    except UserError as e:
        raise _err(path, _place(table, str(e).removeprefix(f"{_SOURCE}: "), given, note)) from None


def check_on_task(algo: str, task: str, run: Any, cfg: Any) -> None:
    """What `robotrl train` checks of a run's settings against its task and this machine (`robotrl.run.train.plan`),
    for a trial before Ray starts: the task builds with the run's sim-to-real settings, the algorithm's settings
    that depend on the task (SAC's target entropy), a warm-up that ends before the run does, a video this
    machine can record. Raises UserError naming the setting."""
    s2r = run.sim2real()
    on = s2r.switched_on()
    try:
        spec = _spec_with(task, on, s2r)
    except UserError as e:  # the task itself built without them (load): one of its sim-to-real settings failed
        raise UserError(f"{on[0]}: {e}" if on else str(e)) from None
    if hasattr(cfg, "check_spec"):
        cfg.check_spec(spec)
    starts = getattr(cfg, "learning_starts", None)  # off-policy: random actions before the first update
    if starts is not None and starts >= run.total_steps:
        raise UserError(f"learning_starts {starts:,} is not below total_steps {run.total_steps:,}: a trial would "
                        f"end before its first update; lower [{algo}] learning_starts or raise [run] total_steps")
    if run.video:
        try:
            _can_record(task)
        except UserError as e:
            raise UserError(f"video: {e}") from None


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

    for t in tasks:  # the task builds, with actions robotrl can train (continuous), a robot config that loads
        try:
            check_task(t)
            _task_spec(canonical_task(t))
        except UserError as e:
            raise _err(p, _place("[study]", str(e), {"task": "task"}, "task")) from None
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
        run, _ = study.settings(algo, task, {})
        for d in study.space:
            for v in (d.values if d.kind == "choice" else (d.low, d.high)):
                study.settings(algo, task, {d.key: int(v) if d.kind == "int_uniform" else v})
        if study.early_stop is not None and run.eval_every <= 0:
            raise _err(p, "[early_stop] needs evaluations during training: set [run] eval_every (steps)")
        if study.early_stop is not None and not study.early_stop.rungs(run.total_steps):
            raise _err(p, f"[early_stop] min_steps {study.early_stop.min_steps:,} is not below [run] total_steps "
                          f"{run.total_steps:,}: no trial would ever be judged")
    if sampler in ("grid", "random"):  # cross-field rules (a minibatch dividing a batch) of every configuration
        for algo, task in study.pairs:
            for params in study.configurations(algo, task):
                study.settings(algo, task, params)
    return study


CURVE_COLUMNS = ("rollout/ep_return_mean", "rollout/ep_length_mean", "rollout/episodes", "eval/mean_return",
                 "eval/std_return", "eval/success_rate", "time/steps_per_s", "time/elapsed_s", "time/collect_s",
                 "time/update_s")
"""The metrics.csv columns every run has (eval/ with [run] eval_every; success_rate where the task has one)."""


@functools.cache
def _task_spec(task: str) -> Any:
    from robotrl.envs import task_spec

    return task_spec(task)


_SPECS: dict[tuple[str, tuple[str, ...]], Any] = {}


def _spec_with(task: str, on: tuple[str, ...], s2r: Any) -> Any:
    """The task's spec, its env built with the sim-to-real wrappers a trial would use. Which wrappers a task gets
    depends only on which settings are on (`on`), their values being checked on their own: one env build per
    task and set of wrappers, not one per value (a random search of obs_noise has a new value every trial)."""
    if not on:
        return _task_spec(task)
    if (task, on) not in _SPECS:
        from robotrl.envs import task_spec

        _SPECS[task, on] = task_spec(task, sim2real=s2r)
    return _SPECS[task, on]


@functools.cache
def _can_record(task: str) -> None:
    from robotrl.video.film import check_can_record

    check_can_record(task)


def _space(p: Path, space: dict[str, Any], algos: list[str], sampler: str) -> list[Dim]:
    from robotrl.run.settings import RunConfig

    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    algo_fields = [{f.name for f in dataclasses.fields(algo_registry.get(a).load()[1])} for a in algos]
    dims = []
    for key, spec in space.items():
        where = f"[space] {key}"
        if key.startswith("run."):
            section, name = "run", key[4:]
            if name not in run_fields:
                hint = difflib.get_close_matches(name, sorted(run_fields), n=1)
                raise _err(p, f"{where}: not a run setting " + (f"(did you mean 'run.{hint[0]}'?)" if hint else
                                                                 f"({', '.join(sorted(run_fields))})"))
            if name == "seed":
                raise _err(p, f"{where}: the seeds are [study] seeds, not a searched setting")
        else:
            section, name = "algo", key
            missing = [a for a, fields in zip(algos, algo_fields, strict=True) if name not in fields]
            if missing:
                close = difflib.get_close_matches(name, sorted(algo_fields[algos.index(missing[0])]), n=1)
                hint = (f"; a run setting: write \"run.{name}\"" if name in run_fields else
                        f" (did you mean {close[0]!r}?)" if close else
                        f" ('robotrl train {missing[0]} --help' lists them)")
                raise _err(p, f"{where}: not a hyper-parameter of {missing[0]}{hint}")
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
