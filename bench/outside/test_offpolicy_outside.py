"""TD3 and SAC tested from the outside, as a new user would: only README.md and `--help` are known.

Every check drives the `robotrl` command in its own process, in its own temporary folders. The
whole file trains on Pendulum-v1 only (10,000 steps at the task's defaults for the learning runs,
1,500-2,500 steps elsewhere) and takes about 7-10 minutes on 2 busy cores.

    cd /work/main && .venv/bin/python -m pytest -q bench/outside/test_offpolicy_outside.py
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROBOTRL = str(Path(sys.executable).with_name("robotrl"))
TASK = "Pendulum-v1"
ALGOS = ("td3", "sac")
# README: "Every mistake ... prints one line, `robotrl: error: ...`, and exits with status 2".
USER_ERROR = 2


# ---------------------------------------------------------------------------------------------
# helpers


def rl(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `robotrl ARGS...` in a separate process and return its result (text)."""
    return subprocess.run(
        [ROBOTRL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (
        f"`{' '.join(r.args)}` exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r


def train(algo: str, out: Path, *flags: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return ok(rl("train", algo, TASK, "--no-progress", "--out", str(out), *flags, timeout=timeout))


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def iteration_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv rows of training iterations (not the final eval/* row)."""
    return [r for r in metrics(run) if r.get("rollout/episodes")]


def eval_json(run: Path) -> dict:
    return json.loads((run / "eval.json").read_text())


def norm(s: str) -> str:
    return s.lower().replace("-", "_")


def assert_one_line_error(r: subprocess.CompletedProcess, *names: str) -> str:
    cmd = " ".join(r.args)
    assert "Traceback" not in r.stderr + r.stdout, f"`{cmd}` printed a traceback:\n{r.stderr}"
    assert r.returncode == USER_ERROR, (
        f"`{cmd}` exited {r.returncode}, expected {USER_ERROR}\nstderr:\n{r.stderr}"
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"`{cmd}`: expected one error line, got:\n{r.stderr}"
    line = lines[0]
    assert line.startswith("robotrl: error: "), line
    for n in names:
        assert norm(n) in norm(line), f"`{cmd}`: error does not name {n!r}: {line}"
    return line


def help_entries(help_text: str, group: str) -> dict[str, str]:
    """{--option: its whole help text} of one argument group of an argparse help."""
    lines = help_text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == f"{group}:")
    entries: dict[str, str] = {}
    current = None
    for ln in lines[start + 1 :]:
        if ln and not ln.startswith(" "):  # next group
            break
        m = re.match(r"^  (--[a-z0-9-]+)(?:, (--[a-z0-9-]+))?(?: [A-Z]+)?(.*)$", ln)
        if m:
            current = m.group(1)
            entries[current] = m.group(3).strip()
        elif current and ln.strip():
            entries[current] += " " + ln.strip()
    return entries


def wait_for_rows(run: Path, n: int, proc: subprocess.Popen, limit: float = 180) -> list[dict]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        assert proc.poll() is None, f"training ended early: {proc.communicate()}"
        try:
            rows = iteration_rows(run)
        except FileNotFoundError:
            rows = []
        if len(rows) >= n:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"no {n} metrics rows within {limit} s")


# ---------------------------------------------------------------------------------------------
# shared runs (module scope: each is trained once)


@pytest.fixture(scope="module")
def random_return() -> float:
    """Mean return of a uniform-random policy on Pendulum-v1 (the claim: about -1,200)."""
    import gymnasium as gym

    env = gym.make(TASK)
    env.action_space.seed(0)
    returns = []
    for ep in range(20):
        env.reset(seed=ep)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns))


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """TD3 and SAC on Pendulum-v1 with the task's defaults (10,000 steps), seed 0."""
    base = tmp_path_factory.mktemp("full")
    runs = {}
    for algo in ALGOS:
        out = base / algo
        runs[algo] = (out, train(algo, out, "--seed", "0", timeout=600))
    return runs


@pytest.fixture(scope="module")
def exported(full_runs) -> dict[str, Path]:
    """`robotrl export RUN` of both full runs -> RUN/actor.onnx."""
    paths = {}
    for algo, (run, _) in full_runs.items():
        ok(rl("export", str(run)))
        paths[algo] = run / "actor.onnx"
        assert paths[algo].is_file()
    return paths


# ---------------------------------------------------------------------------------------------
# --help


@pytest.mark.parametrize("algo", ALGOS)
def test_help_documents_every_hyper_parameter_with_meaning_and_default(algo):
    """README: `robotrl train ppo --help  # every hyper-parameter with its meaning and default`."""
    r = ok(rl("train", algo, "--help"))
    entries = help_entries(r.stdout, f"{algo} hyper-parameters")
    assert len(entries) >= 15, entries
    missing = {}
    for opt, text in entries.items():
        meaning = re.sub(r"\[[^\]]*\]\s*$", "", text).strip()
        if len(meaning) < 10:
            missing[opt] = f"no meaning: {text!r}"
        elif not re.search(r"default: [^\]]+\]", text):
            missing[opt] = f"no default: {text!r}"
    assert not missing, f"`robotrl train {algo} --help`: {missing}"


def test_td3_help_names_its_own_settings():
    r = ok(rl("train", "td3", "--help"))
    e = help_entries(r.stdout, "td3 hyper-parameters")
    assert "default: 2]" in e["--policy-delay"] and "actor" in e["--policy-delay"]
    assert "smoothing" in e["--target-noise"] and "default: 0.2]" in e["--target-noise"]
    assert "clip" in e["--target-noise-clip"] and "default: 0.5]" in e["--target-noise-clip"]
    assert "[ou|gaussian|param; default: gaussian]" in e["--noise"]
    assert "TD3" in r.stdout or "Twin Delayed" in r.stdout


def test_sac_help_names_automatic_temperature_and_fixed_option():
    r = ok(rl("train", "sac", "--help"))
    e = help_entries(r.stdout, "sac hyper-parameters")
    alpha = e["--alpha"]
    assert "fixed" in alpha.lower() and "automatic" in alpha.lower(), alpha
    assert "target_entropy" in alpha and "default: None]" in alpha
    te = e["--target-entropy"]
    assert "entropy" in te and "act_dim" in te and "default: None]" in te, te
    assert "default: 1.0]" in e["--alpha-init"]
    assert "log alpha" in e["--alpha-learning-rate"]
    # TD3-only settings are not offered for SAC (and vice versa)
    assert "--policy-delay" not in e and "--noise" not in e
    assert "--alpha" not in help_entries(ok(rl("train", "td3", "--help")).stdout, "td3 hyper-parameters")


def test_td3_flags_reach_the_resolved_config(tmp_path):
    r = ok(
        rl(
            "train", "td3", TASK, "--dry-run", "--out", str(tmp_path / "run"),
            "--policy-delay", "3", "--target-noise", "0.3", "--target-noise-clip", "0.4", "--noise", "ou",
        )
    )
    cfg = json.loads(r.stdout)
    assert cfg["algo"] == "td3" and cfg["task"] == TASK
    t = cfg["td3"]
    assert (t["policy_delay"], t["target_noise"], t["target_noise_clip"], t["noise"]) == (3, 0.3, 0.4, "ou")
    assert not (tmp_path / "run").exists(), "--dry-run must create nothing"


def test_sac_flags_reach_the_resolved_config(tmp_path):
    r = ok(rl("train", "sac", TASK, "--dry-run", "--alpha", "0.2", "--alpha-init", "0.5",
              "--target-entropy", "-2"))
    s = json.loads(r.stdout)["sac"]
    assert (s["alpha"], s["alpha_init"], s["target_entropy"]) == (0.2, 0.5, -2.0)
    s = json.loads(ok(rl("train", "sac", TASK, "--dry-run")).stdout)["sac"]
    assert s["alpha"] is None and s["target_entropy"] is None  # automatic temperature by default


def test_sac_target_entropy_accepts_negative_number_in_scientific_notation():
    """--target-entropy is `[float or none]` and is usually negative (-|A|); `-5e-1` is such a float."""
    r = rl("train", "sac", TASK, "--dry-run", "--target-entropy", "-5e-1")
    assert r.returncode == 0, f"`{' '.join(r.args)}` -> {r.returncode}: {r.stderr.strip()}"
    assert json.loads(r.stdout)["sac"]["target_entropy"] == -0.5


# ---------------------------------------------------------------------------------------------
# a run and the README's commands on it


def test_random_policy_scores_about_minus_1200(random_return):
    assert -1500 < random_return < -900, random_return


@pytest.mark.parametrize("algo", ALGOS)
def test_run_directory_is_what_the_readme_describes(algo, full_runs):
    run, proc = full_runs[algo]
    assert "Traceback" not in proc.stderr
    for f in ("config.json", "spec.json", "metrics.csv", "eval.json", "learning_curve.png",
              "checkpoints/latest.pt"):
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["algo"] == algo and cfg["task"] == TASK and algo in cfg
    assert cfg["run"]["seed"] == 0
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = metrics(run)
    cols = set(rows[0])
    for prefix in ("rollout/", "train/", "time/", "eval/"):
        assert any(c.startswith(prefix) for c in cols), (prefix, cols)
    it = iteration_rows(run)
    steps = [int(r["step"]) for r in it]
    assert steps == sorted(steps) and steps[-1] == cfg["run"]["total_steps"] == 10_000
    assert any(r["eval/mean_return"] for r in rows), "no eval/ row at the end"

    ev = eval_json(run)
    assert ev["episodes"] == 10 and len(ev["returns"]) == 10  # README: 10 episodes
    assert math.isclose(ev["mean_return"], float(np.mean(ev["returns"])), rel_tol=1e-9)
    assert ev["step"] == 10_000

    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file in tb/"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "rollout/ep_return_mean" in tags and "eval/mean_return" in tags, tags
    assert [e.step for e in acc.Scalars("rollout/ep_return_mean")][-1] == 10_000


@pytest.mark.parametrize("algo", ALGOS)
def test_learns_pendulum_with_task_defaults(algo, full_runs, random_return):
    run, proc = full_runs[algo]
    mean = eval_json(run)["mean_return"]
    assert mean > -500 and mean > random_return + 600, (
        f"{algo}: evaluation return {mean:.1f} after 10,000 steps, random policy {random_return:.1f}"
    )
    # the final line reports the same evaluation as eval.json
    assert f"evaluation return {mean:.1f}" in proc.stderr + proc.stdout


@pytest.mark.parametrize("algo", ALGOS)
def test_eval_cli_repeats_the_runs_evaluation(algo, full_runs):
    run, _ = full_runs[algo]
    r = ok(rl("eval", str(run), "--json"))
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(got) >= {"mean_return", "std_return", "episodes"}
    ev = eval_json(run)
    assert got["episodes"] == ev["episodes"]
    assert got["mean_return"] == pytest.approx(ev["mean_return"], abs=1e-6)
    r3 = json.loads(ok(rl("eval", str(run), "--episodes", "3", "--json")).stdout.strip().splitlines()[-1])
    assert r3["episodes"] == 3


@pytest.mark.parametrize("algo", ALGOS)
def test_export_then_onnx_eval_gives_the_same_return(algo, full_runs, exported):
    run, _ = full_runs[algo]
    onnx = exported[algo]
    r = ok(rl("eval", "--onnx", str(onnx), "--json"))
    got = json.loads(r.stdout.strip().splitlines()[-1])
    ev = eval_json(run)
    assert got["episodes"] == ev["episodes"]
    assert got["mean_return"] == pytest.approx(ev["mean_return"], rel=1e-4, abs=1e-2), (got, ev)


@pytest.mark.parametrize("algo", ALGOS)
def test_card_describes_the_run(algo, full_runs, exported):
    run, _ = full_runs[algo]
    text = ok(rl("card", str(exported[algo]))).stdout
    assert TASK in text and algo in text and "10,000 steps" in text
    card = json.loads(ok(rl("card", str(exported[algo]), "--json")).stdout)
    assert card["algo"] == algo and card["task_id"] == TASK
    assert card["evaluation"]["mean_return"] == pytest.approx(eval_json(run)["mean_return"])
    (act,) = card["spec"]["action"]
    assert (act["low"], act["high"]) == (-2.0, 2.0)  # Pendulum's torque range
    if algo == "td3":
        assert card["training"]["config"]["policy_delay"] == 2


@pytest.mark.parametrize("algo", ALGOS)
def test_exported_actor_is_deterministic_and_within_card_bounds(algo, exported):
    import onnxruntime as ort

    onnx = exported[algo]
    card = json.loads(ok(rl("card", str(onnx), "--json")).stdout)
    low = np.array([a["low"] for a in card["spec"]["action"]], dtype=np.float32)
    high = np.array([a["high"] for a in card["spec"]["action"]], dtype=np.float32)

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(512, 3)).astype(np.float32)
    obs[:128] *= 100.0  # far outside anything seen in training
    obs[128:256, :2] = np.clip(obs[128:256, :2], -1, 1)  # cos/sin-like

    outs = []
    for _ in range(2):  # two separate sessions
        sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        batch = sess.run(None, {name: obs})[0]
        again = sess.run(None, {name: obs})[0]
        single = np.concatenate([sess.run(None, {name: obs[i : i + 1]})[0] for i in range(16)])
        np.testing.assert_array_equal(batch, again)  # same observation -> same action
        np.testing.assert_allclose(single, batch[:16], rtol=0, atol=1e-6)
        outs.append(batch)
    np.testing.assert_array_equal(outs[0], outs[1])
    a = outs[0]
    assert a.shape == (512, 1) and np.isfinite(a).all()
    assert (a >= low).all() and (a <= high).all(), (a.min(), a.max(), low, high)
    assert a.max() - a.min() > 0.1, "actor ignores its observation"


def test_plot_several_runs_and_a_metric(full_runs, tmp_path):
    td3, sac = full_runs["td3"][0], full_runs["sac"][0]
    out = tmp_path / "curves.png"
    ok(rl("plot", str(td3), str(sac), "-o", str(out)))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = tmp_path / "alpha.png"
    ok(rl("plot", str(sac), "--metric", "train/alpha", "-o", str(out2)))
    assert out2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_from_the_checkpoint(full_runs, tmp_path):
    run = tmp_path / "td3"
    shutil.copytree(full_runs["td3"][0], run)
    before = iteration_rows(run)
    r = ok(rl("resume", str(run), "--steps", "11000", "--no-progress"))
    assert "at step 10,000" in r.stderr + r.stdout, r.stderr
    after = iteration_rows(run)
    assert after[: len(before)] == before, "resume rewrote the earlier metrics"
    assert [int(x["step"]) for x in after[len(before):]] == [11_000]
    assert int(after[-1]["rollout/episodes"]) > int(before[-1]["rollout/episodes"])
    assert eval_json(run)["step"] == 11_000
    assert json.loads((run / "config.json").read_text())["run"]["total_steps"] == 11_000
    # a run already at its total: a one-line refusal, not a restart
    assert_one_line_error(rl("resume", str(run), "--steps", "5000"), "steps")


# ---------------------------------------------------------------------------------------------
# seeding


@pytest.mark.parametrize("algo", ALGOS)
def test_same_seed_same_result(algo, tmp_path):
    flags = ("--steps", "2000", "--seed", "7", "--eval-episodes", "3")
    train(algo, tmp_path / "a", *flags)
    train(algo, tmp_path / "b", *flags)
    a, b = eval_json(tmp_path / "a"), eval_json(tmp_path / "b")
    assert a["returns"] == b["returns"]
    la = [r["train/critic_loss"] for r in iteration_rows(tmp_path / "a")]
    lb = [r["train/critic_loss"] for r in iteration_rows(tmp_path / "b")]
    assert la == lb and any(la)
    if algo == "td3":
        train(algo, tmp_path / "c", "--steps", "2000", "--seed", "8", "--eval-episodes", "3")
        assert eval_json(tmp_path / "c")["returns"] != a["returns"], "--seed has no effect"


# ---------------------------------------------------------------------------------------------
# SAC temperature, TD3 noise choices


def test_sac_automatic_temperature_starts_at_alpha_init_and_moves(full_runs, tmp_path):
    # defaults: the target entropy is -|A| = -1 for Pendulum's one torque
    rows = iteration_rows(full_runs["sac"][0])
    assert {float(r["train/target_entropy"]) for r in rows} == {-1.0}
    alphas = [float(r["train/alpha"]) for r in rows]
    assert alphas[0] == pytest.approx(1.0) and alphas[-1] < 0.9 * alphas[0], alphas

    run = tmp_path / "auto"
    train("sac", run, "--steps", "2500", "--alpha-init", "0.5", "--target-entropy=-0.5",
          "--eval-episodes", "1")
    rows = iteration_rows(run)
    assert {float(r["train/target_entropy"]) for r in rows} == {-0.5}
    alphas = [float(r["train/alpha"]) for r in rows]
    assert alphas[0] == pytest.approx(0.5) and alphas[-1] != pytest.approx(0.5), alphas


def test_sac_fixed_temperature_stays_fixed(tmp_path):
    run = tmp_path / "fixed"
    train("sac", run, "--steps", "2500", "--alpha", "0.2", "--eval-episodes", "1")
    assert json.loads((run / "config.json").read_text())["sac"]["alpha"] == 0.2
    alphas = {float(r["train/alpha"]) for r in iteration_rows(run) if r.get("train/alpha")}
    assert alphas and all(a == pytest.approx(0.2) for a in alphas), alphas


@pytest.mark.parametrize("noise", ["ou", "param"])
def test_td3_other_noise_choices_train(noise, tmp_path):
    run = tmp_path / noise
    train("td3", run, "--steps", "1500", "--noise", noise, "--eval-episodes", "1")
    assert json.loads((run / "config.json").read_text())["td3"]["noise"] == noise
    assert math.isfinite(eval_json(run)["mean_return"])
    assert any(r["train/critic_loss"] for r in iteration_rows(run))


def test_a_runs_config_json_repeats_its_settings(full_runs):
    run = full_runs["td3"][0]
    cfg = json.loads((run / "config.json").read_text())
    again = json.loads(ok(rl("train", "td3", TASK, "--config", str(run / "config.json"), "--dry-run")).stdout)
    assert again["td3"] == cfg["td3"] and again["run"] == cfg["run"]


# ---------------------------------------------------------------------------------------------
# stopping and killing


@pytest.mark.parametrize(
    "algo,sig", [("sac", signal.SIGINT), ("td3", signal.SIGTERM)], ids=["sac-SIGINT", "td3-SIGTERM"]
)
def test_stopped_run_leaves_a_checkpoint_that_resume_continues(algo, sig, tmp_path):
    run = tmp_path / "run"
    p = subprocess.Popen(
        [ROBOTRL, "train", algo, TASK, "--steps", "20000", "--checkpoint-every", "1000",
         "--eval-episodes", "2", "--no-progress", "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        rows = wait_for_rows(run, 3, p)
        # one writer at a time (README): a second one is refused while training runs
        second = rl("resume", str(run), "--no-progress")
        assert_one_line_error(second)
        assert "in use" in second.stderr or str(p.pid) in second.stderr, second.stderr
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "Traceback" not in err, err
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert f"robotrl resume {run}" in err + out, err  # README: "tells you the resume command"
    stopped = int(iteration_rows(run)[-1]["step"])
    assert stopped >= int(rows[-1]["step"]) and stopped < 20_000

    target = stopped + 1000
    r = ok(rl("resume", str(run), "--steps", str(target), "--no-progress"))
    m = re.search(r"at step ([\d,]+)", r.stderr + r.stdout)
    assert m and int(m.group(1).replace(",", "")) == stopped, r.stderr
    steps = [int(x["step"]) for x in iteration_rows(run)]
    assert steps == sorted(steps) and steps[-1] == target and steps.count(1000) == 1, steps
    assert eval_json(run)["step"] == target


def test_sigkilled_run_loses_at_most_checkpoint_every_steps(tmp_path):
    run = tmp_path / "run"
    p = subprocess.Popen(
        [ROBOTRL, "train", "td3", TASK, "--steps", "20000", "--checkpoint-every", "1000",
         "--eval-episodes", "1", "--no-progress", "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        rows = wait_for_rows(run, 3, p)
        p.kill()
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    last_logged = int(iteration_rows(run)[-1]["step"])
    assert last_logged >= int(rows[-1]["step"])
    # the lock dies with its holder; the resume starts from the last checkpoint, not from 0
    r = ok(rl("resume", str(run), "--steps", str(last_logged + 1000), "--no-progress"))
    m = re.search(r"at step ([\d,]+)", r.stderr + r.stdout)
    assert m, r.stderr
    start = int(m.group(1).replace(",", ""))
    assert last_logged - 1000 <= start <= last_logged and start > 0, (start, last_logged)
    assert eval_json(run)["step"] == last_logged + 1000


# ---------------------------------------------------------------------------------------------
# user mistakes: one line, status 2, no traceback, nothing written


BAD_FLAGS = [
    ("td3", ["--policy-delay", "-1"], "policy_delay"),
    ("td3", ["--policy-delay", "0"], "policy_delay"),
    ("td3", ["--policy-delay", "1.5"], "policy-delay"),
    ("td3", ["--policy-delay", "two"], "policy-delay"),
    ("td3", ["--target-noise-clip", "-1"], "target_noise_clip"),
    ("td3", ["--target-noise-clip", "abc"], "target-noise-clip"),
    ("td3", ["--target-noise", "-0.1"], "target_noise"),
    ("td3", ["--target-noise", "nan"], "target-noise"),
    ("td3", ["--noise", "brownian"], "noise"),
    ("td3", ["--tau", "1.5"], "tau"),
    ("td3", ["--gamma", "0"], "gamma"),
    ("td3", ["--batch-size", "0"], "batch_size"),
    ("td3", ["--gaussian-sigma", "-0.1"], "gaussian_sigma"),
    ("td3", ["--actor-learning-rate", "-1e-3"], "actor"),
    ("td3", ["--alpha", "0.2"], "alpha"),  # a SAC setting
    ("sac", ["--alpha", "hot"], "alpha"),
    ("sac", ["--alpha", "-0.2"], "alpha"),
    ("sac", ["--alpha", "inf"], "alpha"),
    ("sac", ["--alpha-init", "0"], "alpha_init"),
    ("sac", ["--alpha-learning-rate", "-1"], "alpha_learning_rate"),
    ("sac", ["--target-entropy", "abc"], "target-entropy"),
    ("sac", ["--target-entropy", "nan"], "target-entropy"),
    ("sac", ["--critic-learning-rate", "0"], "critic_learning_rate"),
    ("sac", ["--hidden-sizes", "0,64"], "hidden_sizes"),
    ("sac", ["--updates-per-step", "0"], "updates_per_step"),
    ("sac", ["--policy-delay", "2"], "policy-delay"),  # a TD3 setting
    ("sac", ["--steps", "-5"], "steps"),
]


@pytest.mark.parametrize(
    "algo,flags,name", BAD_FLAGS, ids=[f"{a}{''.join(f)}".replace(" ", "") for a, f, _ in BAD_FLAGS]
)
def test_bad_value_is_one_line_error(algo, flags, name, tmp_path):
    out = tmp_path / "run"
    r = rl("train", algo, TASK, "--no-progress", "--out", str(out), *flags, cwd=tmp_path)
    line = assert_one_line_error(r, name)
    # the message says what is wrong with the value, not that the value is missing
    assert "expected one argument" not in line, line
    assert not out.exists(), "a run directory was created for a rejected command"
    assert not (tmp_path / "runs").exists()


BAD_CONFIGS = [
    ("td3", "[td3]\npolicy_delay = -1\n", "policy_delay"),
    ("td3", '[td3]\npolicy_delay = "two"\n', "policy_delay"),
    ("td3", "[td3]\ntarget_noise_clip = -1\n", "target_noise_clip"),
    ("sac", '[sac]\nalpha = "hot"\n', "alpha"),
    ("sac", "[sac]\nalpha = true\n", "alpha"),
    ("sac", '[sac]\ntarget_entropy = "x"\n', "target_entropy"),
]


@pytest.mark.parametrize("algo,text,name", BAD_CONFIGS, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(BAD_CONFIGS)])
def test_bad_config_file_value_is_one_line_error(algo, text, name, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "run"
    r = rl("train", algo, TASK, "--config", str(cfg), "--no-progress", "--out", str(out))
    line = assert_one_line_error(r, name)
    assert "bad.toml" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    "algo,task,name", [("td3", "CartPole-v1", "Discrete"), ("sac", "NoSuchTask-v0", "NoSuchTask-v0")]
)
def test_unusable_task_is_one_line_error(algo, task, name, tmp_path):
    out = tmp_path / "run"
    r = rl("train", algo, task, "--no-progress", "--out", str(out))
    assert_one_line_error(r, name)
    assert not out.exists()
