"""robotrl sweep on a real Ray: a tiny study's table against its trials' eval.json; a node killed under a
trial (two-node cluster on this machine) and a driver killed with SIGKILL, both finishing from checkpoints;
bad study files as one-line errors; Ray and Optuna imported by nothing else."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sessions import kill_session

from robotrl.cli import main
from robotrl.run.rundir import RunDir, read_metrics

ray = pytest.importorskip("ray", reason="the sweep extra: pip install 'robotrl[sweep]'")

from robotrl.sweep.results import bootstrap_ci, iqm  # noqa: E402
from robotrl.sweep.runner import read_attempts  # noqa: E402

BASE = """
[study]
algo = "ppo"
task = "Pendulum-v1"
{study}

[run]
eval_episodes = 2
{run}

[space]
{space}
"""


def study_file(tmp_path: Path, *, study: str = "seeds = 2", run: str = "total_steps = 4096",
               space: str = "learning_rate = [3e-4, 1e-3]", extra: str = "", name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(BASE.format(study=study, run=run, space=space) + extra)
    return p


def sweep(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robotrl", "sweep", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def finish(p: subprocess.Popen, timeout: float = 120) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-3000:]
    return out


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def last_step(run_dir: Path) -> int:
    rows = read_metrics(run_dir / "metrics.csv")[1] if (run_dir / "metrics.csv").is_file() else []
    return int(rows[-1]["step"]) if rows else 0


# -- the study file -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "needle"), [
    ({"study": "seeds = 2\nsampler = \"grids\""}, "[study] sampler"),
    ({"study": "seeds = 2\nbudget = 3"}, "[study] unknown key 'budget'"),
    ({"study": "seeds = 0"}, "[study] seeds"),
    ({"space": "learning_rat = [1e-3]"}, "[space] learning_rat: not a hyper-parameter of ppo (did you mean "
                                         "'learning_rate'?)"),
    ({"space": "learning_rate = [1e-3, -1.0]"}, "[space] learning_rate"),
    ({"space": "learning_rate = { log_uniform = [1e-5, 1e-3] }"}, "a range cannot be a grid axis"),
    ({"space": "total_steps = [1000]"}, 'write "run.total_steps"'),
    ({"space": "\"run.seed\" = [1, 2]"}, "[space] run.seed"),
    ({"run": "total_steps = -5"}, "[run]"),
    ({"study": "seeds = 2\nsampler = \"random\""}, "[study] trials: missing"),
    ({"extra": "\n[early_stop]\nmin_steps = 1000\n"}, "[early_stop] needs evaluations"),
    ({"extra": "\n[sac]\nlearning_starts = 10\n"}, "[sac] is given but"),
    ({"study": "seeds = 2\ncurve = \"rollout/ep_return_meen\""}, "[study] curve: 'rollout/ep_return_meen' is not"),
])
def test_bad_study_files_are_one_line_errors(tmp_path, capsys, kw, needle):
    path = study_file(tmp_path, **kw)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robotrl: error: study file") or err.startswith("robotrl: error: ")
    assert "\n" not in err and "Traceback" not in err
    assert needle in err, err
    assert not (tmp_path / "out").exists(), "nothing is created before the study file has passed"


def test_a_setting_the_task_cannot_have_is_refused_before_the_study_starts(tmp_path, capsys):
    path = tmp_path / "sac.toml"  # Pendulum-v1 has one action: a target entropy of 2 nats is out of reach
    path.write_text('[study]\nalgo = "sac"\ntask = "Pendulum-v1"\n[space]\ntarget_entropy = [-1.0, 2.0]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "[space] target_entropy 2 is out of reach" in err and err.count("target_entropy") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("address", "needle"), [
    ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers there"),  # Ray itself retries for minutes
    ("localhost", "expected auto or HOST:PORT"),
])
def test_a_cluster_that_cannot_be_reached_is_refused_at_once_and_leaves_nothing(tmp_path, capsys, address, needle):
    path = study_file(tmp_path)
    t = time.monotonic()
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--address", address]) == 2
    assert time.monotonic() - t < 30
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err, err
    assert not (tmp_path / "out").exists(), "a study folder would block the same command once the cluster is up"


def test_a_study_run_by_another_driver_is_refused_before_ray_starts(tmp_path, capsys, monkeypatch):
    import fcntl

    import ray

    from robotrl.sweep.runner import STATE_FORMAT

    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "study.toml").write_text(study_file(tmp_path).read_text())
    (folder / "study.json").write_text(json.dumps({"format": STATE_FORMAT, "configs": [], "failed": {}}))
    held = open(folder / ".driver.lock", "w")  # noqa: SIM115 - held for the test, as a running driver holds it
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def no_ray(*a, **kw):
        raise AssertionError("ray.init called for a study that another driver runs")

    monkeypatch.setattr(ray, "init", no_ray)
    try:
        assert main(["sweep", "--resume", str(folder)]) == 2
    finally:
        held.close()
    assert "is being run by another 'robotrl sweep'" in capsys.readouterr().err


def test_sigterm_stops_the_driver_with_the_resume_command(tmp_path):
    path = study_file(tmp_path, study="seeds = 1", space="learning_rate = [3e-4]",
                      run="total_steps = 400000\ncheckpoint_every = 4096")
    out = tmp_path / "study"
    p = sweep([str(path), "--out", str(out), "--cpus", "1"])
    try:
        wait_for(lambda: last_step(out / "trials" / "c000-s0") >= 8192, 120, "a checkpointed trial")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        kill_session(p.pid)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert f"robotrl sweep --resume {out}" in err and "Traceback" not in err and "SIGTERM received" not in err, err


def test_ray_and_optuna_are_imported_by_nothing_else(tmp_path):
    code = ("import sys, robotrl.cli, robotrl.run.train, robotrl.sweep, robotrl.sweep.study, robotrl.sweep.results, "
            "robotrl.deploy; bad = [m for m in ('ray', 'optuna') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)
    # without the extra: one line that names it
    path = study_file(tmp_path)
    code = (f"import sys; sys.modules['ray'] = None; from robotrl.cli import main; "
            f"sys.exit(main(['sweep', {str(path)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert "pip install 'robotrl[sweep]'" in p.stderr


def test_statistics_by_hand():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # 2 cut from each end: mean of 3..6
    assert iqm([1.0, 100.0, 2.0, 3.0]) == pytest.approx(2.5)  # 1 cut from each end
    assert iqm([5.0, 7.0]) == 6.0  # fewer than 4 seeds: the mean
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert 1.0 < lo < 4.5 < hi < 8.0
    assert bootstrap_ci([3.0]) == (3.0, 3.0)


# -- on Ray ---------------------------------------------------------------------------------------------------


def test_tiny_study_table_matches_eval_json(tmp_path, capsys):
    out = tmp_path / "study"
    path = study_file(tmp_path, run="total_steps = 4096\neval_every = 2048\ncheckpoint_every = 2048")
    table = finish(sweep([str(path), "--out", str(out), "--cpus", "2"]))
    assert "| c000 |" in table and "| c001 |" in table
    state = json.loads((out / "study.json").read_text())
    assert [c["params"] for c in state["configs"]] == [{"learning_rate": 3e-4}, {"learning_rate": 1e-3}]
    import csv

    rows = {r["config"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"c000", "c001"}
    for c in state["configs"]:
        values = []
        for seed in (0, 1):
            rd = RunDir.open(out / "trials" / f"{c['id']}-s{seed}")  # an ordinary run directory
            settings = rd.read_settings()
            assert settings.run.seed == seed and settings.cfg.learning_rate == c["params"]["learning_rate"]
            assert rd.load_checkpoint(settings)["num_steps"] == 4096
            values.append(rd.read_eval()["mean_return"])
        row = rows[c["id"]]
        assert int(row["n"]) == 2
        assert float(row["mean"]) == pytest.approx(sum(values) / 2)
        assert float(row["std"]) == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
        assert float(row["iqm"]) == pytest.approx(sum(values) / 2)
        assert float(row["iqm_ci_low"]) == pytest.approx(min(values))
        assert float(row["iqm_ci_high"]) == pytest.approx(max(values))
    best = max(rows.values(), key=lambda r: float(r["iqm"]))
    assert (out / "results.md").read_text().splitlines()[2].startswith(f"| {best['config']} |")
    assert (out / "curves.png").stat().st_size > 1000
    assert len(read_attempts(out)) == 4  # each trial ran once
    # the best configuration as a file robotrl train --config takes, with the best's settings
    assert main(["train", "ppo", "Pendulum-v1", "--config", str(out / "best.toml"), "--dry-run"]) == 0
    conf = json.loads(capsys.readouterr().out)
    best_lr = next(c for c in state["configs"] if c["id"] == best["config"])["params"]["learning_rate"]
    assert conf["ppo"]["learning_rate"] == best_lr and conf["run"]["total_steps"] == 4096
    # the folder is taken: a second run refuses, --resume of a finished study runs nothing
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_node_killed_mid_trial_resumes_from_checkpoint(tmp_path):
    from ray.cluster_utils import Cluster

    every = 4096
    path = study_file(tmp_path, study="seeds = 2", space="learning_rate = [3e-4]",
                      run=f"total_steps = 49152\ncheckpoint_every = {every}")
    out = tmp_path / "study"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    p = None
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        p = sweep([str(path), "--out", str(out), "--address", cluster.address])
        on_worker: list[str] = []

        def started() -> bool:
            on_worker[:] = [a["trial"] for a in read_attempts(out) if a["node"] == worker.node_id]
            return bool(on_worker)

        wait_for(started, 90, "a trial on the worker node")
        run_dir = out / "trials" / on_worker[0]
        wait_for(lambda: last_step(run_dir) >= 2 * every + 2048, 240, "two checkpoints of the trial")
        cluster.remove_node(worker, allow_graceful=False)
        # What it had done when it died: its last metrics row, or its checkpoint where that is newer (the
        # checkpoint of an iteration is written right after its row, which may still be in a buffer). The
        # process outlives remove_node by a moment, so watch until Ray starts the trial again elsewhere.
        rd = RunDir.open(run_dir)
        killed_at = 0
        deadline = time.monotonic() + 120
        while sum(a["trial"] == on_worker[0] for a in read_attempts(out)) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a file being replaced at this instant: look again
                killed_at = max(killed_at, last_step(run_dir),
                                rd.load_checkpoint(rd.read_settings())["num_steps"])
            time.sleep(0.1)
        assert killed_at < 49152, "the trial must be killed mid-run"
        finish(p, timeout=150)
    finally:
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        cluster.shutdown()
    attempts = [a for a in read_attempts(out) if a["trial"] == on_worker[0]]
    assert len(attempts) == 2 and attempts[1]["resumed"] and attempts[1]["node"] != worker.node_id
    restart = attempts[1]["start_step"]
    assert restart > 0, "continued from its checkpoint, not from zero"
    assert 0 <= killed_at - restart <= every, (killed_at, restart)
    rd = RunDir.open(run_dir)
    assert rd.read_eval()["step"] == 49152
    steps = [int(r["step"]) for r in rd.read_metrics()[1]]
    # one row per iteration, none lost or repeated across the restart (+ the final evaluation's row)
    assert steps == [*range(2048, 49152 + 1, 2048), 49152]
    assert "| c000 |" in (out / "results.md").read_text()


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    every = 4096
    path = study_file(tmp_path, study="seeds = 3", space="learning_rate = [3e-4]",
                      run=f"total_steps = 32768\ncheckpoint_every = {every}")
    out = tmp_path / "study"
    p = sweep([str(path), "--out", str(out), "--cpus", "2"])
    try:
        def one_done_one_checkpointed() -> bool:
            # "mid": checkpointed and far from its end; the trial that ran beside the first finished one is
            # close to its end too and may finish between the kill and the end of the session (seen in CI)
            trials = [out / "trials" / f"c000-s{s}" for s in range(3)]
            done = [t for t in trials if (t / "eval.json").exists()]
            mid = [t for t in trials if not (t / "eval.json").exists() and every + 2048 <= last_step(t) <= 16384]
            return bool(done) and bool(mid)

        wait_for(one_done_one_checkpointed, 120, "a finished trial and a checkpointed unfinished one")
        os.kill(p.pid, signal.SIGKILL)  # the driver
        p.wait(timeout=10)
    finally:
        # its Ray's workers notice within seconds and exit, and may finish a trial first (which would be
        # right, but makes the test's set of finished trials a race): the rest of its session goes now
        kill_session(p.pid)
    finished = {t.name: (t / "eval.json").stat().st_mtime_ns for t in (out / "trials").iterdir()
                if (t / "eval.json").exists()}
    before = read_attempts(out)
    finish(sweep(["--resume", str(out)]), timeout=150)
    after = read_attempts(out)[len(before):]
    rerun = {a["trial"] for a in after}
    assert not rerun & set(finished), f"finished trials ran again: {rerun & set(finished)}"
    for name, mtime in finished.items():
        assert (out / "trials" / name / "eval.json").stat().st_mtime_ns == mtime
    assert rerun == {f"c000-s{s}" for s in range(3)} - set(finished)
    resumed = [a for a in after if a["resumed"]]
    assert resumed and all(a["start_step"] > 0 for a in resumed), after
    for s in range(3):
        assert RunDir.open(out / "trials" / f"c000-s{s}").read_eval()["step"] == 32768
    rows = (out / "results.md").read_text().splitlines()
    assert rows[2].startswith("| c000 |") and "| 3 |" in rows[2]


def test_asha_rule_by_hand():
    from robotrl.sweep.runner import _Board

    b = _Board([1000, 3000], 3, {}, [])
    assert not b.report("c000-s0", "g", 1000, 10.0)  # alone on the rung: kept
    assert b.report("c001-s0", "g", 1000, 5.0)  # below the 2/3 quantile of {10, 5}: stopped
    assert b.report("c001-s1", "g", 500, 99.0)  # its configuration is stopped: every seed stops
    assert not b.report("c002-s0", "g", 1200, 20.0)  # best so far: kept
    assert not b.report("c003-s0", "h", 1000, -50.0)  # another task's rung: alone there
    assert b.snapshot()["stopped"] == ["c001"]


def test_tpe_with_early_stopping(tmp_path):
    optuna = pytest.importorskip("optuna")
    path = study_file(tmp_path, study="seeds = 1\nsampler = \"tpe\"\ntrials = 3",
                      run="total_steps = 8192\neval_every = 2048\ncheckpoint_every = 4096",
                      space="learning_rate = { log_uniform = [1e-4, 3e-3] }\nclip_coef = [0.1, 0.2, 0.3]",
                      extra="\n[early_stop]\nmin_steps = 2048\nreduction = 2\n")
    out = tmp_path / "study"
    finish(sweep([str(path), "--out", str(out), "--cpus", "2"]))
    state = json.loads((out / "study.json").read_text())
    assert len(state["configs"]) == 3
    assert all(1e-4 <= c["params"]["learning_rate"] <= 3e-3 for c in state["configs"])
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "optuna.log")))
    trials = optuna.load_study(study_name="ppo/Pendulum-v1", storage=storage).trials
    states = {t.number: t.state.name for t in trials}
    assert sorted(states) == [c["optuna_trial"] for c in state["configs"]]
    import csv

    rows = {r["config"]: r for r in csv.DictReader((out / "results.csv").open())}
    for c in state["configs"]:
        ev = RunDir.open(out / "trials" / f"{c['id']}-s0").read_eval()
        stopped = ev["step"] < 8192
        assert states[c["optuna_trial"]] == ("PRUNED" if stopped else "COMPLETE")
        assert (rows[c["id"]]["stopped_at"] != "") == stopped
        if not stopped:
            value = next(t.value for t in trials if t.number == c["optuna_trial"])
            assert value == pytest.approx(ev["mean_return"])
    assert (out / "best.toml").is_file()
