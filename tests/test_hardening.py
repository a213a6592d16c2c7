"""Hardening (issue 16): every mistake one line and exit 2, a locked and self-consistent run directory,
nothing half-written. Real files, real checkpoints, real processes; the disk-full case on a real
(small) tmpfs where the machine allows mounting one, and with an injected ENOSPC everywhere."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robotrl.cli import main
from robotrl.run.rundir import LOCK_NAME, RunDir

TASK = "InvertedPendulum-v5"
SMALL = ["--num-envs", "4", "--rollout-steps", "64", "--minibatch-size", "64", "--update-epochs", "2",
         "--workers", "0", "--eval-episodes", "1", "--no-progress"]
REPO = Path(__file__).resolve().parents[1]


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, needle=""):
    assert code == 2, err
    assert err.startswith("robotrl: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert needle in err, err


def _ends_in_one_line_error(code, err, needle=""):
    """A failure after training started: progress lines, then the error as the one last line."""
    assert code == 2, err
    assert "Traceback" not in err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("robotrl: error: ") and needle in last, err


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (but the lock file) -> SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished 512-step PPO run with its exported actor (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("hardening")
    assert main(["train", "ppo", TASK, "--steps", "512", *SMALL, "--out", str(root / "run")]) == 0
    assert main(["export", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture
def run(base_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst)
    return dst


# -- values that pass the parser but not the code ---------------------------------------------------

@pytest.mark.parametrize("flags, needle", [
    (["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
    (["--learning-rate", "-1e-3"], "learning_rate must be > 0"),  # a negative number, not a missing value
    (["--learning-rate", "nan"], "--learning-rate: expected a finite number, got 'nan'"),
    (["--learning-rate", "inf"], "--learning-rate: expected a finite number, got 'inf'"),
    (["--learning-rate=-1e400"], "--learning-rate: expected a finite number"),
    (["--obs-clip", "0"], "obs_clip must be > 0"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "cuda:999"], "--device cuda"),
    (["--device", "cuda:x"], "--device must be cpu, cuda or cuda:N"),
    (["--minibatch-size", "0"], "minibatch_size must be >= 2"),
    (["--hidden-sizes", "0"], "hidden_sizes must be 1 to 64 widths"),
    (["--num-envs", "1e9"], "num_envs must be <= 4096"),
    (["--threads", "100000"], "--threads must be in [1, 1024]"),
    (["--action-delay", "1e12"], "action_delay must be in [0, 1000]"),
])
def test_values_the_code_cannot_use_are_refused_before_anything_is_written(capsys, tmp_path, monkeypatch, flags,
                                                                            needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, ["train", "ppo", TASK, "--steps", "512", *flags])
    _one_line_error(code, err, needle)
    assert not any(tmp_path.iterdir())  # not even runs/


def test_negative_numbers_in_any_notation_are_values_not_flags(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in ("-5e-1", "-.5", "-0.5E0", "-5E-01"):
        code, out, err = _run(capsys, ["train", "sac", TASK, "--target-entropy", value, "--dry-run"])
        assert code == 0, err
        assert json.loads(out)["sac"]["target_entropy"] == -0.5


def test_a_target_entropy_the_actions_cannot_have_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # TASK has one action: at most ln 2 = 0.693 nats on [-1, 1]
    code, _, err = _run(capsys, ["train", "sac", TASK, "--target-entropy", "0.7"])
    _one_line_error(code, err, "target_entropy 0.7 is out of reach: 1 action dimension(s)")
    assert not any(tmp_path.iterdir())
    code, _, err = _run(capsys, ["train", "sac", TASK, "--target-entropy", "0.69", "--dry-run"])
    assert code == 0, err


def test_a_rejected_task_leaves_no_directory_behind(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--out", "a/b/run"]):
        code, _, err = _run(capsys, ["train", "ppo", "CartPole-v1", *extra])
        _one_line_error(code, err, "Discrete action space")
    assert not any(tmp_path.iterdir())


def test_dry_run_prints_the_resolved_config_and_creates_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, ["train", "ppo", TASK, "--steps", "1e4", "--gamma", "0.9", "--dry-run"])
    assert code == 0
    conf = json.loads(out)
    assert conf["run"]["total_steps"] == 10_000 and conf["ppo"]["gamma"] == 0.9 and conf["task"] == TASK
    assert not any(tmp_path.iterdir())


# -- files of the wrong shape ------------------------------------------------------------------------

def _rewrite_config(run: Path, change) -> None:
    conf = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(change(conf)))


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage, needle", [
    (lambda run: (run / "config.json").write_text("[1, 2]"), "expected a JSON object"),
    (lambda run: _rewrite_config(run, lambda c: {k: v for k, v in c.items() if k != "algo"}),
     "field 'algo' must be one of ppo, trpo, ddpg"),
    (lambda run: (run / "config.json").write_bytes(bytes(range(256))), "is not a text file"),
    (lambda run: _rewrite_config(run, lambda c: {**c, "run": {**c["run"], "seed": "x"}}), "seed: expected int"),
    (lambda run: _rewrite_config(run, lambda c: {**c, "ppo": {**c["ppo"], "obs_clip": 0}}), "obs_clip must be > 0"),
    (lambda run: (run / "checkpoints" / "latest.pt").write_bytes(b""), "is empty (0 bytes)"),
    (lambda run: (run / "checkpoints" / "latest.pt").write_bytes(b"PK\x03\x04garbage"), "cannot be read"),
    (lambda run: _cut(run / "checkpoints" / "latest.pt"),  # torch's own text goes on about the torch version
     "it is damaged or cut short (PytorchStreamReader failed reading zip archive: failed finding central directory)"),
    (lambda run: _rewrite_config(run, lambda c: {**c, "task": "Hopper-v5"}),
     "is of task 'InvertedPendulum-v5' but config.json says 'Hopper-v5'"),
    (lambda run: _rewrite_config(run, lambda c: {**c, "algo": "trpo", "trpo": {}}),
     "is of algo 'ppo' but config.json says 'trpo'"),
    (lambda run: _rewrite_config(run, lambda c: {**c, "algo": "sac"}),
     "'algo' says sac but the settings are ppo's (field 'ppo')"),
    (lambda run: (run / "spec.json").write_text('{"task_id": "InvertedPendulum-v5"}'), "spec.json: task spec has no"),
])
def test_damaged_run_files_are_one_line_errors_naming_the_file(capsys, run, damage, needle):
    damage(run)
    before = _snapshot(run)
    for argv in (["resume", run, "--steps", "768"], ["export", run], ["eval", run, "--episodes", "1"]):
        code, _, err = _run(capsys, argv)
        _one_line_error(code, err, needle)  # (eval reads spec.json too: a config edited since training is refused)
        assert _snapshot(run) == before, argv  # refused before changing anything


def test_a_checkpoint_changed_after_it_was_written_fails_its_checksum(capsys, run):
    path = run / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    state["algorithm"]["actor"]["mu.0.weight"][0, 0] += 1e-3  # silent corruption: still a valid file
    torch.save(state, path)
    code, _, err = _run(capsys, ["eval", run])
    _one_line_error(code, err, "is corrupt: its content does not match its checksum")


def test_a_non_numeric_metrics_cell_names_line_and_column(capsys, run):
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\r\n").split(",")
    cells = lines[1].rstrip("\r\n").split(",")
    col = header.index("time/steps_per_s")
    cells[col] = "fast"
    lines[1] = ",".join(cells) + "\r\n"
    (run / "metrics.csv").write_text("".join(lines))
    config = (run / "config.json").read_bytes()
    for argv in (["plot", run], ["resume", run, "--steps", "768"]):
        code, _, err = _run(capsys, argv)
        _one_line_error(code, err, "metrics.csv, line 2, column 'time/steps_per_s': expected a number, got 'fast'")
    assert (run / "config.json").read_bytes() == config  # the refused resume --steps did not rewrite it


def test_a_row_torn_by_a_kill_is_dropped_on_resume(capsys, run):
    with (run / "metrics.csv").open("a") as f:
        f.write("7")  # a kill in the middle of appending a row: no line end
    code, _, err = _run(capsys, ["resume", run, "--steps", "768"])
    assert code == 0, err
    steps = [r["step"] for r in RunDir(run).read_metrics()[1]]
    assert steps[:3] == ["256", "512", "512"] and steps[-1] == "768" and "7" not in steps


def test_card_fields_of_the_wrong_type_are_one_line_errors(capsys, run, tmp_path):
    import onnx

    model = onnx.load(str(run / "actor.onnx"))
    card = json.loads({p.key: p.value for p in model.metadata_props}["robotrl_card"])
    cases = {"training.steps": ("training", "steps", "many"), "evaluation.episodes": ("evaluation", "episodes", 0),
             "normalizer.frozen_after_steps": ("normalizer", "frozen_after_steps", None)}
    for field, (outer, inner, value) in cases.items():
        bad = json.loads(json.dumps(card))
        bad[outer][inner] = value
        onnx.helper.set_model_props(model, {"robotrl_card": json.dumps(bad)})
        path = tmp_path / f"{field}.onnx"
        onnx.save(model, str(path))
        for argv in (["card", path], ["eval", "--onnx", path, "--episodes", "1"]):
            code, _, err = _run(capsys, argv)
            _one_line_error(code, err, f"policy card field {field} must be")


# -- the operating system saying no ------------------------------------------------------------------

def test_out_under_a_file_and_export_into_a_missing_folder(capsys, run, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, err = _run(capsys, ["train", "ppo", TASK, "--steps", "512", "--out", tmp_path / "f" / "run"])
    _one_line_error(code, err, "a part of the path is a file")
    code, _, err = _run(capsys, ["train", "ppo", TASK, "--steps", "512", "--out", tmp_path / "f"])
    _one_line_error(code, err, "is a file, not a directory")
    code, _, err = _run(capsys, ["export", run, "-o", tmp_path / "missing" / "a.onnx"])
    _one_line_error(code, err, "does not exist")
    code, _, err = _run(capsys, ["plot", run, "-o", tmp_path / "curve.txt"])
    _one_line_error(code, err, "ending in .png")
    code, _, err = _run(capsys, ["plot", run, "--metric", "eval/return", "-o", tmp_path / "c.png"])
    _one_line_error(code, err, "--metric 'eval/return': no such column in metrics.csv; the runs have: ")
    assert "eval/mean_return" in err and not (tmp_path / "c.png").exists()


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, *options: str):
    """A real tmpfs of `size` at `path` (skips where this machine does not let the test mount one)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip() or p.returncode}); the injected ENOSPC test "
                    "covers the same path")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_disk(capsys, tmp_path):
    with _tmpfs(tmp_path / "ro", "1m", "ro") as ro:
        code, _, err = _run(capsys, ["train", "ppo", TASK, "--steps", "512", *SMALL, "--out", ro / "run"])
        _one_line_error(code, err, "Read-only file system")


def test_full_disk_keeps_the_last_checkpoint_and_resumes_once_there_is_room(capsys, run, tmp_path):
    with _tmpfs(tmp_path / "small", "2m") as disk:
        shutil.copytree(run, disk / "run")
        ckpt = disk / "run" / "checkpoints" / "latest.pt"
        good = ckpt.read_bytes()
        filler = disk / "filler"
        with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # fill the disk, then give back all but 64 KiB: less than a checkpoint needs
                f.write(b"\0" * 4096)
        free = shutil.disk_usage(disk).free
        filler_size = filler.stat().st_size
        with filler.open("r+b") as f:
            f.truncate(max(0, filler_size - (64 * 1024 - free)))
        code, _, err = _run(capsys, ["resume", disk / "run", "--steps", "1024"])
        _ends_in_one_line_error(code, err, "No space left on device")
        assert ckpt.read_bytes() == good  # the old checkpoint is intact
        assert not [p for p in (disk / "run").rglob("*.tmp")]  # and no temporary file is left
        filler.unlink()
        code, _, err = _run(capsys, ["resume", disk / "run", "--steps", "1024"])
        assert code == 0, err
        assert RunDir(disk / "run").load_checkpoint()["num_steps"] == 1024


@pytest.fixture
def checkpoint_disk_full(monkeypatch, request):
    """The checkpoint's write fails as on a full disk (ENOSPC at the fsync of its temporary file; another errno
    by indirect parametrisation, e.g. EFBIG for a file size limit)."""
    import robotrl.run.rundir as rundir_mod

    code = getattr(request, "param", errno.ENOSPC)
    real_fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") and "latest.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(rundir_mod.os, "fsync", full)


def test_injected_enospc_in_a_checkpoint_write(capsys, run, checkpoint_disk_full):
    """The same path without a mount: the checkpoint's write fails as on a full disk."""
    good = (run / "checkpoints" / "latest.pt").read_bytes()
    code, _, err = _run(capsys, ["resume", run, "--steps", "1024"])
    _ends_in_one_line_error(code, err, f"cannot write checkpoint {run / 'checkpoints' / 'latest.pt'}: No space left "
                            f"on device; the previous checkpoint is intact; continue with 'robotrl resume {run}'")
    assert (run / "checkpoints" / "latest.pt").read_bytes() == good
    assert not list(run.rglob("*.tmp"))


@pytest.mark.parametrize("checkpoint_disk_full, needle", [
    (errno.ENOSPC, "No space left on device; the run had none yet, so it cannot be resumed: free some space"),
    (errno.EFBIG, "File too large; the run had none yet, so it cannot be resumed: raise the file size limit"),
], indirect=["checkpoint_disk_full"])
def test_a_first_checkpoint_that_cannot_be_written_does_not_promise_a_resume(capsys, tmp_path, checkpoint_disk_full,
                                                                            needle):
    """With no checkpoint yet, there is none 'intact' to resume from: the message says to train again (and, for
    a file size limit, not to free space)."""
    code, _, err = _run(capsys, ["train", "ppo", TASK, "--steps", "512", *SMALL, "--out", tmp_path / "first"])
    _ends_in_one_line_error(code, err, needle)
    assert "intact" not in err and "robotrl resume" not in err.splitlines()[-1]


def test_a_full_disk_outside_training_does_not_suggest_resume():
    from robotrl.cli import _os_error

    e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/media/x/hopper.gif")
    assert _os_error(e, "video") == "the operating system refused /media/x/hopper.gif: No space left on device; " \
                                    "free some space"
    assert "robotrl resume RUN_DIR" in _os_error(e, "train")
    assert "ulimit -f" in _os_error(OSError(errno.EFBIG, os.strerror(errno.EFBIG), "a.mp4"), "video")

# -- state left behind ---------------------------------------------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_a_killed_writer_are_removed_at_start(capsys, run):
    stale = run / "checkpoints" / f".latest.pt.{_dead_pid()}.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = run / "checkpoints" / f".latest.pt.{os.getpid()}.89abcdef.tmp"  # a writer that is still running
    live.write_bytes(b"being written")
    code, _, err = _run(capsys, ["resume", run, "--steps", "768"])
    assert code == 0, err
    assert not stale.exists() and live.exists()


def test_a_run_killed_before_its_first_checkpoint_starts_again(capsys, run):
    (run / "checkpoints" / "latest.pt").unlink()
    code, _, err = _run(capsys, ["train", "ppo", TASK, "--out", run])
    _one_line_error(code, err, f"continue it with 'robotrl resume {run}'")
    code, _, err = _run(capsys, ["resume", run])
    assert code == 0 and "from step 0" in err, err
    steps = [int(r["step"]) for r in RunDir(run).read_metrics()[1] if r.get("train/policy_loss")]
    assert steps == [256, 512]  # the old rows were dropped, not duplicated


def test_refused_resume_steps_leaves_config_json_alone(capsys, run):
    before = (run / "config.json").read_bytes()
    code, _, err = _run(capsys, ["resume", run, "--steps", "256"])
    _one_line_error(code, err, "is not more than the 512 steps")
    assert (run / "config.json").read_bytes() == before
    code, _, err = _run(capsys, ["resume", run, "--steps", "768"])
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["run"]["total_steps"] == 768


# -- the lock --------------------------------------------------------------------------------------------

def test_a_second_writer_is_refused_naming_the_holder(capsys, run, robotrl_cmd):
    proc = subprocess.Popen([*robotrl_cmd, "resume", str(run), "--steps", "400000", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while RunDir(run).holder() is None:
            assert time.time() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert RunDir(run).holder() == str(proc.pid)
        for argv in (["resume", run, "--steps", "500000"], ["train", "ppo", TASK, "--out", run]):
            code, _, err = _run(capsys, argv)
            _one_line_error(code, err, f"is in use by process {proc.pid}")
        code, _, err = _run(capsys, ["eval", run, "--episodes", "1"])  # readers are not writers
        assert code == 0, err
    finally:
        proc.kill()
        proc.wait()
    # the kernel released the dead holder's lock: its lock file, PID and all, is simply taken over
    assert (run / LOCK_NAME).read_text().split()[0] == str(proc.pid)
    assert RunDir(run).holder() is None
    rd = RunDir.open(run, lock=True)
    try:
        assert (run / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    finally:
        rd.unlock()


def test_two_trainings_into_one_directory_at_once(tmp_path, robotrl_cmd):
    out = tmp_path / "run"
    args = [*robotrl_cmd, "train", "ppo", TASK, "--steps", "2048", *SMALL, "--out", str(out)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results  # one trained, the other was refused with one line
    refused = next(err for c, err in results if c == 2)
    assert refused.startswith("robotrl: error: ") and refused.count("\n") == 1, refused
    # the holder's PID where the lock file already names it ("another process" in the instant before it does)
    assert "is in use by " in refused or "already exists and is not empty" in refused
    steps = [int(r["step"]) for r in RunDir(out).read_metrics()[1] if r.get("train/policy_loss")]
    assert steps == list(range(256, 2049, 256))  # one writer's rows, none lost or doubled


def test_a_stale_lock_file_from_a_dead_process_is_taken_over(capsys, run):
    (run / LOCK_NAME).write_text(f"{_dead_pid()}\n")
    code, _, err = _run(capsys, ["resume", run, "--steps", "768"])
    assert code == 0, err
    assert (run / LOCK_NAME).read_text().split()[0] == str(os.getpid())


# -- export refuses a card that does not match its graph --------------------------------------------

def test_export_refuses_a_card_that_does_not_match_its_graph(capsys, run, monkeypatch):
    import robotrl.policies.export as ex

    good = (run / "actor.onnx").read_bytes()
    real = ex.build_model

    def one_element_short(record, card):  # a card naming fewer observation elements than the graph takes
        card = json.loads(json.dumps(card))
        card["spec"]["observation"] = card["spec"]["observation"][:-1]
        return real(record, card)

    monkeypatch.setattr(ex, "build_model", one_element_short)
    code, _, err = _run(capsys, ["export", run])
    _one_line_error(code, err, "export refused")
    assert "observation elements but the graph's input has" in err
    assert (run / "actor.onnx").read_bytes() == good
    assert not list(run.glob(".*.tmp"))


# -- our own bugs keep their traceback -----------------------------------------------------------------

def test_a_bug_shows_its_traceback_and_asks_for_a_report(capsys, run, monkeypatch):
    import robotrl.run.evaluate as ev

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ev, "evaluate", broken)
    code, _, err = _run(capsys, ["eval", run, "--episodes", "1"])
    assert code == 1
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "please report it" in err


# -- a robot-side install ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def robot_venv(tmp_path_factory):
    """A fresh venv with robotrl's runtime dependencies only (numpy, onnxruntime) and robotrl without
    extras, installed with pip as on a robot (pinned versions; pip's cache makes it quick)."""
    venv = tmp_path_factory.mktemp("robot") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for cmd in ([*pip, "-c", str(REPO / "constraints.txt"), "numpy", "onnxruntime"],
                [*pip, "--no-deps", "-e", str(REPO)]):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            pytest.skip(f"pip could not install into a fresh venv (offline?): {p.stderr.strip().splitlines()[-1:]}")
    return venv


def test_a_robot_side_install_says_which_extra_training_needs(robot_venv, tmp_path):
    exe = str(robot_venv / "bin" / "robotrl")
    p = subprocess.run([str(robot_venv / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert p.returncode != 0  # really without the training stack
    for argv in (["train", "ppo", "Hopper-v5"], ["train", "ppo", "--help"], ["resume", str(tmp_path)],
                 ["export", str(tmp_path)], ["tasks"], ["eval", "--onnx", "pretrained:hopper"]):
        p = subprocess.run([exe, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert p.returncode == 2, (argv, p.stderr)
        assert p.stderr.startswith("robotrl: error: ") and p.stderr.count("\n") == 1, (argv, p.stderr)
        assert "pip install 'robotrl[train]'" in p.stderr, (argv, p.stderr)
    p = subprocess.run([exe, "card", "pretrained:hopper"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "robotrl/Hopper-v5" in p.stdout, p.stderr  # the runtime part works
    assert not any(tmp_path.iterdir())


def test_an_output_that_is_a_pipe_or_a_link_is_not_swapped_for_a_regular_file(tmp_path):
    # -o /dev/null, a FIFO or a folder: a rename over it would replace the special file (as root, /dev/null);
    # a symbolic link: the link stays and the file it names is written
    from robotrl.atomic import atomic_write_bytes, replace_target
    from robotrl.errors import UserError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target in (fifo, Path(os.devnull), tmp_path):
        with pytest.raises(UserError, match="give the name of a file to write"):
            atomic_write_bytes(target, b"x")
    assert fifo.exists() and not fifo.is_file() and Path(os.devnull).is_char_device()
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary left behind
    link = tmp_path / "link.onnx"
    link.symlink_to("real.onnx")  # dangling until written
    assert replace_target(link) == tmp_path / "real.onnx"
    atomic_write_bytes(link, b"one")
    atomic_write_bytes(link, b"two")
    assert link.is_symlink() and (tmp_path / "real.onnx").read_bytes() == b"two"


def test_a_refused_write_names_the_file_asked_for_not_the_temporary(tmp_path):
    """An atomic write (export, checkpoints, videos) goes through a temporary file beside the target; when the
    operating system refuses it (here: the 'folder' is a file), the error names the file the user gave, which
    the CLI prints as its one line."""
    from robotrl.atomic import atomic_write_bytes
    from robotrl.cli import _os_error

    (tmp_path / "plain").write_text("a file, not a folder")
    target = tmp_path / "plain" / "actor.onnx"
    with pytest.raises(NotADirectoryError) as e:
        atomic_write_bytes(target, b"x")
    assert e.value.filename == str(target) and ".tmp" not in _os_error(e.value)


def test_a_mujoco_gl_backend_that_is_not_installed_is_named_in_one_line():
    """MUJOCO_GL=osmesa where libOSMesa is missing made every command end in PyOpenGL's traceback at `import mujoco`."""
    import ctypes.util

    if ctypes.util.find_library("OSMesa"):
        pytest.skip("OSMesa is installed here: MUJOCO_GL=osmesa loads")
    model = Path(__file__).resolve().parents[1] / "envs" / "assets" / "quadruped.xml"
    r = subprocess.run([sys.executable, "-m", "robotrl.cli", "robot", "inspect", str(model)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "MUJOCO_GL": "osmesa"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("robotrl: error: MUJOCO_GL=osmesa: MuJoCo could not load")
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
