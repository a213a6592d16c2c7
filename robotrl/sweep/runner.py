"""The study driver on Ray: trials as Ray tasks, each an ordinary run directory trained by `robotrl.run.train`.

Why Ray core (tasks and one actor) and not Ray Tune: the run directory already is the trial's
checkpoint, its metrics and its result (atomic checkpoints, `resume`, eval.json), and it must stay
exactly what `robotrl train` writes, so that eval, plot, export and resume work on a trial. Tune would
add a second copy of every checkpoint (its own storage and trial state), pandas and pyarrow, and a
trainable API around our loop; what is left for the engine is placement, retries and a channel for
early stopping, which Ray core gives directly:

- a trial is `ray.remote(_trial)` with ``num_cpus`` = 1 + its env workers and ``max_retries`` =
  [study] max_failures: when its worker or its node dies, Ray runs it again elsewhere and the new
  attempt finds the run directory and calls `resume`, so it continues from its last checkpoint
  (the study folder must be on a filesystem every node sees: one machine, or NFS on a cluster);
- one `_Board` actor (no CPU, on the driver's node) takes each trial's evaluations, decides ASHA's
  stops, and holds the latest step of each running trial for the progress line;
- the driver keeps only the study's list of configurations (study.json) and asks Optuna's TPE for
  new ones (its journal file, optuna.log, makes it resumable); which trials are finished is read from
  the trials' own eval.json, so `robotrl sweep --resume DIR` after a killed driver runs what is not
  finished and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from robotrl.atomic import atomic_write_bytes, atomic_write_json
from robotrl.errors import Stopped, UserError
from robotrl.sweep import results
from robotrl.sweep.study import Study, load, to_toml

STATE_FORMAT = "robotrl-study/1"
EXTRA_HINT = "pip install 'robotrl[sweep]'"


def require(module: str = "ray") -> Any:
    """Import Ray or Optuna, or say in one line how to install them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"'robotrl sweep' needs {module}, which is not installed: {EXTRA_HINT}") from None


# -- the trial, on a Ray worker --------------------------------------------------------------------------


class _Reporter:
    """The `train`/`resume` callback of a trial: evaluations go to the board, which may stop the trial."""

    def __init__(self, board: Any, name: str, group: str) -> None:
        self.board, self.name, self.group = board, name, group
        self.last = 0.0

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        if self.board is None:
            return False
        import ray

        try:
            if "eval/mean_return" in metrics:
                return bool(ray.get(self.board.report.remote(self.name, self.group, step,
                                                             metrics["eval/mean_return"]), timeout=60))
            if time.monotonic() - self.last > 2.0:
                self.last = time.monotonic()
                self.board.progress.remote(self.name, step)
        except Exception:  # the driver (and its board) is gone: keep training, the run directory is the result
            self.board = None
        return False


def _wait_free(rd: Any, timeout: float = 120.0) -> None:
    """A process of an earlier attempt may still hold the run directory's lock for a moment (a node being torn
    down); wait for it rather than fail."""
    end = time.monotonic() + timeout
    while rd.holder() is not None and time.monotonic() < end:
        time.sleep(0.5)


def _trial(t: dict[str, Any], board: Any) -> dict[str, Any]:
    """Train (or continue) one trial in its run directory; returns its final evaluation."""
    import ray

    from robotrl.run.rundir import RunDir
    from robotrl.run.train import resume, train

    rd = RunDir(t["run_dir"])
    _wait_free(rd)
    done = results.trial_result(rd.path)
    if done is not None:  # finished by an attempt whose answer was lost
        return done
    start = 0
    if rd.config.is_file():
        state = rd.load_checkpoint(rd.read_settings(), missing_ok=True)
        start = int(state["num_steps"]) if state is not None else 0
    elif rd.path.exists():
        shutil.rmtree(rd.path)  # made and killed before its config.json: nothing in it to keep
    _append(Path(t["attempts"]), {"trial": t["name"], "start_step": start, "resumed": rd.config.is_file(),
                                  "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                                  "time": time.time()})
    report = _Reporter(board, t["name"], t["group"])
    if start and board is not None:  # the progress line shows where a resumed trial starts, not @0
        with contextlib.suppress(Exception):
            board.progress.remote(t["name"], start)
    if rd.config.is_file():
        resume(rd.path, progress=False, callback=report)
    else:
        train(t["algo"], t["task"], config_file=t["config_file"], run_flags={"seed": t["seed"]}, out=rd.path,
              progress=False, command=t["command"], callback=report)
    result = results.trial_result(rd.path)
    if result is None:
        raise UserError(f"trial {t['name']} ended without an eval.json (the study's [run] eval_episodes is 0?)")
    return result


def _append(path: Path, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def read_attempts(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / "attempts.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- early stopping and progress: one actor ---------------------------------------------------------------


class _Board:
    """ASHA (Li et al. 2020, asynchronous successive halving) on eval/mean_return, as a stopping rule: when a
    trial first reports an evaluation at or past a rung (min_steps * reduction**k steps), its value joins that
    rung's record (per algorithm and task); if it lies below the (1 - 1/reduction) quantile of the record,
    the trial's configuration stops (all its seeds: the table compares configurations)."""

    def __init__(self, rungs: list[int], reduction: int, records: dict[str, dict[str, float]],
                 stopped: list[str]) -> None:
        self.rungs, self.reduction = rungs, reduction
        self.records = records  # "group@rung" -> {trial: value}
        self.stopped = set(stopped)
        self.latest: dict[str, int] = {}

    def report(self, name: str, group: str, step: int, value: float) -> bool:
        import numpy as np

        self.latest[name] = step
        config = name.rsplit("-s", 1)[0]
        if config in self.stopped:
            return True
        for rung in self.rungs:
            rec = self.records.setdefault(f"{group}@{rung}", {})
            if step < rung or name in rec:
                continue
            rec[name] = value
            if value < float(np.quantile(list(rec.values()), 1 - 1 / self.reduction)):
                self.stopped.add(config)
                return True
        return False

    def progress(self, name: str, step: int) -> None:
        self.latest[name] = step

    def snapshot(self) -> dict[str, Any]:
        return {"latest": dict(self.latest), "stopped": sorted(self.stopped)}


def _asha_records(study: Study, folder: Path, configs: list[dict[str, Any]]) -> tuple[dict, list[str]]:
    """The rung records and stopped configurations, rebuilt from the trials' metrics.csv (for --resume)."""
    from robotrl.run.rundir import read_metrics

    records: dict[str, dict[str, float]] = {}
    stopped = []
    es = study.early_stop
    if es is None:
        return records, stopped
    for c in configs:
        for s in study.seeds:
            name = f"{c['id']}-s{s}"
            rdir = folder / "trials" / name
            r = results.trial_result(rdir)
            if r is not None and r["step"] < r["total_steps"]:
                stopped.append(c["id"])
            if not (rdir / "metrics.csv").is_file():
                continue
            evals = [(int(row["step"]), float(row["eval/mean_return"])) for row in read_metrics(rdir / "metrics.csv")[1]
                     if row.get("eval/mean_return") not in (None, "")]
            for rung in es.rungs(10**15):
                hit = next((v for st, v in evals if st >= rung), None)
                if hit is None:
                    break
                records.setdefault(f"{c['algo']}/{c['task']}@{rung}", {})[name] = hit
    return records, sorted(set(stopped))


# -- the driver ------------------------------------------------------------------------------------------


class _Driver:
    def __init__(self, study: Study, folder: Path, state: dict[str, Any], log: Any) -> None:
        self.study, self.folder, self.state, self.log = study, folder, state, log
        self.configs: list[dict[str, Any]] = state["configs"]
        self.finished: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, str] = {}
        self.skipped: set[str] = set()  # seeds of a stopped configuration that never ran
        self.optuna: dict[str, Any] = {}

    # configurations -------------------------------------------------------------------------------

    def add_config(self, algo: str, task: str, params: dict[str, Any], optuna_trial: int | None = None
                   ) -> dict[str, Any]:
        c = {"id": f"c{len(self.configs):03d}", "algo": algo, "task": task, "params": params,
             "optuna_trial": optuna_trial}
        data = self.study.config_file(algo, task, params)
        path = self.folder / "configs" / f"{c['id']}.toml"
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, to_toml(data, f"study {self.folder}, configuration {c['id']}: "
                                               f"{results.fmt_params(params)}").encode())
        self.configs.append(c)
        self.save()
        return c

    def config_toml(self, c: dict[str, Any]) -> tuple[dict[str, Any], str]:
        cmd = f"robotrl train {c['algo']} {c['task']} --config best.toml [--seed S]"
        return self.study.config_file(c["algo"], c["task"], c["params"]), cmd

    def trials_of(self, c: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for s in self.study.seeds:
            name = f"{c['id']}-s{s}"
            run_dir = self.folder / "trials" / name
            cfile = self.folder / "configs" / f"{c['id']}.toml"
            out.append({"name": name, "config": c["id"], "group": f"{c['algo']}/{c['task']}", "algo": c["algo"],
                        "task": c["task"], "seed": s, "run_dir": str(run_dir.resolve()),
                        "config_file": str(cfile.resolve()),
                        "attempts": str((self.folder / "attempts.jsonl").resolve()),
                        "command": f"robotrl train {c['algo']} {c['task']} --config {cfile} --seed {s} "
                                   f"--out {run_dir}"})
        return out

    def tpe_study(self, algo: str, task: str) -> Any:
        key = f"{algo}/{task}"
        if key not in self.optuna:
            optuna = require("optuna")
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = JournalStorage(JournalFileBackend(str(self.folder / "optuna.log")))
            sampler = optuna.samplers.TPESampler(seed=self.study.sampler_seed, n_startup_trials=min(
                10, max(2, self.study.trials // 3)))
            self.optuna[key] = optuna.create_study(study_name=key, storage=storage, sampler=sampler,
                                                   direction="maximize", load_if_exists=True)
        return self.optuna[key]

    def ask(self) -> dict[str, Any] | None:
        """A new TPE configuration for the (algo, task) pair with the fewest so far, or None when the budget
        is spent."""
        counts = {pair: sum(1 for c in self.configs if (c["algo"], c["task"]) == pair) for pair in self.study.pairs}
        pair = min(counts, key=counts.get)
        if counts[pair] >= self.study.trials:
            return None
        ost = self.tpe_study(*pair)
        trial = ost.ask()
        params = {d.key: d.suggest(trial) for d in self.study.space}
        try:
            self.study.settings(*pair, params)
        except UserError as e:  # a combination the cross-field rules refuse: a failed trial for TPE
            import optuna

            ost.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.log(f"sweep: TPE proposed a configuration that is refused ({e}); asking again")
            return self.ask() if counts[pair] + 1 < self.study.trials * 4 else None
        return self.add_config(*pair, params, optuna_trial=trial.number)

    def tell(self, c: dict[str, Any]) -> None:
        if c.get("optuna_trial") is None:
            return
        import optuna

        names = [t["name"] for t in self.trials_of(c)]
        if not all(n in self.finished or n in self.failed or n in self.skipped for n in names):
            return
        ost = self.tpe_study(c["algo"], c["task"])
        vals = [self.finished[n] for n in names if n in self.finished]
        state = optuna.trial.TrialState
        if any(v["step"] < v["total_steps"] for v in vals) or any(n in self.skipped for n in names):
            ost.tell(c["optuna_trial"], state=state.PRUNED, skip_if_finished=True)
        elif not vals:
            ost.tell(c["optuna_trial"], state=state.FAIL, skip_if_finished=True)
        else:
            ost.tell(c["optuna_trial"], sum(v["mean_return"] for v in vals) / len(vals), skip_if_finished=True)

    # bookkeeping -------------------------------------------------------------------------------------

    def save(self) -> None:
        self.state.update(configs=self.configs, failed=self.failed)
        atomic_write_json(self.folder / "study.json", self.state)

    def best(self) -> str:
        by: dict[str, list[float]] = {}
        for name, r in self.finished.items():
            if r["step"] >= r["total_steps"]:
                by.setdefault(name.rsplit("-s", 1)[0], []).append(r["mean_return"])
        if not by:
            return "best: none finished yet"
        cid = max(by, key=lambda k: sum(by[k]) / len(by[k]))
        c = next(c for c in self.configs if c["id"] == cid)
        v = by[cid]
        return f"best {cid} ({results.fmt_params(c['params'])}): {sum(v) / len(v):.1f} over {len(v)} seed(s)"

    # the loop ----------------------------------------------------------------------------------------

    def run(self, ray: Any, progress_every: float) -> None:
        study = self.study
        if study.sampler != "tpe" and not self.configs:
            for algo, task in study.pairs:
                for params in study.configurations(algo, task):
                    self.add_config(algo, task, params)
        for c in self.configs:  # what earlier drivers finished (eval.json) counts as finished now
            for t in self.trials_of(c):
                r = results.trial_result(Path(t["run_dir"]))
                if r is not None:
                    self.finished[t["name"]] = r
        records, stopped = _asha_records(study, self.folder, self.configs)
        es = study.early_stop
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        board = ray.remote(num_cpus=0, max_restarts=0)(_Board).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        ).remote(es.rungs(10**15)[:64] if es else [], es.reduction if es else 2, records, stopped)
        remote = ray.remote(_trial).options(num_cpus=study.cpus_per_trial(), max_retries=study.max_failures,
                                            retry_exceptions=False)
        for c in self.configs:
            if c.get("optuna_trial") is not None:
                self.tell(c)
        pending = deque(t for c in self.configs for t in self.trials_of(c) if t["name"] not in self.finished)
        inflight: dict[Any, dict[str, Any]] = {}
        total = len(self.configs) * len(study.seeds) if study.sampler != "tpe" else \
            study.trials * len(study.pairs) * len(study.seeds)
        last_line, last_time = "", 0.0
        snapshot: dict[str, Any] = {"latest": {}, "stopped": stopped}

        def fill() -> None:
            capacity = study.max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1))
                                                   // study.cpus_per_trial())
            while len(inflight) < capacity:
                if not pending and study.sampler == "tpe":
                    c = self.ask()
                    if c is not None:
                        pending.extend(self.trials_of(c))
                if not pending:
                    break
                t = pending.popleft()
                if t["config"] in snapshot["stopped"]:
                    self.skipped.add(t["name"])
                    self.tell(next(c for c in self.configs if c["id"] == t["config"]))
                    continue
                inflight[remote.remote(t, board)] = t

        while True:
            fill()
            if not inflight and not pending:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                t = inflight.pop(ref)
                try:
                    self.finished[t["name"]] = ray.get(ref)
                    self.failed.pop(t["name"], None)
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None) or e
                    self.failed[t["name"]] = results_line(cause)
                    self.log(f"sweep: trial {t['name']} failed: {self.failed[t['name']]}")
                except ray.exceptions.RayError as e:  # its worker or node died more than max_failures times
                    self.failed[t["name"]] = f"{type(e).__name__}: {results_line(e)}"
                    self.log(f"sweep: trial {t['name']} failed: {self.failed[t['name']]}")
                self.save()
                self.tell(next(c for c in self.configs if c["id"] == t["config"]))
            with contextlib.suppress(Exception):
                snapshot = ray.get(board.snapshot.remote(), timeout=10)
            fill()
            stopped_n = sum(1 for r in self.finished.values() if r["step"] < r["total_steps"]) + len(self.skipped)
            done_n = len(self.finished) + len(self.skipped)
            at = {t["name"]: snapshot["latest"].get(t["name"]) for t in list(inflight.values())[:4]}
            running = ", ".join(f"{name}@{step:,}" if step is not None else f"{name} (starting)"  # none reported yet
                                for name, step in at.items())
            line = (f"sweep: {done_n}/{total} done, {len(inflight)} running, {len(self.failed)} failed, "
                    f"{stopped_n} stopped early | {self.best()}" + (f" | running {running}" if running else ""))
            if (ready and line != last_line) or time.monotonic() - last_time > progress_every:
                self.log(line)
                last_line, last_time = line, time.monotonic()


def results_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:300]


def _lock(folder: Path) -> int:
    fd = os.open(folder / ".driver.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(f"study {str(folder)!r} is being run by another 'robotrl sweep'; wait for it or stop "
                        "it") from None
    return fd


def prepare(study_file: str | Path | None = None, *, resume_dir: str | Path | None = None,
            out: str | Path | None = None, address: str | None = None) -> tuple[Study, Path, dict[str, Any]]:
    """Everything checked before Ray starts, writing nothing: the study file (every trial's settings, on its
    task), the study's folder (free for a new study, a study to continue, writable either way) and, for a local
    Ray, the trials' learner device. Returns (study, its folder, its state)."""
    if resume_dir is not None:
        folder = Path(resume_dir)
        if not (folder / "study.json").is_file() or not (folder / "study.toml").is_file():
            raise UserError(f"--resume {str(folder)!r}: not a study folder (no study.json and study.toml)")
        study = load(folder / "study.toml")
        try:
            state = json.loads((folder / "study.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{folder / 'study.json'} is malformed: {e}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or not isinstance(
                state.get("configs"), list):
            raise UserError(f"{folder / 'study.json'}: not a {STATE_FORMAT} file")
        _check_writable(folder, "--resume")
    else:
        study = load(study_file)
        folder = Path(out) if out is not None else Path("runs") / f"sweep-{Path(study_file).stem}"
        if (folder / "study.json").exists():
            raise UserError(f"study folder {str(folder)!r} already holds a study; continue it with "
                            f"'robotrl sweep --resume {folder}' or choose another --out")
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--out {str(folder)!r} is a file, not a folder")
        _check_writable(folder, "--out" if out is not None else "the study's folder")
        state = {"format": STATE_FORMAT, "configs": [], "failed": {}}
    if address is None:  # a local Ray: the trials' learners run on this machine's devices
        from robotrl.run.train import check_device

        devices = {study.settings(algo, task, {})[0].device for algo, task in study.pairs}
        devices |= {v for d in study.space if d.key == "run.device" for v in d.values}
        for device in sorted(devices):
            try:
                check_device(device, hint="use device = \"cpu\" in the study's [run], or a cluster with --address")
            except UserError as e:
                raise UserError(f"study file {str(study.path)!r}: device {device!r}: "
                                f"{str(e).split(': ', 1)[-1]}") from None
    return study, folder, state


def describe(study: Study, folder: Path, state: dict[str, Any]) -> str:
    """What `robotrl sweep` would run (its --dry-run): each configuration with its settings and steps, the seeds,
    the folder; for a study to continue, which trials are finished. Ray is neither needed nor started."""
    seeds = ", ".join(map(str, study.seeds))
    configs = state["configs"] or [{"id": f"c{i:03d}", "algo": a, "task": t, "params": params}
                                   for i, (a, t, params) in enumerate(
                                       (a, t, params) for a, t in study.pairs for params in study.configurations(a, t))]
    lines = []
    for c in configs:
        steps = study.settings(c["algo"], c["task"], c["params"] if "run.total_steps" in c["params"] else {}
                               )[0].total_steps
        done = sum(results.trial_result(folder / "trials" / f"{c['id']}-s{s}") is not None for s in study.seeds)
        lines.append(f"{c['id']}  {c['algo']} {c['task']}  {results.fmt_params(c['params'])}  ({steps:,} steps)"
                     + (f"  {done}/{len(study.seeds)} seeds finished" if state["configs"] else ""))
    if study.sampler == "tpe":
        space = "; ".join(f"{d.key} one of {list(d.values)}" if d.kind == "choice" else
                          f"{d.key} {d.kind} [{d.low:g}, {d.high:g}]" for d in study.space)
        pairs = ", ".join(map("/".join, study.pairs))
        head = (f"tpe: {study.trials} configuration(s) per (algo, task) pair ({pairs}), asked from Optuna as trials "
                f"finish, from: {space or '(no [space])'}")
        lines = [head, *(["asked so far:", *lines] if lines else [])]
    else:
        lines.insert(0, f"{study.sampler}: {len(configs)} configuration(s) x {len(study.seeds)} seed(s) = "
                        f"{len(configs) * len(study.seeds)} trials")
    es = study.early_stop
    return "\n".join([
        f"study {study.path} -> {folder}", *lines, f"seeds: {seeds}; {study.cpus_per_trial()} CPU per trial"
        + (f"; early stop at {', '.join(f'{r:,}' for r in es.rungs(10**15)[:4])}... steps (ASHA, keep 1/{es.reduction})"
           if es else ""),
        "dry run: every setting of every trial checked; nothing started or written"]) + "\n"


def _check_writable(folder: Path, what: str) -> None:
    """The study's folder, or the nearest folder above it that exists (where it will be made), must take new
    files: found out now, not after Ray has started (a read-only or someone else's folder)."""
    import errno
    import tempfile

    place = folder
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise UserError(f"{what} {str(folder)!r}: {str(place)!r} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".robotrl-probe-", dir=place))
    except OSError as e:
        hint = "choose a writable location" if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else \
            "choose another location"
        raise UserError(f"{what} {str(folder)!r}: cannot write in {str(place)!r} "
                        f"({e.strerror or type(e).__name__}); {hint}") from None


def run(study_file: str | Path | None = None, *, resume_dir: str | Path | None = None,
        out: str | Path | None = None, address: str | None = None, cpus: int | None = None,
        progress_every: float = 10.0, log: Any = None) -> tuple[Path, list[dict[str, Any]]]:
    """Run a study (or continue the one in `resume_dir`) to the end; returns (its folder, its table)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    study, folder, state = prepare(study_file, resume_dir=resume_dir, out=out, address=address)
    ray = require("ray")
    if study.sampler == "tpe":
        require("optuna")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # each trial: one torch thread (workers inherit it)
    # A study being run by another driver is refused before Ray starts; a new study's folder is made only once a
    # cluster has answered (an unreachable one must not leave a folder that blocks the same command later).
    fd = _lock(folder) if resume_dir is not None else None
    try:
        started = _init_ray(ray, address, cpus)
        try:
            if resume_dir is None:
                folder.mkdir(parents=True, exist_ok=True)
                fd = _lock(folder)
                if (folder / "study.json").exists():  # another driver made it while this one started Ray
                    raise UserError(f"study folder {str(folder)!r} already holds a study; continue it with "
                                    f"'robotrl sweep --resume {folder}' or choose another --out")
                shutil.copyfile(study_file, folder / "study.toml")
                atomic_write_json(folder / "study.json", state)
            cl = ray.cluster_resources()
            log(f"sweep: {study.path} -> {folder} on Ray ({'local' if started else address}: "
                f"{int(cl.get('CPU', 0))} CPUs, {len(ray.nodes())} node(s)), {study.cpus_per_trial()} CPU per trial")
            driver = _Driver(study, folder, state, log)
            with _stop_on_sigterm():
                driver.run(ray, progress_every)
        finally:
            ray.shutdown()
        rows = results.write_all(folder, driver.configs, study.seeds, study.curve, driver.config_toml)
    except KeyboardInterrupt:
        if fd is not None:
            with contextlib.suppress(OSError):
                log(f"sweep: stopped; finished trials are kept, running ones continue from their checkpoints with: "
                    f"robotrl sweep --resume {folder}")
        raise
    finally:
        if fd is not None:
            os.close(fd)
    if driver.failed:
        first = next(iter(driver.failed.items()))
        raise UserError(f"{len(driver.failed)} trial(s) failed (first: {first[0]}: {first[1]}); the table in "
                        f"{folder / 'results.md'} has the others; 'robotrl sweep --resume {folder}' retries them")
    return folder, rows


def _init_ray(ray: Any, address: str | None, cpus: int | None) -> bool:
    """Connect to a running cluster (`address`: auto or HOST:PORT), or start a private local Ray with `cpus` CPUs
    (default: all); returns whether it was started here.

    Without `address` the Ray is this driver's own (``address="local"``), whatever runs on the machine: plain
    ``ray.init()`` would join a cluster that ``ray start --head`` or RAY_ADDRESS left here instead (and refuse
    `num_cpus` there). The private Ray takes its own ports, so it does not disturb that cluster."""
    _quiet_token_notice()
    kwargs = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    if address and address != "auto":
        _check_reachable(address)
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--address {address}: cannot connect to a Ray cluster ({results_line(e)}); start one "
                            "with 'ray start --head'") from None
        return False
    from robotrl.algorithms.functional import available_cores

    ray.init(address="local", num_cpus=cpus or available_cores(), include_dashboard=False, **kwargs)
    return True


class _TokenNotice(logging.Filter):
    """Drops Ray's notice that token authentication is on (Ray's default for a new local Ray, and for joining one
    with a token on this machine): the state it reports is the secure default, and printed by every sweep it
    buried our own lines. Ray's other messages, and its warning that authentication is off, pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled for this Ray cluster")


def _quiet_token_notice() -> None:
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenNotice) for f in log.filters):
        log.addFilter(_TokenNotice())


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """HOST:PORT must answer on TCP before Ray is asked: Ray itself retries a dead address for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address!r}: expected auto or HOST:PORT (the head's 'ray start --head --port')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"--address {address}: nothing answers there ({e.strerror or type(e).__name__}); start the "
                        f"cluster's head with 'ray start --head --port {port}', or use --address auto on one of its "
                        "machines") from None


@contextlib.contextmanager
def _stop_on_sigterm() -> Any:
    """SIGTERM stops the driver as Ctrl-C does (KeyboardInterrupt: Ray's shutdown, the resume hint, exit 143)
    rather than killing it inside Ray's C++ with a stack dump."""
    def handle(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise Stopped(signum)

    seen: list[int] = []

    try:
        old = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    except KeyboardInterrupt:
        if seen:  # Ray may turn the Stopped raised inside its wait into a plain KeyboardInterrupt
            raise Stopped(seen[0]) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)  # None: a handler set in C
