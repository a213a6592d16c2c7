"""Property-based fuzzing of every input (issue 16): random command-line values, random config documents,
random truncations, bit flips and deletions of each run-directory file and of the ONNX file, random card
mutations, random edits of a robot config and of an MJCF model (issue 31: `robot inspect` or `tasks --spec`,
each case under a time limit, none of MuJoCo's raw warnings). For every case: exit 0, or exit 2 with one
``robotrl: error:`` line; never a traceback; and the run directory is either unchanged or valid (every file the
command wrote reads back through its validating reader, no temporary file is left, the lock is free).

Commands run in-process (`robotrl.cli.main`), so a case costs milliseconds; `test_real_processes` runs
a few cases as real processes to check the exit status and stderr as a shell sees them.

CI runs the derandomised profile (fixed cases, about a minute on 2 cores). ``bench/fuzz.py --cases N``
runs the same properties with N random cases each (``ROBOTRL_FUZZ_CASES``) and reports counts and times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robotrl.algorithms import registry as algos
from robotrl.cli import RUN_FLAGS, main
from robotrl.config import cli_flag
from robotrl.errors import UserError
from robotrl.run.rundir import LOCK_NAME, RunDir

CASES = int(os.environ.get("ROBOTRL_FUZZ_CASES", "0"))  # 0: the CI counts below
RANDOM = bool(CASES)  # bench/fuzz.py: fresh random cases; CI: the same cases every run


def _settings(ci_cases: int, *, share: float = 1.0) -> settings:
    """`ci_cases` in CI; `share` of ROBOTRL_FUZZ_CASES (at least `ci_cases`) in bench/fuzz.py."""
    n = max(ci_cases, int(CASES * share)) if CASES else ci_cases
    return settings(max_examples=n, derandomize=not RANDOM, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


TASK = "InvertedPendulum-v5"
SMALL = ["--num-envs", "4", "--rollout-steps", "64", "--minibatch-size", "64", "--update-epochs", "2",
         "--workers", "0", "--eval-episodes", "1", "--no-progress"]


# -- running a command and judging the outcome ------------------------------------------------------------

def _cli(argv: list[Any]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # --help, --version
            code = e.code if isinstance(e.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def _judge(argv: list[Any], code: int, err: str) -> None:
    """Exit 0, or exit 2 with one error line (the last line, after any progress lines); no traceback."""
    assert "Traceback" not in err, f"{argv}\n{err}"
    assert code in (0, 2), f"{argv} exited {code}\n{err}"
    errors = [line for line in err.splitlines() if line.startswith("robotrl: error: ")]
    if code == 2:
        assert len(errors) == 1 and err.rstrip("\n").splitlines()[-1] == errors[0], f"{argv}\n{err}"
    else:
        assert not errors, f"{argv}\n{err}"


def _hashes(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def _check_run_dir(folder: Path, before: dict[str, str], *, succeeded_resume: bool = False) -> None:
    """Unchanged, or valid: every file that changed reads back through its validating reader."""
    after = _hashes(folder)
    changed = {k for k in after if before.get(k) != after[k]}
    leftovers = [k for k in after if k.endswith(".tmp")]
    assert not leftovers, f"temporary files left: {leftovers}"
    if folder.exists():
        assert RunDir(folder).holder() is None, "the lock is still held"
    if not changed and not succeeded_resume:
        return
    rd = RunDir(folder)
    settings_ = rd.read_settings() if ("config.json" in changed or succeeded_resume) else None
    for name in sorted(changed):
        if name == "config.json":
            continue  # read above
        if name == "spec.json":
            rd.read_spec()
        elif name == "metrics.csv":
            rd.read_metrics(drop_torn_tail=False)
        elif name == "eval.json":
            rd.read_eval()
        elif name == "checkpoints/latest.pt":
            rd.load_checkpoint()
        elif name.endswith(".onnx"):
            from robotrl.deploy.runtime import load_card

            load_card(folder / name)
        elif name.endswith(".png"):
            assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if succeeded_resume:  # a run that trained must be whole and consistent
        assert settings_ is not None
        state = rd.load_checkpoint(settings_)
        assert state["num_steps"] >= settings_.run.total_steps  # it ran to the end it reported
        rd.read_spec(settings_)
        rd.read_metrics(drop_torn_tail=False)


# -- strategies ---------------------------------------------------------------------------------------------

SPECIAL = ["nan", "NaN", "inf", "-inf", "Infinity", "0", "-0", "-1", "1", "2", "1e400", "-1e400", "1e-400", "",
           " ", "1_000", "0x10", "true", "false", "none", "null", "1,2", "64,64", "0,64", "٣", "1e6", "-1e9",
           "2**31", "3.5", "1e309", "4294967296", "-2147483649", "cpu", "cuda", "cuda:0", "mps", "clip",
           "kl_penalty", "ou", "param", "tanh", "relu", "concurrent", "\x00", "1" * 5000, "9" * 20]
# values that cannot make a real run expensive: valid ones are small, large ones are over the limits
CHEAP = ["nan", "inf", "-inf", "0", "-0", "-1", "1", "2", "1e400", "-1e400", "1e-400", "", " ", "true", "false",
         "none", "1,2", "0,64", "٣", "-1e9", "2**31", "3.5", "1e309", "4294967296", "\x00"]
cli_values = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
    st.lists(st.integers(-3, 300), max_size=4).map(lambda xs: ",".join(map(str, xs))),
)


def _flags(algo: str) -> list[str]:
    _, Config = algos.get(algo).load()
    return sorted({*RUN_FLAGS, "--envs", *(cli_flag(f.name) for f in dataclasses.fields(Config) if f.init)})


# JSON values for documents, cards and config.json: as in CHEAP, a number a real run would accept is small
# (so a resumed run stays quick); the others are far outside every limit
json_scalars = st.one_of(st.none(), st.booleans(), st.sampled_from([-1, 0, 1, 2, 3, 7, 2**31, 2**63, -2**63, 10**400]),
                         st.sampled_from([-1.5, -0.0, 0.5, 1.5, 3.5, 1e308, 5e-324, float("nan"), float("inf"),
                                          float("-inf")]), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3)), max_leaves=6)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value)
    except ValueError:  # 10**400 as a float does not exist; as text it is still JSON
        return json.dumps(str(value))


# -- 1. command-line values ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def empty_cwd(tmp_path_factory):
    return tmp_path_factory.mktemp("cwd")


@_settings(500)
@given(data=st.data())
def test_random_command_line_values(data, empty_cwd):
    """`train --dry-run` with 1-4 random flag values: every value is parsed and checked exactly as for a
    real run, nothing is created, and an accepted configuration is itself a valid config file."""
    algo = data.draw(st.sampled_from(sorted(algos.ALGORITHMS)), "algo")
    task = data.draw(st.sampled_from([TASK, "robotrl/ArmReach-v0", "Pendulum-v1", "CartPole-v1", "Hoper-v5", "",
                                      "robotrl/", "../x"]), "task")
    flags = data.draw(st.lists(st.sampled_from(_flags(algo)), min_size=1, max_size=4, unique=True), "flags")
    values = [data.draw(cli_values, f) for f in flags]
    argv = ["train", algo, task, *(f"{f}={v}" for f, v in zip(flags, values, strict=True)), "--dry-run"]
    old = os.getcwd()
    os.chdir(empty_cwd)
    try:
        code, out, err = _cli(argv)
    finally:
        os.chdir(old)
    _judge(argv, code, err)
    assert not any(empty_cwd.iterdir()), f"{argv} created files"
    if code == 0:  # the resolved configuration round-trips through --config
        from robotrl.run.train import resolve_config

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(out)
        try:
            run, cfg = resolve_config(algo, task, config_file=f.name)
        finally:
            os.unlink(f.name)
        conf = json.loads(out)
        assert json.loads(json.dumps(dataclasses.asdict(cfg))) == conf[algo]
        assert run.seed == conf["run"]["seed"]


@_settings(100)
@given(data=st.data())
def test_random_values_in_real_runs(data, tmp_path_factory):
    """Real (tiny) training runs with random values for cheap settings: exit 0 with a valid run directory,
    or exit 2 leaving nothing behind (or, if training had started, a valid run directory)."""
    cheap = st.one_of(st.sampled_from(CHEAP), st.integers(-2, 9).map(str), st.floats(-2, 2).map(repr))
    flags = data.draw(st.lists(st.sampled_from(
        ["--steps", "--seed", "--checkpoint-every", "--eval-every", "--eval-episodes", "--num-envs", "--workers",
         "--rollout-steps", "--minibatch-size", "--update-epochs", "--learning-rate", "--gamma", "--gae-lambda",
         "--obs-clip", "--reward-clip", "--clip-coef", "--ent-coef", "--max-grad-norm", "--target-kl",
         "--normalize-obs", "--hidden-sizes", "--randomize-mass", "--obs-noise", "--action-delay", "--threads",
         "--sensor-noise", "--latency", "--base-payload"]),
        min_size=1, max_size=3, unique=True), "flags")
    values = [data.draw(cheap, f) for f in flags]
    if "--steps" in flags:
        values[flags.index("--steps")] = data.draw(st.sampled_from(["1", "64", "300", "-5", "nan", "x"]), "steps")
    if "--eval-episodes" in flags:
        values[flags.index("--eval-episodes")] = data.draw(st.sampled_from(["0", "1", "-1", "x"]), "episodes")
    out = tmp_path_factory.mktemp("real") / "run"
    argv = ["train", "ppo", TASK, "--steps", "256", *SMALL, "--out", out,
            *(f"{f}={v}" for f, v in zip(flags, values, strict=True))]
    code, _, err = _cli(argv)
    _judge(argv, code, err)
    if code == 0 or out.exists():
        _check_run_dir(out, {}, succeeded_resume=code == 0)


# -- 2. config documents -----------------------------------------------------------------------------------

@_settings(400)
@given(data=st.data())
def test_random_config_documents(data, tmp_path_factory):
    algo = data.draw(st.sampled_from(sorted(algos.ALGORITHMS)), "algo")
    _, Config = algos.get(algo).load()
    fields = [f.name for f in dataclasses.fields(Config) if f.init]
    keys = st.one_of(st.sampled_from([*fields, "run", algo, "algo", "task", "command", "robotrl_version"]),
                     st.text(max_size=6))
    kind = data.draw(st.sampled_from(["json", "json", "toml-text", "bytes"]), "kind")
    folder = tmp_path_factory.mktemp("conf")
    if kind == "json":
        doc = data.draw(st.one_of(json_values, st.dictionaries(keys, json_values, max_size=5),
                                  st.fixed_dictionaries({"run": st.dictionaries(
                                      st.sampled_from(["seed", "total_steps", "device", "threads", "workers",
                                                       "obs_noise", "nope"]), json_values, max_size=3)})), "doc")
        path = folder / "c.json"
        path.write_text(_dumps(doc))
    elif kind == "toml-text":
        lines = data.draw(st.lists(st.tuples(keys, st.sampled_from(
            ["1", "-1", "nan", "inf", "1e400", "true", '"x"', "[1, 2]", "{a = 1}", "3.5", "= =", ""])), max_size=5))
        path = folder / "c.toml"
        path.write_text("\n".join(f"{k} = {v}" for k, v in lines))
    else:
        path = folder / data.draw(st.sampled_from(["c.json", "c.toml", "c.yaml"]), "name")
        path.write_bytes(data.draw(st.binary(max_size=64), "bytes"))
    argv = ["train", algo, TASK, "--config", path, "--dry-run"]
    code, _, err = _cli(argv)
    _judge(argv, code, err)


# -- 3. damaged run-directory files -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzrun")
    assert main(["train", "ppo", TASK, "--steps", "512", *SMALL, "--out", str(root / "run")]) == 0
    assert main(["export", str(root / "run")]) == 0
    return root / "run"


FILES = ["config.json", "spec.json", "metrics.csv", "eval.json", "checkpoints/latest.pt", "actor.onnx"]


def _damage_bytes(data: Any, raw: bytes) -> bytes | None:
    """One random byte-level damage; None deletes the file."""
    how = data.draw(st.sampled_from(["truncate", "flip", "flip", "delete", "random", "cut", "empty"]), "damage")
    if how == "delete":
        return None
    if how == "empty":
        return b""
    if how == "random":
        return data.draw(st.binary(max_size=256), "random bytes")
    if how == "truncate":
        return raw[: data.draw(st.integers(0, max(0, len(raw) - 1)), "keep")]
    if how == "cut":
        a = data.draw(st.integers(0, len(raw)), "cut at")
        return raw[:a] + raw[a + data.draw(st.integers(1, 64), "cut length"):]
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8), "flips")):
        i = data.draw(st.integers(0, len(out) - 1), "byte")
        out[i] ^= 1 << data.draw(st.integers(0, 7), "bit")
    return bytes(out)


def _mutate_json(data: Any, obj: Any) -> Any:
    """Delete a key or replace a value at a random place in a JSON document."""
    paths = []

    def walk(x: Any, path: tuple) -> None:
        paths.append(path)
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, (*path, k))
        elif isinstance(x, list):
            for i, v in enumerate(x[:4]):
                walk(v, (*path, i))

    walk(obj, ())
    path = data.draw(st.sampled_from(paths), "path")
    replacement = data.draw(st.one_of(json_values, st.just("__delete__")), "replacement")
    if not path:
        return replacement if replacement != "__delete__" else {}
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if replacement == "__delete__":
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return obj


COMMANDS = {
    "resume": lambda p: ["resume", p, "--steps", "768", "--no-progress"],
    "eval": lambda p: ["eval", p, "--episodes", "1"],
    "export": lambda p: ["export", p],
    "plot": lambda p: ["plot", p],
    "card": lambda p: ["card", p / "actor.onnx"],
    "eval-onnx": lambda p: ["eval", "--onnx", p / "actor.onnx", "--episodes", "1"],
}


@_settings(500)
@given(data=st.data())
def test_damaged_run_directory_files(data, base_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(base_run, run)
    name = data.draw(st.sampled_from(FILES), "file")
    path = run / name
    raw = path.read_bytes()
    if name.endswith(".json") and data.draw(st.booleans(), "structured"):
        new: bytes | None = _dumps(_mutate_json(data, json.loads(raw))).encode()
    elif name.endswith(".csv") and data.draw(st.booleans(), "structured"):
        lines = raw.decode().splitlines(keepends=True)
        i = data.draw(st.integers(0, len(lines) - 1), "line")
        cells = lines[i].rstrip("\r\n").split(",")
        j = data.draw(st.integers(0, len(cells) - 1), "cell")
        cells[j] = data.draw(st.sampled_from(["abc", "", "nan", "-1", "1e400", "1.5", '"', "a,b"]), "value")
        lines[i] = ",".join(cells) + "\r\n"
        new = "".join(lines).encode()
    else:
        new = _damage_bytes(data, raw)
    if new is None:
        path.unlink()
    else:
        path.write_bytes(new)
    command = data.draw(st.sampled_from(sorted(COMMANDS)), "command")
    before = _hashes(run)
    argv = COMMANDS[command](run)
    code, _, err = _cli(argv)
    _judge(argv, code, err)
    _check_run_dir(run, before, succeeded_resume=command == "resume" and code == 0)


# -- 4. the ONNX file and its card -------------------------------------------------------------------------

@_settings(300)
@given(data=st.data())
def test_card_mutations(data, base_run, tmp_path_factory):
    import onnx

    model = onnx.load(str(base_run / "actor.onnx"))
    card = json.loads({p.key: p.value for p in model.metadata_props}["robotrl_card"])
    mutated = card
    for _ in range(data.draw(st.integers(1, 3), "mutations")):
        mutated = _mutate_json(data, mutated)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"robotrl_card": _dumps(mutated)})
    path = tmp_path_factory.mktemp("card") / "actor.onnx"
    onnx.save(model, str(path))
    for argv in (["card", path], ["card", path, "--json"], ["eval", "--onnx", path, "--episodes", "1"]):
        code, _, err = _cli(argv)
        _judge(argv, code, err)


def test_an_integer_beyond_float_range_in_a_card_is_refused_like_any_bad_number(base_run, tmp_path):
    # found by test_card_mutations: math.isfinite(10**400) raises OverflowError instead of answering False
    import onnx

    model = onnx.load(str(base_run / "actor.onnx"))
    card = json.loads({p.key: p.value for p in model.metadata_props}["robotrl_card"])
    for where in (("evaluation", "mean_return"), ("control_period",), ("export", "parity_max_abs_diff")):
        mutated = json.loads(json.dumps(card))
        node = mutated
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = 10**400
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, {"robotrl_card": _dumps(mutated)})
        path = tmp_path / f"{'-'.join(where)}.onnx"
        onnx.save(model, str(path))
        for argv in (["card", path], ["eval", "--onnx", path, "--episodes", "1"]):
            code, _, err = _cli(argv)
            _judge(argv, code, err)
    for where in (("normalizer", "frozen_after_steps"), ("spec", "max_episode_steps"), ("training", "steps"),
                  ("evaluation", "seed"), ("actor", "parameters"), ("export", "opset"), ("export", "parity_samples"),
                  ("spec", "control_period")):  # the last five only printed by `card`, but printed in full
        mutated = json.loads(json.dumps(card))
        mutated[where[0]][where[1]] = 10**400  # an integer field: no 64-bit counter holds it
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, {"robotrl_card": _dumps(mutated)})
        path = tmp_path / f"{'-'.join(where)}.onnx"
        onnx.save(model, str(path))
        code, _, err = _cli(["card", path])
        assert code == 2 and ".".join(where) in err and err.count("\n") == 1, err
        assert "100000... (401 digits)" in err and len(err) < 400, err  # the number shortened, its length right


# -- 5b. robot configs and MJCF models (issue 31) -----------------------------------------------------------

ROBOT_SOURCES = {  # template -> (folder, config, model): our quadruped and the tests' 3-joint arm
    "legged": (Path(__file__).resolve().parents[1] / "envs" / "assets", "quadruped.toml", "quadruped.xml"),
    "reach": (Path(__file__).resolve().parent / "assets", "arm3.toml", "arm3.xml"),
}
TOML_VALUES = ["0", "-1", "1", "4", "1000", "0.05", "0.001", "1e-9", "1e9", "-1e9", "nan", "inf", "-inf", "1e400",
               "-0.0", "2.5", "true", '""', '"x"', '"*"', '"trunk"', '"quadruped.xml"', '"/dev/zero"', '"."', "[]",
               "[1, 2]", "[-1.0, 1.0]", '["*"]', '["FL_foot", "FL_foot"]', "{}", "{ kp = 1 }", "1979-05-27", "= ="]
ROBOT_KEYS = ["model", "base", "imu_site", "feet", "end_effector", "timestep", "decimation", "actuated", "joints",
              "legged", "reach", "default", "kp", "kd", "effort_limit", "action_scale", "command_x", "episode_s",
              "episode_steps", "resample_s", "push_interval_s", "reset_noise", "tolerance", "max_tilt", "rewards",
              "track_lin", "goal_fraction", "min_goal_height", "nope", ""]
TOML_TABLES = ["[legged]", "[reach]", '[joints."*"]', "[joints.nope]", "[legged.rewards]", "[joints]", "[[joints]]",
               "[model]", '[joints."*_knee"]']
MJCF_VALUES = ["0", "-1", "1", "1e-9", "1e9", "-1e9", "nan", "inf", "1e400", "", "x", "1 2", "0 0 0", "0 0 0 0",
               "-0.5", "100", "true", "degree", "radian", "free", "hinge", "ball", "slide", "sphere", "plane",
               "mesh", "trunk", "root", "-1 1", "1 -1"]


class _TooLong(BaseException):
    """A case ran past its time limit (a BaseException: `main` must not turn it into a bug's exit 1)."""


@contextlib.contextmanager
def _time_limit(seconds: int, what: Any) -> Any:
    """Fail a case that runs longer than `seconds` (SIGALRM; Python runs the handler between MuJoCo steps)."""
    def alarm(signum: int, frame: Any) -> None:
        raise _TooLong(f"{what} ran for more than {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _mutate_toml_lines(data: Any, text: str) -> str:
    """1-3 line edits of a TOML file: a value, a key or a table header replaced, a line deleted or repeated."""
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        i = data.draw(st.integers(0, max(0, len(lines) - 1)), "line")
        line = lines[i] if lines else ""
        key, sep, value = line.partition("=")
        how = data.draw(st.sampled_from(["value", "value", "value", "key", "delete", "insert", "repeat", "table"]),
                        "how")
        if how == "value" and sep and not line.lstrip().startswith("#"):
            lines[i] = f"{key}= {data.draw(st.sampled_from(TOML_VALUES), 'value')}"
        elif how == "key" and sep:
            lines[i] = f"{data.draw(st.sampled_from(ROBOT_KEYS), 'key')} ={value}"
        elif how == "delete" and lines:
            del lines[i]
        elif how == "repeat" and lines:
            lines.insert(i, line)
        elif how == "table":
            lines.insert(i, data.draw(st.sampled_from(TOML_TABLES), "table"))
        else:
            lines.insert(i, f"{data.draw(st.sampled_from(ROBOT_KEYS), 'key')} = "
                            f"{data.draw(st.sampled_from(TOML_VALUES), 'value')}")
    return "\n".join(lines) + "\n"


def _mutate_mjcf(data: Any, text: str) -> str:
    """1-3 edits of an MJCF document: an attribute set to a random value, its numbers scaled, it removed, or an
    element removed with its children."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    parent = {c: p for p in root.iter() for c in p}
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(1, 3), "edits")):
        el = data.draw(st.sampled_from(elements), "element")
        how = data.draw(st.sampled_from(["set", "set", "scale", "scale", "unset", "remove"]), "how")
        if how == "remove" and el in parent:
            with contextlib.suppress(ValueError):  # removed already
                parent[el].remove(el)
            continue
        if not el.attrib:
            continue
        name = data.draw(st.sampled_from(sorted(el.attrib)), "attribute")
        if how == "set":
            el.set(name, data.draw(st.sampled_from(MJCF_VALUES), "value"))
        elif how == "unset":
            del el.attrib[name]
        else:
            factor = data.draw(st.sampled_from([0.0, -1.0, 1e-6, 0.1, 10.0, 1e6, float("nan")]), "factor")

            def scale(word: str, factor: float = factor) -> str:
                try:
                    return repr(float(word) * factor)
                except ValueError:
                    return word

            el.set(name, " ".join(scale(w) for w in el.attrib[name].split()))
    return ET.tostring(root, encoding="unicode")


def _judge_robot(argv: list[Any], data: Any) -> None:
    """Exit 0 or one error line with exit 2 within the time limit, and none of MuJoCo's raw warnings."""
    import warnings

    with warnings.catch_warnings(record=True) as caught, _time_limit(60, argv):
        warnings.simplefilter("always")
        code, _, err = _cli(argv)
    _judge(argv, code, err)
    raw = [str(w.message) for w in caught if "MuJoCo" in str(w.message)]
    assert not raw, f"{argv}: MuJoCo's own warnings reached the user: {raw}"


@_settings(25, share=0.5)
@given(data=st.data())
def test_random_robot_config_mutations(data, tmp_path_factory):
    """Random edits of a valid robot config (values, keys, types, tables, deletions), checked by `robot inspect`
    (which builds each template's env as training does) or by building the task."""
    template = data.draw(st.sampled_from(sorted(ROBOT_SOURCES)), "template")
    folder, config, model = ROBOT_SOURCES[template]
    tmp = tmp_path_factory.mktemp("robotcfg")
    shutil.copy(folder / model, tmp / model)
    path = tmp / config
    path.write_text(_mutate_toml_lines(data, (folder / config).read_text()))
    command = data.draw(st.sampled_from(["inspect", "inspect", "spec"]), "command")
    argv = ["robot", "inspect", path] if command == "inspect" else ["tasks", "--spec", f"{template}:{path}"]
    _judge_robot(argv, data)


@_settings(25, share=0.5)
@given(data=st.data())
def test_random_mjcf_mutations(data, tmp_path_factory):
    """Random edits of a valid MJCF model (attribute values, numbers, removed attributes and elements) under its
    unchanged robot config, checked by `robot inspect` or by building the task."""
    template = data.draw(st.sampled_from(sorted(ROBOT_SOURCES)), "template")
    folder, config, model = ROBOT_SOURCES[template]
    tmp = tmp_path_factory.mktemp("mjcf")
    shutil.copy(folder / config, tmp / config)
    (tmp / model).write_text(_mutate_mjcf(data, (folder / model).read_text()))
    command = data.draw(st.sampled_from(["inspect", "inspect", "spec"]), "command")
    path = tmp / config
    argv = ["robot", "inspect", path] if command == "inspect" else ["tasks", "--spec", f"{template}:{path}"]
    _judge_robot(argv, data)


# -- 5. a few cases as real processes ------------------------------------------------------------------------

@_settings(4, share=0.02)  # a second or two each: a fresh interpreter imports torch
@given(data=st.data())
def test_real_processes(data, base_run, tmp_path_factory):
    """The exit status and stderr as a shell sees them (a fresh interpreter per case)."""
    folder = tmp_path_factory.mktemp("proc")
    run = folder / "run"
    shutil.copytree(base_run, run)
    name = data.draw(st.sampled_from(FILES), "file")
    damaged = _damage_bytes(data, (run / name).read_bytes())
    if damaged is None:
        (run / name).unlink()
    else:
        (run / name).write_bytes(damaged)
    flag = data.draw(st.sampled_from(_flags("ppo")), "flag")
    argv = data.draw(st.sampled_from([
        ["train", "ppo", TASK, f"{flag}={data.draw(cli_values, 'value')}", "--dry-run"],
        COMMANDS["resume"](run), COMMANDS["export"](run), COMMANDS["card"](run)]), "argv")
    before = _hashes(run)
    p = subprocess.run([sys.executable, "-m", "robotrl", *map(str, argv)], capture_output=True, text=True,
                       timeout=300, cwd=folder)
    _judge(argv, p.returncode, p.stderr)
    if p.returncode == 2:
        assert p.stderr.count("\n") == 1 or argv[0] == "resume", p.stderr
    _check_run_dir(run, before, succeeded_resume=argv[0] == "resume" and p.returncode == 0)


def test_the_judge_can_fail():
    """The properties above hold only if their checks can fail: a traceback, a two-line error, another exit
    status and a half-written file are each caught."""
    with pytest.raises(AssertionError):
        _judge(["x"], 1, "Traceback (most recent call last):\nboom\n")
    with pytest.raises(AssertionError):
        _judge(["x"], 2, "robotrl: error: a\nrobotrl: error: b\n")
    with pytest.raises(AssertionError):
        _judge(["x"], 3, "")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "config.json").write_text("{}")
        before = _hashes(folder)
        (folder / "config.json").write_text("[")
        with pytest.raises(UserError):
            _check_run_dir(folder, before)
        (folder / ".config.json.1.0123abcd.tmp").write_text("")
        with pytest.raises(AssertionError, match="temporary files left"):
            _check_run_dir(folder, before)
