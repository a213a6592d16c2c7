"""Training runs end to end: run directory contents, determinism, checkpoints, kill and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from robotrl.atomic import atomic_write_bytes
from robotrl.cli import main
from robotrl.run.rundir import RunDir
from robotrl.run.train import resume, train

TASK = "InvertedPendulum-v5"
SMALL = {"num_envs": "4", "rollout_steps": "64", "minibatch_size": "64", "update_epochs": "2"}


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _learning_columns(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_run_directory_contents(tmp_path, algo):
    flags = dict(SMALL) if algo == "ppo" else {"num_envs": "4", "rollout_steps": "64", "critic_minibatch_size": "64"}
    run = train(algo, TASK, algo_flags=flags, run_flags={"total_steps": "1024", "eval_episodes": "2"},
                out=tmp_path / "run", progress=False)
    conf = json.loads((run / "config.json").read_text())
    assert conf["algo"] == algo and conf["task"] == TASK and conf["run"]["total_steps"] == 1024
    assert conf[algo]["num_envs"] == 4
    spec = json.loads((run / "spec.json").read_text())
    assert spec["task_id"] == TASK and len(spec["observation"]) == 4 and len(spec["action"]) == 1
    assert spec["action"][0]["low"] == -3.0
    rows = _rows(run)
    assert [int(r["step"]) for r in rows[:-1]] == [256, 512, 768, 1024]
    assert rows[-1]["eval/mean_return"]
    ev = json.loads((run / "eval.json").read_text())
    assert ev["episodes"] == 2 and len(ev["returns"]) == 2
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert any((run / "tb").iterdir())
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)  # no code unpickled
    assert state["num_steps"] == 1024 and state["algo"] == algo


def test_same_seed_gives_identical_results(tmp_path):
    runs = [train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "2048", "seed": "5", "workers": w,
                                                              "eval_episodes": "2"},
                  out=tmp_path / f"r{i}", progress=False) for i, w in enumerate(["0", "0", "1"])]
    a, b, c = (_learning_columns(_rows(r)) for r in runs)
    assert a == b == c  # workers change nothing but speed
    sa, sc = (torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in (runs[0], runs[2]))
    for k, v in sa["algorithm"]["actor"].items():
        assert torch.equal(v, sc["algorithm"]["actor"][k])
    assert json.loads((runs[0] / "eval.json").read_text()) == json.loads((runs[1] / "eval.json").read_text())
    other = train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "2048", "seed": "6",
                                                            "eval_episodes": "0"}, out=tmp_path / "r3", progress=False)
    assert _learning_columns(_rows(other)) != a


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    run = train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "256", "eval_episodes": "0"},
                out=tmp_path / "run", progress=False)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "robotrl-checkpoint/1", "x": Evil()}, run / "checkpoints" / "latest.pt")
    assert main(["eval", str(run)]) == 2
    assert "cannot be read" in capsys.readouterr().err


def _wait_for_checkpoint(run: Path, min_steps: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.time() + timeout
    ckpt = run / "checkpoints" / "latest.pt"
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        if ckpt.exists():
            try:
                steps = int(torch.load(ckpt, weights_only=True)["num_steps"])
            except Exception:  # being replaced right now
                steps = 0
            if steps >= min_steps:
                return steps
        time.sleep(0.05)
    raise TimeoutError("no checkpoint")


def test_resume_after_kill_continues_from_the_checkpoint(tmp_path, robotrl_cmd):
    run = tmp_path / "run"
    args = [*robotrl_cmd, "train", "ppo", TASK, "--out", str(run), "--steps", "6144", "--checkpoint-every", "512",
            "--eval-episodes", "2", "--no-progress"]
    args += [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", v)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(run, 1024, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    saved = int(ckpt["num_steps"])
    assert 1024 <= saved < 6144
    rows_before = _rows(run)
    assert not (run / "eval.json").exists()

    resume(run, progress=False)

    rows = _rows(run)
    steps = [int(r["step"]) for r in rows if r.get("train/policy_loss")]
    assert steps == list(range(256, 6144 + 1, 256))  # no gap, no duplicate: rows after the checkpoint were redone
    kept = [{k: r[k] for k in rows_before[0]} for r in rows[: saved // 256]]
    assert kept == rows_before[: saved // 256]  # history up to the checkpoint kept as it was
    final = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert final["num_steps"] == 6144
    assert json.loads((run / "eval.json").read_text())["step"] == 6144
    # a finished run cannot be resumed without asking for more steps
    with pytest.raises(Exception, match="already complete"):
        resume(run, progress=False)
    resume(run, total_steps=6656, progress=False)
    assert int(torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["num_steps"]) == 6656


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_gpu_run_continues_on_a_cpu_only_machine(tmp_path, capsys):
    run = train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "512", "eval_episodes": "0"},
                out=tmp_path / "run", progress=False)
    config = json.loads((run / "config.json").read_text())
    config["run"]["device"] = "cuda"  # as trained on a GPU workstation, then copied here
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["resume", str(run), "--steps", "768", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"robotrl resume {str(run)!r} --device cpu" in err, err
    assert int(torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["num_steps"]) == 512
    assert main(["resume", str(run), "--steps", "768", "--device", "cpu", "--no-progress"]) == 0
    assert int(torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["num_steps"]) == 768
    assert json.loads((run / "config.json").read_text())["run"]["device"] == "cpu"  # and from now on


def test_resumed_state_equals_the_checkpoint(tmp_path):
    from robotrl.algorithms.registry import get
    from robotrl.run.train import _build, resolve_config

    run = train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "512", "eval_episodes": "0"},
                out=tmp_path / "run", progress=False)
    state = RunDir(run).load_checkpoint()
    run_cfg, cfg = resolve_config("ppo", TASK, algo_flags=SMALL)
    algo, _ = _build("ppo", TASK, run_cfg, cfg)
    try:
        algo.load_state_dict(state["algorithm"])
        again = algo.state_dict()
        for k, v in state["algorithm"]["actor"].items():
            assert torch.equal(v, again["actor"][k])
        assert algo.num_steps == 512 and algo.iteration == 2
        assert again["optimizer"]["t"] == state["algorithm"]["optimizer"]["t"] == 2 * 2 * 4  # iters x epochs x mbs
        assert get("ppo").name == "ppo"
    finally:
        algo.close()


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_saves_a_checkpoint_and_exits_128_plus_the_signal(tmp_path, robotrl_cmd, signum, status):
    run = tmp_path / "run"
    args = [*robotrl_cmd, "train", "ppo", TASK, "--out", str(run), "--steps", "200000", "--checkpoint-every",
            "100000", "--no-progress"] + [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", v)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.csv").exists() or len(_rows(run)) < 3:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "robotrl resume" in err
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert int(state["num_steps"]) == int(_rows(run)[-1]["step"])  # nothing after the last logged step lost



def test_a_closed_terminal_stops_the_run_with_its_checkpoint(tmp_path, robotrl_cmd):
    # ssh dropped or the terminal closed: SIGHUP, and nobody reads stderr any more. The run must still stop at
    # an iteration boundary with its checkpoint (a crash on the broken pipe would lose everything since the last).
    run = tmp_path / "run"
    args = [*robotrl_cmd, "train", "ppo", TASK, "--out", str(run), "--steps", "200000", "--checkpoint-every",
            "100000", "--no-progress"] + [x for k, v in SMALL.items() for x in (f"--{k.replace('_', '-')}", v)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (run / "metrics.csv").exists() or len(_rows(run)) < 3:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.stderr.close()  # the reader is gone: any write to stderr now fails with a broken pipe
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=60) == 129  # 128 + SIGHUP: stopped with a checkpoint, not crashed (1)
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert int(state["num_steps"]) >= 3 * int(_rows(run)[0]["step"])  # the stop's checkpoint, not none
    assert int(state["num_steps"]) == int(_rows(run)[-1]["step"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_the_whole_process_group_spares_the_env_workers(tmp_path, robotrl_cmd, signum):
    # `kill -TERM -PGID`, a closed terminal or a job scheduler signal every process of the run, the env workers and
    # the shared-memory tracker too: they must leave the stop to the run, or its checkpoint is lost with them.
    run = tmp_path / "run"
    args = [*robotrl_cmd, "train", "ppo", TASK, "--out", str(run), "--steps", "200000", "--checkpoint-every",
            "100000", "--no-progress", "--workers", "1"] + [x for k, v in SMALL.items()
                                                             for x in (f"--{k.replace('_', '-')}", v)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (run / "metrics.csv").exists() or len(_rows(run)) < 3:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "robotrl resume" in err and signal.Signals(signum).name in err, err
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert int(state["num_steps"]) == int(_rows(run)[-1]["step"])


def test_a_stop_during_the_final_evaluation_is_named_and_resume_runs_the_evaluation(tmp_path, robotrl_cmd):
    # found from outside: SIGTERM in the final evaluation (after the last checkpoint) killed the run without a word
    # (Python's default action), left no eval.json, and `resume` then called the run complete
    run = tmp_path / "run"
    args = [*robotrl_cmd, "train", "ppo", TASK, "--out", str(run), "--steps", "512", "--checkpoint-every", "100000",
            "--eval-episodes", "1000", "--no-progress"] + [x for k, v in SMALL.items()
                                                             for x in (f"--{k.replace('_', '-')}", v)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "latest.pt").exists():  # written once, at the end, before the evaluation
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped during the final evaluation at step 512" in err and "Traceback" not in err, err
    assert not (run / "eval.json").exists()
    r = subprocess.run([*robotrl_cmd, "resume", str(run), "--no-progress"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "its final evaluation was stopped: running it" in r.stderr, r.stderr
    ev = json.loads((run / "eval.json").read_text())
    assert ev["episodes"] == 1000 and ev["step"] == 512
    r = subprocess.run([*robotrl_cmd, "resume", str(run)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "already complete" in r.stderr, r.stderr  # evaluated now: complete


def test_eval_json_and_plot_of_several_runs(tmp_path, capsys):
    runs = [train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "512", "seed": str(s),
                                                              "eval_episodes": "0"},
                  out=tmp_path / f"r{s}", progress=False) for s in (0, 1)]
    capsys.readouterr()
    assert main(["eval", str(runs[0]), "--episodes", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"mean_return", "std_return", "episodes"} and out["episodes"] == 3
    assert main(["eval", str(runs[0]), "--episodes", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == out  # deterministic
    png = tmp_path / "both.png"
    assert main(["plot", *map(str, runs), "-o", str(png)]) == 0
    assert png.stat().st_size > 1000


def test_a_run_too_short_to_end_an_episode_says_so_instead_of_a_plot(tmp_path, capsys):
    # found from outside: "no learning curve: --metric 'rollout/ep_return_mean': no such column" after a short
    # legged run, from train, which has no --metric; the arm's episodes are 100 steps, each env here runs 64
    out = tmp_path / "r"
    assert main(["train", "ppo", "robotrl/ArmReach-v0", "--steps", "512", "--envs", "8", "--rollout-steps", "64",
                 "--minibatch-size", "64", "--eval-episodes", "0", "--no-progress", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no learning curve: no values of 'rollout/ep_return_mean' yet: no training episode has ended" in err, err
    assert "--metric" not in err and not (out / "learning_curve.png").exists()
    assert main(["plot", str(out), "-o", str(tmp_path / "c.png")]) == 2
    assert "no training episode has ended in this run" in capsys.readouterr().err


def test_resume_refuses_a_run_whose_checkpoint_was_deleted(tmp_path, capsys):
    # the metrics show it got past a checkpoint step, so one was written: starting over from step 0 would silently
    # throw the run away (a run killed before its first checkpoint still starts again, as documented)
    run = train("ppo", TASK, algo_flags=SMALL, run_flags={"total_steps": "1024", "checkpoint_every": "256",
                                                          "eval_episodes": "0"}, out=tmp_path / "r", progress=False)
    (run / "checkpoints" / "latest.pt").unlink()
    capsys.readouterr()
    assert main(["resume", str(run), "--steps", "2048"]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint" in err and "reaches step 1,024" in err and err.count("\n") == 1, err
    assert int(_rows(run)[-1]["step"]) == 1024  # nothing touched
