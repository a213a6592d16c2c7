"""Issue 31's items on `robotrl sweep`: a Ray cluster already running on the machine (started as the README says,
`ray start --head`) is not joined by default and is joined with --address auto; a study whose trials cannot start
(a discrete task, a robot config with a negative gain, settings a task cannot have) is refused in one line before
Ray starts, and so is a folder that cannot be written; every study-file message names the file and the field
once; random mutations of a study file, checked as `robotrl sweep --dry-run` checks it, end in a study or one
line, never another exception or a hang."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sessions import kill_session

from robotrl.cli import main

REPO = Path(__file__).resolve().parents[2]
STUDY = """
[study]
algo = "ppo"
task = "Pendulum-v1"
{study}

[run]
total_steps = 64
eval_episodes = 1
{run}

[ppo]
num_envs = 1
rollout_steps = 64
minibatch_size = 64
{ppo}

[space]
{space}
"""


def study_file(folder: Path, *, study: str = "seeds = 1", run: str = "", ppo: str = "", space: str = "",
               text: str | None = None) -> Path:
    p = folder / "study.toml"
    p.write_text(text if text is not None else STUDY.format(study=study, run=run, ppo=ppo, space=space))
    return p


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robotrl: error: "), err
    return lines[0]


# -- item 4a: a Ray cluster on the machine -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ray_cluster_on_this_machine_is_joined_only_when_asked(tmp_path):
    """`ray start --head` leaves the cluster's address in $TMPDIR/ray/ray_current_cluster, which plain
    `ray.init()` joins (and refuses num_cpus there: a ValueError traceback). The cluster here is the test's own: its
    own TMPDIR (so Ray's files and that address are private to it), free ports, its own session to kill."""
    pytest.importorskip("ray", reason="the sweep extra: pip install 'robotrl[sweep]'")
    tmp = tempfile.mkdtemp(prefix="rq", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()",
         "start", "--head", "--port", str(_free_port()), "--ray-client-server-port", str(_free_port()),
         "--dashboard-agent-listen-port", str(_free_port()), "--num-cpus", "1", "--include-dashboard", "false",
         "--disable-usage-stats", "--block"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    path = study_file(tmp_path)
    out = tmp_path / "study"
    try:
        end = time.monotonic() + 120
        while not (Path(tmp) / "ray" / "ray_current_cluster").exists():
            assert head.poll() is None, head.stderr.read()
            assert time.monotonic() < end, "ray start --head did not come up"
            time.sleep(0.2)
        sweep = [sys.executable, "-m", "robotrl", "sweep"]
        # the default: a private Ray with --cpus, beside the cluster
        p = subprocess.run([*sweep, str(path), "--out", str(out), "--cpus", "2"], env=env, capture_output=True,
                           text=True, timeout=240)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "on Ray (local: 2 CPUs, 1 node(s))" in p.stderr, p.stderr
        assert "Token authentication" not in p.stderr and "WARNING" not in p.stderr, p.stderr  # item 7
        assert (out / "trials" / "c000-s0" / "eval.json").is_file()
        # --address auto: the cluster (its 1 CPU), and no --cpus there
        p = subprocess.run([*sweep, "--resume", str(out), "--address", "auto"], env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "on Ray (auto: 1 CPUs, 1 node(s))" in p.stderr and "Token authentication" not in p.stderr, p.stderr
        assert head.poll() is None, "the cluster must outlive the studies"
    finally:  # the cluster is the test's own: SIGKILL its session (`ray stop` would stop every Ray of this user)
        kill_session(head.pid)
        head.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def test_cpus_is_refused_with_a_cluster_and_the_help_says_which_ray(capsys):
    assert main(["sweep", "x.toml", "--address", "auto", "--cpus", "2"]) == 2
    assert "--cpus sizes a local Ray" in one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a private Ray of this command's own, even when a cluster runs here" in text
    assert "--dry-run" in text


# -- item 5: what a trial needs, checked before Ray starts ----------------------------------------------------


def _negative_kp_robot(folder: Path) -> Path:
    assets = REPO / "envs" / "assets"
    shutil.copy(assets / "quadruped.xml", folder / "quadruped.xml")
    config = folder / "robot.toml"
    config.write_text((assets / "quadruped.toml").read_text().replace("kp = 40.0", "kp = -40.0"))
    return config


@pytest.mark.parametrize(("kw", "needle"), [
    ({"text": '[study]\nalgo = "ppo"\ntask = "CartPole-v1"\n'},
     "[study] task 'CartPole-v1' has a Discrete action space"),
    ({"text": '[study]\nalgo = "ppo"\ntask = "legged:{robot}"\n'}, "[study] task: robot config"),
    ({"text": '[study]\nalgo = "sac"\ntask = "Pendulum-v1"\n[run]\ntotal_steps = 500\n'},
     "learning_starts 1,000 is not below total_steps 500"),
    ({"text": '[study]\nalgo = "sac"\ntask = "Pendulum-v1"\n[run]\ntotal_steps = 5000\n[space]\n'
              'learning_starts = [100, 9000]\n'}, "[space] learning_starts 9,000 is not below total_steps 5,000"),
    ({"space": '"run.randomize_mass" = [0.0, 0.1]'},
     "[space] run.randomize_mass: domain randomisation (randomize_mass) changes a MuJoCo model's parameters; task "
     "'Pendulum-v1' is not simulated in MuJoCo"),
    ({"run": "video = true"}, "[run] video: task 'Pendulum-v1' is not simulated in MuJoCo"),
    ({"run": 'device = "cuda:99"'}, "device 'cuda:99': "),
    # random search: every configuration drawn (seeded) is checked, not only each value alone
    ({"text": '[study]\nalgo = "ppo"\ntask = "Pendulum-v1"\nsampler = "random"\ntrials = 20\n[ppo]\nnum_envs = 2\n'
              'rollout_steps = 64\nminibatch_size = 64\n[space]\nnum_envs = { int_uniform = [2, 8] }\n'
              'minibatch_size = [64, 128]\n'}, ", minibatch_size = 128}: minibatch_size 128 must divide the batch "
                                                "size"),
])
def test_a_study_whose_trials_cannot_start_is_refused_before_ray(tmp_path, kw, needle):
    if "text" in kw:
        kw = {"text": kw["text"].replace("{robot}", str(_negative_kp_robot(tmp_path)))}
    path = study_file(tmp_path, **kw)
    code, _, err = cli(["sweep", str(path), "--out", tmp_path / "out"])
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"robotrl: error: study file {str(path)!r}: "), line
    assert needle in line, line
    assert "on Ray" not in err and not (tmp_path / "out").exists()


def test_robotrl_train_refuses_domain_randomisation_without_mujoco(capsys):
    """Found through the study's check: `train --randomize-mass` on Pendulum-v1 was an AttributeError traceback."""
    assert main(["train", "ppo", "Pendulum-v1", "--randomize-mass", "0.1", "--dry-run"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "task 'Pendulum-v1' is not simulated in MuJoCo" in line, line


# -- item 7: a folder that cannot be written; each field named once ------------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a read-only one, or (root writes anywhere) sysfs."""
    if os.geteuid() == 0:
        return Path("/sys/robotrl-study")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro / "study"


def test_an_unwritable_folder_is_refused_before_ray(tmp_path):
    out = _unwritable(tmp_path)
    path = study_file(tmp_path)
    for argv in (["sweep", str(path), "--out", str(out)], ["sweep", str(path), "--out", str(out), "--dry-run"]):
        code, _, err = cli(argv)
        line = one_error_line(err)
        assert code == 2 and f"--out {str(out)!r}: cannot write in {str(out.parent)!r}" in line, line
        assert "choose a writable location" in line and "on Ray" not in err


@pytest.mark.parametrize(("kw", "message", "field"), [
    ({"space": 'learning_rate = ["abc"]'}, "[space] learning_rate: expected float, got 'abc'", "learning_rate"),
    ({"space": "learning_rate = [3e-4, -1.0]"}, "[space] learning_rate must be > 0, got -1.0", "learning_rate"),
    ({"ppo": 'learning_rate = "x"'}, "[ppo] learning_rate: expected float, got 'x'", "learning_rate"),
    ({"ppo": "learning_rate = -1.0"}, "[ppo] learning_rate must be > 0, got -1.0", "learning_rate"),
    ({"ppo": "learning_rat = 0.1"}, "[ppo] unknown key 'learning_rat': not a hyper-parameter of ppo (did you "
                                    "mean 'learning_rate'?)", "learning_rat'"),
    ({"space": "learning_rat = [1e-3]"}, "[space] learning_rat: not a hyper-parameter of ppo (did you mean "
                                         "'learning_rate'?)", "learning_rat:"),
    ({"space": '"run.stepz" = [1]'}, "[space] run.stepz: not a run setting", "stepz"),
    ({"run": "eval_every = -3"}, "[run] eval_episodes and eval_every must be >= 0", "eval_every"),
    ({"run": "obs_noise = -1.0"}, "[run] obs_noise must be >= 0, got -1.0", "obs_noise"),
    ({"space": '"run.obs_noise" = ["a"]'}, "[space] run.obs_noise: expected float, got 'a'", "obs_noise"),
    ({"space": '"run.obs_noise" = [-1.0]'}, "[space] run.obs_noise must be >= 0, got -1.0", "obs_noise"),
    ({"space": '"run.total_steps" = [0]'}, "[space] run.total_steps must be a positive number of steps",
     "total_steps"),
    ({"space": 'hidden_sizes = [[64, "a"]]'}, "[space] hidden_sizes: expected int, got 'a'", "hidden_sizes"),
    ({"space": "minibatch_size = [64, 48]"}, "[space] minibatch_size 48 must divide the batch size", "[space]"),
    ({"study": "seeds = 1\nsampler_seed = -1"}, "[study] sampler_seed: expected an integer in [0, ", "sampler_seed"),
])
def test_each_study_message_names_the_file_and_the_field_once(tmp_path, kw, message, field):
    path = study_file(tmp_path, **kw)
    code, _, err = cli(["sweep", str(path), "--dry-run"])
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"robotrl: error: study file {str(path)!r}: "), line
    assert message in line and line.count(field) == 1, line


def test_dry_run_prints_the_trials_and_starts_nothing(tmp_path):
    path = study_file(tmp_path, study="seeds = [3, 7]", space='learning_rate = [3e-4, 1e-3]\n"run.obs_noise" = [0.0]')
    out = tmp_path / "study"
    code, stdout, err = cli(["sweep", str(path), "--out", out, "--dry-run"])
    assert code == 0 and err == "", err
    assert "grid: 2 configuration(s) x 2 seed(s) = 4 trials" in stdout
    assert "c001  ppo Pendulum-v1  learning_rate=0.001 run.obs_noise=0  (64 steps)" in stdout, stdout
    assert "seeds: 3, 7" in stdout and not out.exists()
    # the example study of the README checks out as it is shipped
    code, stdout, _ = cli(["sweep", REPO / "examples" / "studies" / "ppo-hopper-lr.toml", "--out", out, "--dry-run"])
    assert code == 0 and "3 configuration(s) x 5 seed(s) = 15 trials" in stdout


# -- the fuzz suite's study files ------------------------------------------------------------------------------

CASES = int(os.environ.get("ROBOTRL_FUZZ_CASES", "0"))  # bench/fuzz.py: N random cases; CI: a fixed set

BASE: dict[str, dict[str, Any]] = {
    "study": {"algo": "ppo", "task": "Pendulum-v1", "seeds": 2, "sampler": "grid", "max_concurrent": 1,
              "curve": "rollout/ep_return_mean"},
    "run": {"total_steps": 4096, "eval_every": 2048, "eval_episodes": 2, "checkpoint_every": 2048},
    "ppo": {"num_envs": 2, "rollout_steps": 64, "minibatch_size": 64},
    "space": {"learning_rate": [3e-4, 1e-3], "run.obs_noise": [0.0, 0.01]},
    "early_stop": {"min_steps": 2048, "reduction": 2},
}
KEYS = ["algo", "task", "seeds", "sampler", "trials", "sampler_seed", "max_failures", "max_concurrent", "curve",
        "total_steps", "eval_every", "eval_episodes", "checkpoint_every", "workers", "seed", "video", "device",
        "obs_noise", "action_delay", "randomize_mass", "num_envs", "rollout_steps", "minibatch_size",
        "learning_rate", "clip_coef", "hidden_sizes", "target_entropy", "learning_starts", "buffer_size",
        "run.obs_noise", "run.total_steps", "run.seed", "run.action_delay", "min_steps", "reduction", "bogus"]
TABLES = ["study", "run", "ppo", "sac", "td3", "space", "early_stop", "runn", "spaces"]
WORDS = ["ppo", "sac", "td3", "trpo", "ddpg", "Pendulum-v1", "Hopper-v5", "CartPole-v1", "MountainCar-v0",
         "legged:missing.toml", "reach:", "grid", "random", "tpe", "cpu", "cuda", "rollout/ep_return_mean",
         "eval/mean_return", "train/loss", "", " ", "\u00e9", "a" * 300]


def _scalars() -> st.SearchStrategy:
    return st.one_of(
        st.integers(-5, 10_000), st.integers(), st.sampled_from([0, 1, 2, 64, 2**31, 2**63, 10**30]),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1e-9, 3e-4, 0.5, 1.0, 2.0, -1.0]),
        st.booleans(), st.sampled_from(WORDS), st.text(max_size=8))


def _values() -> st.SearchStrategy:
    leaf = _scalars()
    ranges = st.builds(lambda kind, b: {kind: b}, st.sampled_from(["uniform", "log_uniform", "int_uniform", "grid"]),
                       st.one_of(st.lists(leaf, max_size=3), leaf))
    return st.one_of(leaf, st.lists(leaf, max_size=4), st.lists(st.lists(leaf, max_size=3), max_size=3), ranges,
                     st.just({}), st.just([]))


def _toml_value(v: Any) -> str:
    import json
    import math

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # TOML takes JSON's escapes but not a surrogate pair's
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(doc: dict[str, Any]) -> str:
    import json

    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines += [f"[{json.dumps(name)}]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


PLAUSIBLE: dict[str, list[Any]] = {  # values a user might write for a key, right or nearly right
    "algo": ["ppo", "sac", ["ppo", "trpo"], ["ppo", "ppo"], "PPO", []],
    "task": ["Pendulum-v1", "InvertedPendulum-v5", ["Pendulum-v1", "Pendulum-v1"], "CartPole-v1",
             "legged:missing.toml", "Pendulum"],
    "seeds": [1, 3, [0, 7], [0, 0], 0, -1, 10_001, [2**32]],
    "sampler": ["grid", "random", "tpe", "Grid"],
    "trials": [1, 4, 0, 100_001],
    "total_steps": [64, 2048, 4096, 0, 10**13, 1e3, 4096.5],
    "eval_every": [0, 1024, -1], "eval_episodes": [0, 1, 100_001], "checkpoint_every": [0, 1024, 10**13],
    "workers": [-1, 0, 2, 2000], "video": [True, False], "device": ["cpu", "cuda", "cuda:7", "tpu"],
    "obs_noise": [0.0, 0.01, -0.1], "action_delay": [0, 2, 1001], "randomize_mass": [0.0, 0.1, 2.0],
    "num_envs": [1, 3, 4096, 4097, [1, 2, 3]], "rollout_steps": [1, 64, 100], "minibatch_size": [32, 48, 64, [64, 96]],
    "learning_rate": [3e-4, 0.0, [1e-4, 1e-3], {"log_uniform": [1e-5, 1e-3]}, {"uniform": [1e-3, 1e-4]},
                      {"log_uniform": [0.0, 1e-3]}, {"int_uniform": [1.5, 3]}],
    "clip_coef": [0.2, [0.1, 0.3], 1.0], "hidden_sizes": [[64, 64], [[64], [32, 32]], [0], []],
    "target_entropy": [-1.0, 5.0], "learning_starts": [100, 10**6], "buffer_size": [1, 10**6],
    "run.obs_noise": [[0.0, 0.05], {"uniform": [0.0, 0.05]}], "run.total_steps": [[64, 128], [0]],
    "run.seed": [[1, 2]], "run.action_delay": [{"int_uniform": [0, 3]}], "min_steps": [1, 2048, 10**9],
    "reduction": [1, 2, 3, 101],
}


@st.composite
def _study_text(draw: Any) -> str:
    doc = {t: dict(v) for t, v in BASE.items()}
    if draw(st.booleans()):
        del doc["early_stop"]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set"] * 8 + ["delete"] * 2 + ["table", "drop_table", "retable"]))
        table = draw(st.sampled_from(sorted(doc) or ["study"]))
        if op == "set":
            doc.setdefault(table, {})
            if isinstance(doc[table], dict):
                key = draw(st.sampled_from(KEYS))
                plausible = PLAUSIBLE.get(key)
                doc[table][key] = draw(st.sampled_from(plausible) if plausible and draw(st.integers(0, 3))
                                       else _values())
        elif op == "delete" and isinstance(doc.get(table), dict) and doc[table]:
            doc[table].pop(draw(st.sampled_from(sorted(doc[table]))))
        elif op == "table":
            doc[draw(st.sampled_from(TABLES))] = draw(st.one_of(st.just({}), _values()))
        elif op == "drop_table":
            doc.pop(table, None)
        elif op == "retable" and table in doc:
            doc[draw(st.sampled_from(TABLES))] = doc.pop(table)
    text = _toml(doc)
    if draw(st.integers(0, 19)) == 0:  # now and then the text itself: a cut or a flipped byte
        raw = bytearray(text.encode())
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] if draw(st.booleans()) else raw[:at] + bytes([raw[at] ^ (1 << draw(st.integers(0, 7)))]) + \
            raw[at + 1:]
        text = raw.decode("utf-8", errors="surrogateescape")
    return text


class _Hang(BaseException):
    """Raised by the alarm in a case that runs past its time: not an Exception, so robotrl cannot catch it."""


@settings(max_examples=max(400, CASES), derandomize=not CASES, database=None, deadline=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
@given(text=_study_text())
def test_random_study_files_are_a_study_or_one_line(text, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "study.toml"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))

    def hang(signum: int, frame: Any) -> None:
        raise _Hang(f"the check of this study ran past 20 s:\n{text}")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    try:
        code, stdout, err = cli(["sweep", str(path), "--out", folder / "out", "--dry-run"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "Traceback" not in err and code in (0, 2), f"exit {code}\n{text}\n{err}"
    event("a study" if code == 0 else "malformed TOML" if "is malformed" in err else
          "refused: " + err.split("': ", 1)[-1].split(" ", 1)[0])  # --hypothesis-show-statistics
    if code == 2:
        assert one_error_line(err).startswith("robotrl: error: study file "), f"{text}\n{err}"
    else:
        assert "dry run: every setting of every trial checked" in stdout and err == "", f"{text}\n{err}"
    assert not (folder / "out").exists()
