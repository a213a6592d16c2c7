"""`robotrl sweep` tested from the outside, as a new user would use it.

Written only from README.md ("Studies (sweeps)", "A run directory", "Use"), BENCHMARKS.md, the example
study and `robotrl sweep --help` / `robotrl eval --help`; no robotrl source was read.

Every `robotrl` command runs in its own process (and its own session, so that everything it starts,
Ray's head processes and trial workers included, can be found by session id and cleaned up without
touching anything else on the machine), in pytest's tmp folders.

    cd /work/main && .venv/bin/python -m pytest -q bench/outside/test_sweep_outside.py

Budget: tiny studies (PPO/TRPO/TD3 on Pendulum-v1, a few thousand steps per trial, --cpus 2 or less);
the whole file takes a few minutes on 2 busy cores.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
ROBOTRL = str(VENV_BIN / "robotrl")
ENV = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
RAY_TMP = Path("/tmp/ray")  # Ray's default temp dir; a local Ray's session dir ends in the driver's PID

SWEEP_TIMEOUT = 420  # seconds for one study (they take 10-40 s here)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# every session (= the PID of a robotrl process we started with start_new_session=True)
SESSIONS: set[int] = set()


# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------
def _stat(pid: int):
    """(state, ppid, session) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[3])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def session_procs(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session `sid`: {pid: cmdline}."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _stat(int(d))
        if st and st[2] == sid and st[0] != "Z":
            out[int(d)] = _cmdline(int(d))
    return out


def wait_session_empty(sid: int, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        procs = session_procs(sid)
        if not procs or time.monotonic() > deadline:
            return procs
        time.sleep(0.5)


def kill_session(sid: int) -> dict[int, str]:
    """Terminate, by PID, every process of a session we started; returns what was there."""
    procs = session_procs(sid)
    for pid in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    left = wait_session_empty(sid, 10)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_session_empty(sid, 5)
    return procs


def ray_session_dirs(pid: int) -> list[str]:
    return glob.glob(str(RAY_TMP / f"session_*_{pid}"))


@dataclass
class Result:
    cmd: list[str]
    rc: int
    out: str
    pid: int
    wall: float
    leftovers: dict[int, str]

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.out.splitlines() if ln.strip()]

    def describe(self) -> str:
        return f"$ {shlex.join(self.cmd)}\n(exit {self.rc}, {self.wall:.1f} s)\n{self.out[-4000:]}"


def start(args: list[str], cwd: Path, log: Path) -> tuple[subprocess.Popen, object]:
    fh = open(log, "w")  # noqa: SIM115 (closed by the caller once the process has ended)
    p = subprocess.Popen([ROBOTRL, *map(str, args)], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=ENV, start_new_session=True)
    SESSIONS.add(p.pid)
    return p, fh


def robotrl(args: list, cwd: Path, timeout: float = SWEEP_TIMEOUT, settle: float = 15) -> Result:
    """Run `robotrl ARGS` to completion in its own session; `leftovers`: its processes still alive
    `settle` seconds after it exited (they are then killed)."""
    cwd = Path(cwd)
    log = cwd / f".robotrl-{time.monotonic_ns()}.log"
    t0 = time.monotonic()
    p, fh = start(args, cwd, log)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(p.pid)
        p.wait()
        fh.close()
        pytest.fail(f"timed out after {timeout} s: robotrl {shlex.join(map(str, args))}\n"
                    f"{log.read_text()[-4000:]}")
    wall = time.monotonic() - t0
    fh.close()
    leftovers = wait_session_empty(p.pid, settle)
    if leftovers:
        kill_session(p.pid)
    return Result(["robotrl", *map(str, args)], rc, log.read_text(), p.pid, wall, leftovers)


def assert_clean_success(r: Result):
    assert r.rc == 0, r.describe()
    assert "Traceback" not in r.out, r.describe()
    assert not r.leftovers, f"processes left behind by the finished command: {r.leftovers}\n{r.describe()}"


@pytest.fixture(scope="module", autouse=True)
def _cleanup_sessions():
    yield
    for sid in sorted(SESSIONS):
        left = kill_session(sid)
        if left:
            warnings.warn(f"killed processes left in session {sid}: {left}", stacklevel=2)


# --------------------------------------------------------------------------------------------------
# study folders
# --------------------------------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def eval_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())


def read_results_csv(study: Path) -> list[dict]:
    with open(study / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def per_seed(row: dict) -> dict[int, float]:
    """The results.csv 'per_seed' cell, e.g. '0:-959.5 1:-1242.6'."""
    out = {}
    for item in row["per_seed"].split():
        s, v = item.split(":", 1)
        out[int(s)] = float(v)
    return out


def study_configs(study: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads((study / "study.json").read_text())["configs"]}


def attempts(study: Path) -> list[dict]:
    return [json.loads(ln) for ln in (study / "attempts.jsonl").read_text().splitlines() if ln.strip()]


def iqm(xs: list[float]) -> float:
    """Interquartile mean: the mean of the middle half (README; Agarwal et al. 2021); the mean below 4."""
    xs = sorted(xs)
    n = len(xs)
    if n < 4:
        return statistics.fmean(xs)
    k = n // 4
    return statistics.fmean(xs[k:n - k])


def max_running(study: Path, out_text: str) -> tuple[int, int]:
    """Most trials at once: from the status lines ("N running") and from the trials' start (attempts.jsonl)
    and end (eval.json written) times."""
    from_lines = max([int(m) for m in re.findall(r"(\d+) running", out_text)] or [0])
    events = []
    for a in attempts(study):
        end = study / "trials" / a["trial"] / "eval.json"
        if end.is_file():
            events += [(a["time"], 1), (end.stat().st_mtime - 0.01, -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return from_lines, peak


def fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def check_table_matches_trials(study: Path, seeds: list[int], *, stopped_ok: bool = False):
    """results.csv / results.md against the trials' own eval.json files, computed here."""
    rows = read_results_csv(study)
    configs = study_configs(study)
    assert rows and {r["config"] for r in rows} == set(configs), rows
    for row in rows:
        cid = row["config"]
        rets = {s: eval_json(study / "trials" / f"{cid}-s{s}")["mean_return"] for s in seeds}
        xs = list(rets.values())
        assert int(row["n"]) == len(seeds), row
        assert per_seed(row) == pytest.approx(rets, rel=1e-9, abs=1e-9), (cid, row["per_seed"], rets)
        assert float(row["mean"]) == pytest.approx(statistics.fmean(xs), rel=1e-9), (cid, row, xs)
        if len(xs) > 1:
            sd = float(row["std"])
            assert sd == pytest.approx(statistics.stdev(xs), rel=1e-9) or \
                sd == pytest.approx(statistics.pstdev(xs), rel=1e-9), (cid, sd, xs)
        assert float(row["iqm"]) == pytest.approx(iqm(xs), rel=1e-9), (cid, row["iqm"], xs)
        lo, hi = float(row["iqm_ci_low"]), float(row["iqm_ci_high"])
        # a bootstrap interval of the IQM can only span values between the worst and best seed
        assert min(xs) - 1e-9 <= lo <= float(row["iqm"]) <= hi <= max(xs) + 1e-9, (cid, lo, hi, xs)
        if len(xs) == 2:  # README: "with 2 seeds the interval spans them"
            assert (lo, hi) == pytest.approx((min(xs), max(xs)), rel=1e-9), (cid, lo, hi, xs)
        if not stopped_ok:
            assert not row["stopped_at"], row
    # best first (configurations not stopped early, by IQM), stopped ones last
    live = [r for r in rows if not r["stopped_at"]]
    stopped = [r for r in rows if r["stopped_at"]]
    assert rows == live + stopped, [(r["config"], r["stopped_at"]) for r in rows]
    assert [float(r["iqm"]) for r in live] == sorted((float(r["iqm"]) for r in live), reverse=True)
    # results.md: the same rows in the same order
    md = [ln for ln in (study / "results.md").read_text().splitlines() if re.match(r"\| c\d", ln)]
    assert len(md) == len(rows), md
    for ln, row in zip(md, rows, strict=True):
        assert ln.split("|")[1].strip().split()[0] == row["config"], (ln, row["config"])
        assert f"{float(row['mean']):.1f}" in ln, (ln, row["mean"])
    return rows


# --------------------------------------------------------------------------------------------------
# 1. a full small study: folder, table against the trials, best.toml, eval/export/plot on a trial
# --------------------------------------------------------------------------------------------------
MAIN_SEEDS = [0, 1, 7, 42]
MAIN_LRS = [1e-4, 1e-3]
MAIN_STUDY = f"""\
# a tiny study: PPO on Pendulum-v1, 2 learning rates x 4 seeds (a list), 4096 steps per trial
[study]
algo = "ppo"
task = "Pendulum-v1"
seeds = {MAIN_SEEDS}
sampler = "grid"

[run]
total_steps = 4096
eval_every = 2048
eval_episodes = 2
checkpoint_every = 2048

[ppo]
num_envs = 4
rollout_steps = 256
update_epochs = 2

[space]
learning_rate = {MAIN_LRS}
"""


@pytest.fixture(scope="module")
def main_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("main")
    toml = write(work / "tiny.toml", MAIN_STUDY)
    out = work / "study"
    r = robotrl(["sweep", toml, "--out", out, "--cpus", 2], cwd=work)
    return work, out, r


def test_main_study_completes_cleanly(main_study):
    _, out, r = main_study
    assert_clean_success(r)
    # README: "While it runs, a line says how many trials are done, running, failed and stopped early,
    # the best configuration so far and the step each running trial is at."
    status = [ln for ln in r.lines if "done" in ln and "running" in ln]
    assert status, r.describe()
    assert any("failed" in ln and "stopped early" in ln and "best" in ln for ln in status), status
    assert "8/8 done" in r.out, r.describe()
    # --help: "--cpus CPUS: CPUs of the local Ray; a trial takes one": at most 2 trials at once
    lines_peak, times_peak = max_running(out, r.out)
    assert lines_peak <= 2 and times_peak <= 2, (lines_peak, times_peak)
    assert times_peak == 2, "--cpus 2 never ran 2 trials at once"


def test_main_study_folder_has_what_the_readme_lists(main_study):
    _, out, r = main_study
    assert r.rc == 0, r.describe()
    for name in ["results.md", "results.csv", "curves.png", "best.toml", "study.json", "attempts.jsonl"]:
        assert (out / name).is_file(), f"{name} missing; folder has {sorted(p.name for p in out.iterdir())}"
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    configs = study_configs(out)
    assert sorted(configs) == ["c000", "c001"], configs
    assert sorted(c["params"]["learning_rate"] for c in configs.values()) == pytest.approx(MAIN_LRS)
    assert sorted(p.name for p in (out / "configs").iterdir()) == ["c000.toml", "c001.toml"]
    expected_trials = {f"{c}-s{s}" for c in configs for s in MAIN_SEEDS}
    assert {p.name for p in (out / "trials").iterdir()} == expected_trials
    for cid, c in configs.items():
        cfg_file = tomllib.loads((out / "configs" / f"{cid}.toml").read_text())
        assert cfg_file["algo"] == "ppo" and cfg_file["task"] == "Pendulum-v1", cfg_file
        assert cfg_file["ppo"]["learning_rate"] == pytest.approx(c["params"]["learning_rate"])
        assert cfg_file["ppo"]["num_envs"] == 4 and cfg_file["run"]["total_steps"] == 4096, cfg_file
        for s in MAIN_SEEDS:
            run = out / "trials" / f"{cid}-s{s}"
            for f in ["config.json", "spec.json", "metrics.csv", "eval.json", "checkpoints/latest.pt"]:
                assert (run / f).is_file(), f"{run}/{f} missing (README 'A run directory')"
            cj = json.loads((run / "config.json").read_text())
            assert cj["algo"] == "ppo" and cj["task"] == "Pendulum-v1"
            assert cj["run"]["seed"] == s, (run, cj["run"])
            assert cj["run"]["total_steps"] == 4096
            assert cj["ppo"]["learning_rate"] == pytest.approx(c["params"]["learning_rate"])
            assert eval_json(run)["episodes"] == 2
    # attempts.jsonl logs each start of a trial: exactly one start each, from step 0
    starts = attempts(out)
    assert sorted(a["trial"] for a in starts) == sorted(expected_trials), starts
    assert all(a["start_step"] == 0 and not a["resumed"] for a in starts), starts


def test_main_study_table_matches_trials_eval_json(main_study):
    _, out, r = main_study
    assert r.rc == 0, r.describe()
    rows = check_table_matches_trials(out, MAIN_SEEDS)
    assert len(rows) == 2
    # the table printed at the end is results.md
    for ln in (out / "results.md").read_text().splitlines():
        if re.match(r"\| c\d", ln):
            assert ln in r.out, ln


def test_best_toml_is_highest_iqm_and_train_accepts_it(main_study):
    work, out, r = main_study
    assert r.rc == 0, r.describe()
    rows = read_results_csv(out)
    best_id = max(rows, key=lambda row: float(row["iqm"]))["config"]
    best = tomllib.loads((out / "best.toml").read_text())
    assert best == tomllib.loads((out / "configs" / f"{best_id}.toml").read_text()), \
        f"best.toml is not configuration {best_id} (highest IQM)"
    # `robotrl train ALGO TASK --config best.toml` takes it, and with the trial's seed it repeats the trial
    rerun = work / "rerun-best"
    t = robotrl(["train", "ppo", "Pendulum-v1", "--config", out / "best.toml", "--seed", 0,
                 "--out", rerun, "--no-progress"], cwd=work, timeout=300)
    assert_clean_success(t)
    cj = json.loads((rerun / "config.json").read_text())
    assert cj["ppo"]["learning_rate"] == pytest.approx(best["ppo"]["learning_rate"])
    assert cj["run"]["total_steps"] == 4096
    # BENCHMARKS.md: "Same final returns by hand and in the study (same seeds, same code)"
    assert eval_json(rerun)["returns"] == pytest.approx(eval_json(out / "trials" / f"{best_id}-s0")["returns"],
                                                        rel=1e-9)


def test_trial_config_json_command_repeats_the_trial(main_study):
    """README: a trial's config.json "records the `robotrl train` command that repeats it"."""
    work, out, r = main_study
    assert r.rc == 0, r.describe()
    trial = out / "trials" / "c000-s7"
    cmd = shlex.split(json.loads((trial / "config.json").read_text())["command"])
    assert cmd[:4] == ["robotrl", "train", "ppo", "Pendulum-v1"], cmd
    assert "--out" in cmd, cmd
    i = cmd.index("--out")
    assert Path(cmd[i + 1]).resolve() == trial.resolve(), cmd
    cmd[i + 1] = str(work / "repeat-c000-s7")  # the same command, into a fresh directory
    t = robotrl([*cmd[1:], "--no-progress"], cwd=work, timeout=300)
    assert_clean_success(t)
    assert eval_json(work / "repeat-c000-s7")["returns"] == pytest.approx(eval_json(trial)["returns"], rel=1e-9)


def test_eval_export_plot_work_on_a_trial(main_study, tmp_path):
    _, out, r = main_study
    assert r.rc == 0, r.describe()
    trial = tmp_path / "c001-s1"
    shutil.copytree(out / "trials" / "c001-s1", trial)  # export writes into the run dir: work on a copy
    # `robotrl eval RUN_DIR --json`; --seed defaults to "the run's evaluation seed" (--help): eval.json again
    e = robotrl(["eval", trial, "--episodes", 2, "--json"], cwd=tmp_path, timeout=180)
    assert_clean_success(e)
    ev = json.loads(e.lines[-1])
    assert ev["episodes"] == 2
    assert ev["mean_return"] == pytest.approx(eval_json(trial)["mean_return"], rel=1e-6)
    # `robotrl export RUN` -> RUN/actor.onnx; `robotrl eval --onnx`: "same return as the checkpoint"
    x = robotrl(["export", trial], cwd=tmp_path, timeout=180)
    assert_clean_success(x)
    onnx = trial / "actor.onnx"
    assert onnx.is_file(), x.describe()
    o = robotrl(["eval", "--onnx", onnx, "--episodes", 2, "--json"], cwd=tmp_path, timeout=180)
    assert_clean_success(o)
    assert json.loads(o.lines[-1])["mean_return"] == pytest.approx(ev["mean_return"], rel=1e-4, abs=1e-3)
    # `robotrl plot` on several trials
    p = robotrl(["plot", out / "trials" / "c000-s0", out / "trials" / "c001-s0", "-o", tmp_path / "two.png"],
                cwd=tmp_path, timeout=180)
    assert_clean_success(p)
    assert (tmp_path / "two.png").read_bytes()[:8] == PNG_MAGIC


def test_resume_of_a_finished_study_reruns_nothing(main_study):
    work, out, r = main_study
    assert r.rc == 0, r.describe()
    trials = sorted((out / "trials").iterdir())
    before = {t.name: (fingerprint(t / "eval.json"), fingerprint(t / "metrics.csv")) for t in trials}
    n_attempts = len(attempts(out))
    res = robotrl(["sweep", "--resume", out, "--cpus", 2], cwd=work)
    assert_clean_success(res)
    assert len(attempts(out)) == n_attempts, attempts(out)[n_attempts:]
    after = {t.name: (fingerprint(t / "eval.json"), fingerprint(t / "metrics.csv")) for t in trials}
    assert after == before
    check_table_matches_trials(out, MAIN_SEEDS)


def test_same_study_into_an_existing_study_folder_is_refused(main_study):
    work, out, r = main_study
    assert r.rc == 0, r.describe()
    before = (out / "results.csv").read_bytes(), len(attempts(out))
    again = robotrl(["sweep", work / "tiny.toml", "--out", out, "--cpus", 2], cwd=work, timeout=120)
    assert again.rc == 2, again.describe()
    assert len(again.lines) == 1 and again.lines[0].startswith("robotrl: error:"), again.describe()
    assert "--resume" in again.out, again.describe()
    assert ((out / "results.csv").read_bytes(), len(attempts(out))) == before
    assert not ray_session_dirs(again.pid), "a Ray was started for a refused command"


# --------------------------------------------------------------------------------------------------
# 2. samplers
# --------------------------------------------------------------------------------------------------
def test_grid_every_combination_run_setting_and_default_folder(tmp_path):
    """grid: every combination x seeds; "run.obs_noise" is a run setting; default folder runs/sweep-STUDY;
    max_concurrent."""
    lrs, noises = [3e-4, 1e-3], [0.0, 0.05]
    write(tmp_path / "gridtest.toml", f"""\
[study]
algo = "ppo"
task = "Pendulum-v1"
seeds = 1
max_concurrent = 1

[run]
total_steps = 1024
eval_episodes = 1

[ppo]
num_envs = 4
rollout_steps = 256
update_epochs = 1

[space]
learning_rate = {lrs}
"run.obs_noise" = {noises}
""")
    r = robotrl(["sweep", "gridtest.toml", "--cpus", 2], cwd=tmp_path)
    assert_clean_success(r)
    out = tmp_path / "runs" / "sweep-gridtest"  # --help: "default: runs/sweep-STUDY"
    assert out.is_dir(), f"no {out}; {sorted(str(p) for p in tmp_path.rglob('*') if p.is_dir())[:20]}"
    configs = study_configs(out)
    got = sorted((c["params"]["learning_rate"], c["params"]["run.obs_noise"]) for c in configs.values())
    assert got == sorted(itertools.product(lrs, noises)), got
    assert {p.name for p in (out / "trials").iterdir()} == {f"{c}-s0" for c in configs}
    for cid, c in configs.items():
        cj = json.loads((out / "trials" / f"{cid}-s0" / "config.json").read_text())
        assert cj["run"]["obs_noise"] == pytest.approx(c["params"]["run.obs_noise"]), (cid, cj["run"])
        assert cj["ppo"]["learning_rate"] == pytest.approx(c["params"]["learning_rate"]), (cid, cj["ppo"])
        assert "obs_noise" not in cj["ppo"]
        assert tomllib.loads((out / "configs" / f"{cid}.toml").read_text())["run"]["obs_noise"] == \
            pytest.approx(c["params"]["run.obs_noise"])
    check_table_matches_trials(out, [0])
    # max_concurrent = 1: one trial at a time, even with --cpus 2
    assert max_running(out, r.out) == (1, 1), max_running(out, r.out)


RANDOM_STUDY = """\
[study]
algo = ["ppo", "trpo"]
task = "Pendulum-v1"
seeds = 1
sampler = "random"
trials = 2
sampler_seed = 3

[run]
total_steps = 1024
eval_episodes = 1

[ppo]
num_envs = 4
rollout_steps = 256
update_epochs = 1

[trpo]
num_envs = 4
rollout_steps = 256

[space]
gamma = { uniform = [0.9, 0.99] }
"run.obs_noise" = [0.0, 0.05]
"""


def test_random_sampler_gives_trials_configurations_per_algo_task_reproducibly(tmp_path):
    toml = write(tmp_path / "rnd.toml", RANDOM_STUDY)
    outs = []
    for name in ["a", "b"]:  # twice with the same sampler_seed
        r = robotrl(["sweep", toml, "--out", tmp_path / name, "--cpus", 2], cwd=tmp_path)
        assert_clean_success(r)
        outs.append(tmp_path / name)
    configs = study_configs(outs[0])
    assert len(configs) == 4, configs  # trials = 2 per (algo, task), 2 algos
    assert sorted(c["algo"] for c in configs.values()) == ["ppo", "ppo", "trpo", "trpo"]
    for cid, c in configs.items():
        assert 0.9 <= c["params"]["gamma"] <= 0.99, c
        assert c["params"]["run.obs_noise"] in (0.0, 0.05), c
        cj = json.loads((outs[0] / "trials" / f"{cid}-s0" / "config.json").read_text())
        assert cj["algo"] == c["algo"]
        assert cj[c["algo"]]["gamma"] == pytest.approx(c["params"]["gamma"])
        assert cj["run"]["obs_noise"] == pytest.approx(c["params"]["run.obs_noise"])
    def strip(cs):
        return sorted((c["algo"], c["params"]["gamma"], c["params"]["run.obs_noise"]) for c in cs.values())

    assert strip(study_configs(outs[1])) == strip(configs), "sampler_seed did not make random repeat"
    check_table_matches_trials(outs[0], [0])


def test_tpe_sampler_gives_trials_configurations(tmp_path):
    toml = write(tmp_path / "tpe.toml", """\
[study]
algo = "td3"
task = "Pendulum-v1"
seeds = 1
sampler = "tpe"
trials = 3

[run]
total_steps = 1500
eval_episodes = 1

[td3]
learning_starts = 500
iteration_steps = 500

[space]
actor_learning_rate = { log_uniform = [1e-4, 1e-2] }
batch_size = { int_uniform = [32, 128] }
""")
    out = tmp_path / "tpe"
    r = robotrl(["sweep", toml, "--out", out, "--cpus", 2], cwd=tmp_path)
    assert_clean_success(r)
    configs = study_configs(out)
    assert len(configs) == 3, configs
    assert (out / "optuna.log").is_file(), "README: optuna.log is TPE's journal"
    for cid, c in configs.items():
        lr, bs = c["params"]["actor_learning_rate"], c["params"]["batch_size"]
        assert 1e-4 <= lr <= 1e-2 and isinstance(bs, int) and 32 <= bs <= 128, c
        cj = json.loads((out / "trials" / f"{cid}-s0" / "config.json").read_text())
        assert cj["td3"]["actor_learning_rate"] == pytest.approx(lr) and cj["td3"]["batch_size"] == bs
    assert len({(c["params"]["actor_learning_rate"], c["params"]["batch_size"]) for c in configs.values()}) == 3
    check_table_matches_trials(out, [0])


# --------------------------------------------------------------------------------------------------
# 3. a killed driver, then --resume
# --------------------------------------------------------------------------------------------------
KILL_STEPS = 60_000
KILL_STUDY = f"""\
[study]
algo = "ppo"
task = "Pendulum-v1"
seeds = 2

[run]
total_steps = {KILL_STEPS}
eval_episodes = 2
checkpoint_every = 2048

[ppo]
num_envs = 4
rollout_steps = 256
update_epochs = 2

[space]
learning_rate = [1e-4, 1e-3]
"""


def _last_step(run: Path) -> int:
    try:
        rows = (run / "metrics.csv").read_text().splitlines()
        return int(float(rows[-1].split(",")[0])) if len(rows) > 1 else 0
    except (OSError, ValueError, IndexError):
        return 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "SIGINT-Ctrl-C"])
def test_killed_driver_then_resume_keeps_finished_trials(tmp_path, sig):
    """README: "a killed driver is continued with --resume DIR, which reads which trials are finished from
    their eval.json and runs only the others, from their checkpoints". SIGINT goes to the driver's process
    group, as Ctrl-C in a terminal does."""
    toml = write(tmp_path / "kill.toml", KILL_STUDY)
    out = tmp_path / "study"
    p, fh = start(["sweep", toml, "--out", out, "--cpus", 2], tmp_path, tmp_path / "driver.log")
    deadline = time.monotonic() + 300
    try:
        if sig == signal.SIGKILL:
            # while it runs, a second driver on the same folder must be refused (README: one writer)
            while not (out / "study.json").is_file():
                assert p.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "driver.log").read_text()[-3000:]
                time.sleep(0.2)
            second = robotrl(["sweep", "--resume", out, "--cpus", 1], cwd=tmp_path, timeout=120)
            assert second.rc == 2 and second.lines[-1].startswith("robotrl: error:"), second.describe()
            assert not ray_session_dirs(second.pid), "the refused second driver started a Ray"
        # wait until >= 1 trial is finished and >= 1 other one is part-way (a checkpoint, under half-way)
        while True:
            assert p.poll() is None, "the study ended before it could be killed:\n" + \
                (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no finished + part-way trial within 300 s"
            trials = sorted((out / "trials").iterdir()) if (out / "trials").is_dir() else []
            done = [t for t in trials if (t / "eval.json").is_file()]
            partway = [t for t in trials if not (t / "eval.json").is_file()
                       and (t / "checkpoints" / "latest.pt").is_file() and 2048 <= _last_step(t) <= KILL_STEPS // 3]
            if done and partway:
                break
            time.sleep(0.1)
        if sig == signal.SIGINT:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
            p.wait()
        fh.close()
    killed_log = (tmp_path / "driver.log").read_text()
    assert "Traceback" not in killed_log, killed_log[-3000:]
    # the killed driver's trial workers must stop (they may finish a trial first: then it counts as done)
    t0 = time.monotonic()
    while True:
        workers = {pid: c for pid, c in session_procs(p.pid).items()
                   if not c.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))}
        if not workers or time.monotonic() - t0 > 30:
            break
        time.sleep(0.2)
    if workers:
        kill_session(p.pid)
    assert not workers, f"30 s after the driver's {sig.name}, its processes still run: {workers}"
    left = wait_session_empty(p.pid, 0 if sig == signal.SIGKILL else 30)
    if left:
        kill_session(p.pid)
        if sig != signal.SIGKILL:
            pytest.fail(f"after {sig.name} the driver's processes were still alive 30 s later: {left}")
        # Ray's own agents outlive a SIGKILLed local driver (a note, not a robotrl promise)
        warnings.warn(f"after SIGKILL of the driver these Ray processes were orphaned (killed now): {left}",
                      stacklevel=2)
    # what is on disk now that nothing writes
    done = [t for t in sorted((out / "trials").iterdir()) if (t / "eval.json").is_file()]
    unfinished = [t for t in sorted((out / "trials").iterdir()) if not (t / "eval.json").is_file()]
    assert done and unfinished, [t.name for t in done]
    before = {t.name: (fingerprint(t / "eval.json"), fingerprint(t / "metrics.csv")) for t in done}
    with_ckpt = [t.name for t in unfinished if (t / "checkpoints" / "latest.pt").is_file()]
    n_before = len(attempts(out))
    if sig == signal.SIGTERM and with_ckpt:
        # README: a trial is "an ordinary run directory ... so `eval`, `plot`, `export` and `resume` work on it"
        copy = tmp_path / "by-hand" / with_ckpt[0]
        shutil.copytree(out / "trials" / with_ckpt[0], copy)
        rr = robotrl(["resume", copy], cwd=tmp_path, timeout=300)
        assert_clean_success(rr)
        assert eval_json(copy)["step"] >= KILL_STEPS, rr.describe()

    res = robotrl(["sweep", "--resume", out, "--cpus", 2], cwd=tmp_path)
    assert_clean_success(res)
    trials = sorted((out / "trials").iterdir())
    assert len(trials) == 4 and all((t / "eval.json").is_file() for t in trials), [t.name for t in trials]
    # finished trials kept as they were, and not started again
    after = {t.name: (fingerprint(t / "eval.json"), fingerprint(t / "metrics.csv")) for t in done}
    assert after == before, "a finished trial was re-run by --resume"
    new = attempts(out)[n_before:]
    assert not [a for a in new if a["trial"] in before], new
    # the interrupted ones continued from their checkpoints
    for name in with_ckpt:
        starts = [a for a in new if a["trial"] == name]
        assert len(starts) == 1, (name, new)
        assert starts[0]["resumed"] and starts[0]["start_step"] > 0, starts
    for t in trials:
        assert eval_json(t)["step"] >= KILL_STEPS, (t.name, eval_json(t))
        assert _last_step(t) >= KILL_STEPS, t.name
    check_table_matches_trials(out, [0, 1])
    assert (out / "best.toml").is_file() and (out / "curves.png").is_file()


@pytest.mark.parametrize("max_failures", [2, 0])
def test_dead_trial_worker_is_restarted_or_reported_and_resumed(tmp_path, max_failures):
    """README: "a trial whose worker or node dies is started again by Ray (up to max_failures times) ...
    and continues from its last checkpoint"; a trial that fails "is reported, and --resume tries it again"."""
    toml = write(tmp_path / "w.toml", f"""\
[study]
algo = "ppo"
task = "Pendulum-v1"
seeds = 1
max_failures = {max_failures}

[run]
total_steps = 20000
eval_episodes = 2
checkpoint_every = 2048

[ppo]
num_envs = 4
rollout_steps = 256
update_epochs = 2

[space]
learning_rate = [1e-4, 1e-3]
""")
    out = tmp_path / "study"
    p, fh = start(["sweep", toml, "--out", out, "--cpus", 2], tmp_path, tmp_path / "driver.log")
    victim = None
    try:
        deadline = time.monotonic() + 300
        while victim is None:
            assert p.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial part-way with a checkpoint within 300 s"
            if (out / "attempts.jsonl").is_file():
                for a in attempts(out):
                    t = out / "trials" / a["trial"]
                    if not (t / "eval.json").is_file() and (t / "checkpoints" / "latest.pt").is_file() \
                            and _last_step(t) >= 2048:
                        victim = a
                        break
            time.sleep(0.2)
        st = _stat(victim["pid"])
        assert st and st[2] == p.pid and _cmdline(victim["pid"]).startswith("ray::"), \
            (victim, _cmdline(victim["pid"]))  # attempts.jsonl's pid is our study's trial worker
        os.kill(victim["pid"], signal.SIGKILL)
        rc = p.wait(timeout=SWEEP_TIMEOUT)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
            p.wait()
        fh.close()
    log = (tmp_path / "driver.log").read_text()
    left = wait_session_empty(p.pid, 15)
    kill_session(p.pid)
    assert not left, f"processes left behind: {left}"
    assert "Traceback" not in log, log[-3000:]
    name = victim["trial"]
    if max_failures:
        assert rc == 0, log[-3000:]
        starts = [a for a in attempts(out) if a["trial"] == name]
        assert len(starts) == 2 and starts[1]["resumed"] and starts[1]["start_step"] > 0, starts
        assert "2/2 done" in log and re.search(r"2/2 done, 0 running, 0 failed", log), log[-3000:]
    else:
        # a failed trial: reported (a non-zero exit, its name, the way on), the others' table written
        assert rc != 0, f"a study with a failed trial exited 0:\n{log[-3000:]}"
        assert name in log and "--resume" in log, log[-3000:]
        assert name in json.loads((out / "study.json").read_text()).get("failed", {}), "study.json: not failed"
        assert not (out / "trials" / name / "eval.json").is_file()
        others = [t for t in (out / "trials").iterdir() if t.name != name]
        before = {t.name: fingerprint(t / "eval.json") for t in others}
        n = len(attempts(out))
        res = robotrl(["sweep", "--resume", out, "--cpus", 2], cwd=tmp_path)
        assert_clean_success(res)
        new = attempts(out)[n:]
        assert [a["trial"] for a in new] == [name], new
        assert new[0]["resumed"] and new[0]["start_step"] > 0, new
        assert {t.name: fingerprint(t / "eval.json") for t in others} == before
        assert json.loads((out / "study.json").read_text()).get("failed", {}) == {}
    assert eval_json(out / "trials" / name)["step"] >= 20000
    check_table_matches_trials(out, [0])


# --------------------------------------------------------------------------------------------------
# 4. early stopping (ASHA)
# --------------------------------------------------------------------------------------------------
def test_early_stop_asha_stops_poor_configurations_and_lists_them_last(tmp_path):
    min_steps, reduction, total = 2048, 2, 16384
    toml = write(tmp_path / "asha.toml", f"""\
[study]
algo = "ppo"
task = "Pendulum-v1"
seeds = 1

[run]
total_steps = {total}
eval_every = 2048
eval_episodes = 2

[ppo]
num_envs = 4
rollout_steps = 256
update_epochs = 2

[space]
learning_rate = [1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]

[early_stop]
min_steps = {min_steps}
reduction = {reduction}
""")
    out = tmp_path / "asha"
    r = robotrl(["sweep", toml, "--out", out, "--cpus", 2], cwd=tmp_path)
    assert_clean_success(r)
    rows = check_table_matches_trials(out, [0], stopped_ok=True)
    stopped = [row for row in rows if row["stopped_at"]]
    live = [row for row in rows if not row["stopped_at"]]
    assert stopped, "ASHA with reduction 2 over 6 configurations stopped none"
    assert live, "every configuration was stopped"
    rungs = {min_steps * reduction ** k for k in range(10) if min_steps * reduction ** k < total}

    def evals(cid):  # {step: eval return} of a trial's periodic evaluations
        out_ = {}
        with open(out / "trials" / f"{cid}-s0" / "metrics.csv", newline="") as f:
            for m in csv.DictReader(f):
                if m.get("eval/mean_return"):
                    out_.setdefault(int(float(m["step"])), float(m["eval/mean_return"]))
        return out_

    for row in stopped:
        at = int(float(row["stopped_at"]))
        assert at in rungs, (row["config"], at, sorted(rungs))
        assert _last_step(out / "trials" / f"{row['config']}-s0") == at, row["config"]
        # README: "at each rung, a configuration below the top 1/reduction stops": never the best there
        mine = evals(row["config"])[at]
        others = [evals(o["config"]).get(at) for o in rows if o["config"] != row["config"]]
        assert any(v is not None and v > mine for v in others), (row["config"], at, mine, others)
    for row in live:
        assert _last_step(out / "trials" / f"{row['config']}-s0") >= total, row["config"]
    best = tomllib.loads((out / "best.toml").read_text())
    assert best == tomllib.loads((out / "configs" / f"{live[0]['config']}.toml").read_text())
    md = (out / "results.md").read_text()
    for row in stopped:
        assert "stopped" in next(ln for ln in md.splitlines() if ln.startswith(f"| {row['config']}")), md


# --------------------------------------------------------------------------------------------------
# 5. mistakes: one line `robotrl: error: ...`, exit 2, no traceback, nothing started
# --------------------------------------------------------------------------------------------------
HEAD = """\
[study]
algo = "ppo"
task = "Pendulum-v1"
seeds = 1
{study}
[run]
total_steps = 512
eval_episodes = 1
{rest}
"""


def study(study: str = "", rest: str = "") -> str:
    return HEAD.format(study=study, rest=rest)


# (id, study file text or None, extra args; "{f}" is the study file, "{out}" the --out folder; must-name)
BAD = [
    ("misspelt-hyperparameter", study(rest="[space]\nlearning_rat = [1e-4, 1e-3]\n"), ["{f}"],
     ["[space]", "learning_rat"]),
    ("misspelt-fixed-hyperparameter", study(rest="[ppo]\nlearning_rat = 1e-3\n"), ["{f}"], ["learning_rat"]),
    ("missing-algo", '[study]\ntask = "Pendulum-v1"\n', ["{f}"], ["algo", "missing"]),
    ("missing-task", '[study]\nalgo = "ppo"\n', ["{f}"], ["task", "missing"]),
    ("unknown-algo", '[study]\nalgo = "ppx"\ntask = "Pendulum-v1"\n', ["{f}"], ["ppx"]),
    ("unknown-task", '[study]\nalgo = "ppo"\ntask = "Pendulm-v1"\n', ["{f}"], ["Pendulm-v1"]),
    ("unknown-sampler", study(study='sampler = "grdi"'), ["{f}"], ["sampler", "grdi"]),
    ("bad-toml-syntax", '[study\nalgo = "ppo"\n', ["{f}"], ["bad.toml"]),
    ("nonexistent-file", None, ["{d}/nothere.toml"], ["nothere.toml"]),
    ("resume-not-a-study", None, ["--resume", "{d}/empty"], ["empty", "not a study"]),
    ("resume-missing-folder", None, ["--resume", "{d}/nowhere"], ["nowhere"]),
    ("study-and-resume", study(), ["{f}", "--resume", "{d}/empty"], ["--resume"]),
    ("neither-study-nor-resume", None, [], ["STUDY.toml"]),
    ("misspelt-run-setting", study(rest="checkpoint_evry = 100\n"), ["{f}"], ["checkpoint_evry"]),
    ("misspelt-run-key-in-space", study(rest='[space]\n"run.obs_nose" = [0.0, 0.1]\n'), ["{f}"], ["obs_nose"]),
    ("value-out-of-range-in-space", study(rest="[space]\ngamma = [0.9, 1.5]\n"), ["{f}"], ["gamma", "1.5"]),
    ("wrong-type-in-space", study(rest='[space]\nlearning_rate = ["fast"]\n'), ["{f}"], ["learning_rate"]),
    ("range-as-grid-axis", study(rest="[space]\nlearning_rate = { log_uniform = [1e-5, 1e-3] }\n"), ["{f}"],
     ["learning_rate"]),
    ("random-without-trials",
     study(study='sampler = "random"', rest="[space]\nlearning_rate = { log_uniform = [1e-5, 1e-3] }\n"),
     ["{f}"], ["trials"]),
    ("early-stop-without-eval-every", study(rest="[early_stop]\nmin_steps = 256\nreduction = 3\n"), ["{f}"],
     ["eval_every"]),
    ("misspelt-study-key", study(study="sampler_sed = 1"), ["{f}"], ["sampler_sed"]),
    ("table-for-an-algo-not-run", study(rest="[td3]\ntau = 0.1\n"), ["{f}"], ["td3"]),
    ("repeated-seed", '[study]\nalgo = "ppo"\ntask = "Pendulum-v1"\nseeds = [0, 0]\n', ["{f}"], ["seeds"]),
    ("cpus-zero", study(), ["{f}", "--cpus", "0"], ["--cpus"]),
    ("resume-with-out", None, ["--resume", "{d}/empty", "--out", "{d}/out"], []),
    # README: curve is "the metrics.csv column of curves.png", and "Every value is checked before anything
    # starts ... a mistake is one line naming the field"
    ("misspelt-curve-column", study(study='curve = "rollout/ep_return_meen"',
                                    rest="[ppo]\nnum_envs = 4\nrollout_steps = 128\nupdate_epochs = 1\n"),
     ["{f}"], ["curve", "ep_return_meen"]),
]


@pytest.mark.parametrize("name,text,args,names", BAD, ids=[b[0] for b in BAD])
def test_mistake_is_one_line_exit_2_nothing_started(tmp_path, name, text, args, names):
    (tmp_path / "empty").mkdir()
    f = tmp_path / "bad.toml"
    if text is not None:
        write(f, text)
    out = tmp_path / "out"
    argv = ["sweep"] + [a.format(f=f, d=tmp_path) for a in args]
    if "--resume" not in args and args:
        argv += ["--out", str(out)]
    r = robotrl(argv, cwd=tmp_path, timeout=240, settle=5)
    problems = []
    if r.rc != 2:
        problems.append(f"exit status {r.rc}, expected 2")
    if "Traceback" in r.out:
        problems.append("a traceback")
    if len(r.lines) != 1:
        problems.append(f"{len(r.lines)} lines of output, expected one")
    if not r.lines or not r.lines[0].startswith("robotrl: error: "):
        problems.append("the first line is not 'robotrl: error: ...'")
    problems += [f"the error does not name {n!r}" for n in names if not r.lines or n not in r.lines[0]]
    # nothing started, nothing written
    if out.exists():
        problems.append(f"{out.name}/ was created: {sorted(p.name for p in out.iterdir())}")
    if any((tmp_path / "empty").iterdir()):
        problems.append("files were written into the --resume folder")
    if (tmp_path / "runs").exists():
        problems.append("runs/ was created")
    if ray_session_dirs(r.pid):
        problems.append(f"a Ray was started: {ray_session_dirs(r.pid)}")
    if r.leftovers:
        problems.append(f"processes left behind: {r.leftovers}")
    assert not problems, "; ".join(problems) + "\n" + r.describe()


def _ray_cluster_running() -> bool:
    """A Ray head (gcs_server) on this machine that is not one of our commands'."""
    for d in os.listdir("/proc"):
        if d.isdigit() and "gcs_server" in _cmdline(int(d)):
            st = _stat(int(d))
            if st and st[2] not in SESSIONS:
                return True
    return False


def test_address_auto_without_a_cluster_is_one_line_and_writes_nothing(tmp_path):
    """--address auto with no cluster: one line, exit 2, and (README: "nothing is written before the inputs
    are checked") no study folder, so that the same command works once `ray start --head` has been run."""
    if _ray_cluster_running():
        pytest.skip("a Ray cluster is running on this machine: --address auto would join it")
    toml = write(tmp_path / "s.toml", study())
    out = tmp_path / "out"
    r = robotrl(["sweep", toml, "--out", out, "--address", "auto"], cwd=tmp_path, timeout=180, settle=5)
    assert r.rc == 2 and len(r.lines) == 1 and r.lines[0].startswith("robotrl: error:"), r.describe()
    assert "--address" in r.lines[0] and "Traceback" not in r.out, r.describe()
    assert not out.exists(), (
        f"the failed command left a study folder {sorted(p.name for p in out.iterdir())}; re-running it "
        "(after 'ray start --head', as the error says) is then refused with 'already holds a study'")


def test_unreachable_address_fails_within_two_minutes(tmp_path):
    """A HOST:PORT where no Ray listens (a typo): a user expects an error, not a wait of minutes."""
    toml = write(tmp_path / "s.toml", study())
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    p, fh = start(["sweep", toml, "--out", out, "--address", "127.0.0.1:1"], tmp_path, log)
    try:
        rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        if p.poll() is None:
            kill_session(p.pid)
            p.wait()
        fh.close()
    text = log.read_text()
    assert rc is not None, f"robotrl sweep --address 127.0.0.1:1 still running after 120 s:\n{text[-2000:]}"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert rc == 2 and lines and lines[-1].startswith("robotrl: error:") and "Traceback" not in text, text[-3000:]
    kill_session(p.pid)


# --------------------------------------------------------------------------------------------------
# 6. nothing left behind
# --------------------------------------------------------------------------------------------------
def test_zz_no_processes_left_behind_by_any_command_here():
    left = {sid: session_procs(sid) for sid in SESSIONS}
    left = {sid: p for sid, p in left.items() if p}
    for sid in left:
        kill_session(sid)
    assert not left, f"processes of our commands still alive at the end (killed now): {left}"
