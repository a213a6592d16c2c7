"""The run directory: everything one training run leaves behind, and the one place its files are read.

    config.json          resolved configuration (algorithm, task, run settings, every hyper-parameter)
    spec.json            the task's observation/action spec (the policy card's source)
    metrics.csv          one row per iteration: step, rollout/*, train/*, time/*
    tb/                  the same metrics as TensorBoard events
    checkpoints/latest.pt  newest training state (weights-only: torch.load(weights_only=True) reads it)
    eval.json            final deterministic evaluation
    learning_curve.png   return against steps
    video.mp4            with --video: the final evaluation's first episode, filmed (robotrl.video)
    .lock                held (flock) by the process that trains in the directory; holds its PID

Every file is written atomically: to a temporary file in the same directory, flushed to disk, then
renamed over the old one, so a run killed at any moment leaves either the old or the new version.
A temporary file left by a killed writer is removed by the next writer (`clean_temporaries`).

One writer at a time: `train` and `resume` hold an exclusive `fcntl.flock` on ``.lock`` for as long
as they run; a second writer is refused with the holder's PID. The kernel drops the lock when its
holder exits, however it exits, so a lock left by a dead process is simply taken over.

Every reader below validates what it reads and raises `UserError` naming the file, the field and
what was expected: `read_config`, `read_settings`, `read_spec`, `read_eval`, `read_metrics`,
`load_checkpoint` (a SHA-256 over every tensor and value catches silent corruption; the algorithm,
task and shapes are checked against the run's config and spec).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robotrl.atomic import atomic_write_bytes, clean_temporaries, current_umask
from robotrl.errors import UserError
from robotrl.spec import finite_number

CHECKPOINT_FORMAT = "robotrl-checkpoint/2"  # /2 adds the checksum
LEGACY_CHECKPOINT_FORMATS = ("robotrl-checkpoint/1",)
LOCK_NAME = ".lock"


def _in_use(path: Path, pid: str) -> str:
    who = f"process {pid}" if pid.isdigit() else "another process"
    return (f"run directory {str(path)!r} is in use by {who} (a robotrl train or resume); wait for it to finish "
            "or stop it")


def _checksum(obj: Any) -> str:
    """SHA-256 over a checkpoint's content: every tensor's dtype, shape and bytes, every plain value,
    in a fixed order (dict keys sorted)."""
    import torch

    h = hashlib.sha256()

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy())  # the tensor's memory, not a copy
        elif isinstance(x, dict):
            h.update(f"D{len(x)}".encode())
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                walk(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"{type(x).__name__[0]}{len(x)}".encode())
            for v in x:
                walk(v)
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    walk(obj)
    return h.hexdigest()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_is_number = finite_number


def _not_regular(path: Path) -> None:
    """A run-directory file that exists but is a pipe, a device or a socket is refused before it is opened (a FIFO
    blocks the open, /dev/zero never ends)."""
    from robotrl.userfile import file_problem

    problem = file_problem(path)
    if problem is not None and not problem.startswith("does not exist"):
        raise UserError(f"{path} {problem}")


def _read_text(path: Path, what: str) -> str:
    _not_regular(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file ({what} expected)") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory ({what} expected)") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    text = _read_text(path, what)
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        raise UserError(f"{path} is malformed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object ({what}), got a JSON {type(data).__name__}")
    return data


@dataclass
class Settings:
    """A run's config.json, validated: algorithm, task, run settings, hyper-parameters."""

    algo: str
    task: str
    run: Any  # robotrl.run.train.RunConfig
    cfg: Any  # the algorithm's config dataclass
    raw: dict[str, Any]


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._created = self._made_dir = False
        self._made_parents: list[Path] = []

    config = property(lambda self: self.path / "config.json")
    spec = property(lambda self: self.path / "spec.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    tensorboard = property(lambda self: self.path / "tb")
    checkpoints = property(lambda self: self.path / "checkpoints")
    latest_checkpoint = property(lambda self: self.path / "checkpoints" / "latest.pt")
    eval = property(lambda self: self.path / "eval.json")
    plot = property(lambda self: self.path / "learning_curve.png")
    lock_file = property(lambda self: self.path / LOCK_NAME)

    # -- creating, opening, locking -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path) -> RunDir:
        """Make a new run directory (or take an empty one) and lock it. Call it only after every input
        has been validated; if setting up fails after this, `discard` removes what was made."""
        p = Path(path)
        occupied = f"output directory {str(p)!r} already exists and is not empty; choose another --out " \
                   f"or continue it with 'robotrl resume {p}'"
        if p.exists() and not p.is_dir():
            raise UserError(f"--out {str(p)!r} is a file, not a directory")
        if p.is_dir() and any(q.name != LOCK_NAME for q in p.iterdir()):
            holder = cls(p).holder()
            raise UserError(_in_use(p, holder) if holder is not None else occupied)
        rd = cls(p)
        rd._made_parents = [q for q in p.parents if not q.exists()]  # innermost first
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.mkdir()
            rd._made_dir = True
        except FileExistsError:
            if not p.is_dir():
                raise UserError(f"--out {str(p)!r}: a part of the path is a file, not a directory") from None
        except NotADirectoryError:
            raise UserError(f"--out {str(p)!r}: a part of the path is a file, not a directory") from None
        rd.lock()  # refused: the directory is another process's now; leave it alone
        try:
            if any(q.name != LOCK_NAME for q in p.iterdir()):  # another process was faster
                raise UserError(occupied)
            rd.checkpoints.mkdir(exist_ok=True)
        except BaseException:
            rd.unlock()
            raise
        rd._created = True
        return rd

    def discard(self) -> None:
        """Undo `create` when setting the run up failed: remove everything in the directory (all of it
        this process's: it was empty when locked), the directory if `create` made it, and the parent
        folders it made if they are empty."""
        import shutil

        if not self._created:
            raise RuntimeError("discard() is only for a directory made by RunDir.create")
        try:
            for q in self.path.iterdir():
                if q.name == LOCK_NAME:
                    continue
                if q.is_dir() and not q.is_symlink():
                    shutil.rmtree(q, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        q.unlink()
            if self._made_dir:
                with contextlib.suppress(OSError):
                    self.lock_file.unlink()
                with contextlib.suppress(OSError):
                    self.path.rmdir()
                for q in self._made_parents:
                    with contextlib.suppress(OSError):
                        q.rmdir()  # only if empty
        finally:
            self.unlock()

    @classmethod
    def open(cls, path: str | Path, *, lock: bool = False) -> RunDir:
        """An existing run directory (one with config.json); with `lock`, locked for writing and cleared
        of temporary files that dead writers left behind."""
        p = Path(path)
        if not p.is_dir():
            raise UserError(f"run directory {str(p)!r} does not exist" if not p.exists()
                            else f"{str(p)!r} is a file, not a run directory")
        rd = cls(p)
        if not rd.config.is_file():
            raise UserError(f"{str(p)!r} is not a robotrl run directory (no config.json)")
        if lock:
            rd.lock()
        return rd

    def lock(self) -> None:
        """Take the exclusive writer's lock (non-blocking); refuse naming the holder's PID."""
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~current_umask())
        except PermissionError:
            raise UserError(f"cannot write to run directory {str(self.path)!r} (permission denied)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            raise UserError(_in_use(self.path, holder[0] if holder else "")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        clean_temporaries(self.path)
        clean_temporaries(self.checkpoints)

    def holder(self) -> str | None:
        """The PID (as written) of the process holding the writer's lock, "" if unknown, None if free."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = os.pread(fd, 200, 0).decode(errors="replace").split()
                return text[0] if text else ""
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    # -- config.json --------------------------------------------------------------------------------

    def read_config(self) -> dict[str, Any]:
        """config.json as a dict, its structure checked (the typed check is `read_settings`)."""
        from robotrl.algorithms import registry as algos

        conf = _read_json_object(self.config, "the run's settings")
        algo = conf.get("algo")
        if not isinstance(algo, str) or algo not in algos.ALGORITHMS:
            raise UserError(f"{self.config}: field 'algo' must be one of {', '.join(algos.ALGORITHMS)}, "
                            f"got {json.dumps(algo)[:60]}")
        if not isinstance(conf.get("task"), str) or not conf["task"]:
            raise UserError(f"{self.config}: field 'task' must be a task id (a string), got "
                            f"{json.dumps(conf.get('task'))[:60]}")
        others = [k for k in algos.ALGORITHMS if k != algo and isinstance(conf.get(k), dict)]
        if algo not in conf and others:
            raise UserError(f"{self.config}: 'algo' says {algo} but the settings are {others[0]}'s (field "
                            f"{others[0]!r}); a run continues with the algorithm it was trained with")
        for key in ("run", algo):
            if not isinstance(conf.get(key), dict):
                raise UserError(f"{self.config}: field {key!r} must be an object of settings, got "
                                f"{json.dumps(conf.get(key))[:60]}")
        return conf

    def read_settings(self) -> Settings:
        """config.json, every value typed and range-checked as on the command line."""
        from robotrl import config as cfgmod
        from robotrl.algorithms import registry as algos
        from robotrl.run.settings import RunConfig

        conf = self.read_config()
        algo = conf["algo"]
        _, Config = algos.get(algo).load()
        cfg = cfgmod.from_dict(Config, conf[algo], source=f"{self.config} [{algo}]")
        run = cfgmod.from_dict(RunConfig, conf["run"], source=f"{self.config} [run]")
        return Settings(algo, conf["task"], run, cfg, conf)

    # -- spec.json, eval.json -----------------------------------------------------------------------

    def read_spec(self, settings: Settings | None = None) -> Any:
        """spec.json as a `TaskSpec`; with `settings`, checked to be the spec of the run's task."""
        from robotrl.spec import TaskSpec

        if not self.spec.is_file():
            raise UserError(f"run directory {str(self.path)!r} has no spec.json")
        data = _read_json_object(self.spec, "the task's spec")
        try:
            spec = TaskSpec.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise UserError(f"{self.spec}: {e}") from None
        if settings is not None and spec.task_id != settings.task:
            raise UserError(f"{self.spec} is the spec of task {spec.task_id!r} but config.json says {settings.task!r}")
        return spec

    def read_eval(self) -> dict[str, Any] | None:
        """eval.json (None if the run has none), its fields checked."""
        if not self.eval.is_file():
            return None
        ev = _read_json_object(self.eval, "the final evaluation")
        for key in ("mean_return", "std_return"):
            if not _is_number(ev.get(key)):
                raise UserError(f"{self.eval}: field {key!r} must be a finite number, got {json.dumps(ev.get(key))}")
        if not _is_int(ev.get("episodes")) or ev["episodes"] < 1:
            raise UserError(f"{self.eval}: field 'episodes' must be a positive integer, got "
                            f"{json.dumps(ev.get('episodes'))}")
        for key in ("seed", "step"):
            if key in ev and not _is_int(ev[key]):
                raise UserError(f"{self.eval}: field {key!r} must be an integer, got {json.dumps(ev[key])}")
        if "success_rate" in ev and not (_is_number(ev["success_rate"]) and 0 <= ev["success_rate"] <= 1):
            raise UserError(f"{self.eval}: field 'success_rate' must be a number in [0, 1], got "
                            f"{json.dumps(ev['success_rate'])}")
        return ev

    # -- metrics.csv ----------------------------------------------------------------------------------

    def read_metrics(self, *, drop_torn_tail: bool = True) -> tuple[list[str], list[dict[str, str]]]:
        """metrics.csv as (columns, rows of the original text), every cell checked to be a number
        (empty where a row has no value; ``step`` a non-negative integer). A last line without its
        line end is a row torn by a kill in the middle of writing it: dropped with `drop_torn_tail`."""
        return read_metrics(self.metrics, drop_torn_tail=drop_torn_tail)

    # -- checkpoints ----------------------------------------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Write `state` (tensors and plain values only) atomically to checkpoints/latest.pt, with a
        SHA-256 over its content."""
        import torch

        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "checksum": _checksum(state), **state}, buf)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.latest_checkpoint, buf.getvalue())
        return self.latest_checkpoint

    def load_checkpoint(self, settings: Settings | None = None, *, missing_ok: bool = False) -> dict[str, Any] | None:
        """Read checkpoints/latest.pt with ``weights_only=True`` (no code is unpickled), verify its
        checksum and structure, and, with `settings`, that it belongs to that algorithm and task.
        With `missing_ok`, a run without a checkpoint yet gives None."""
        import torch

        path = self.latest_checkpoint
        _not_regular(path)
        if not path.is_file():
            if missing_ok:
                return None
            raise UserError(f"run directory {str(self.path)!r} has no checkpoint yet ({path.name} is missing)")
        if path.stat().st_size == 0:
            raise UserError(f"checkpoint {path} is empty (0 bytes); the run cannot continue from it")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a damaged file makes the unpickler fail in many ways
            first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]  # the reader's first sentence
            if len(first) > 150:
                first = first[:150].rsplit(" ", 1)[0] + " ..."
            raise UserError(f"checkpoint {path} cannot be read, it is damaged or cut short ({first}); the run "
                            "cannot continue from it") from None
        if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, *LEGACY_CHECKPOINT_FORMATS):
            raise UserError(f"{path} is not a robotrl checkpoint")
        content = {k: v for k, v in state.items() if k not in ("format", "checksum")}
        checked = "checksum" in state or state["format"] == CHECKPOINT_FORMAT  # /1 files have none
        if checked and state.get("checksum") != _checksum(content):
            raise UserError(f"checkpoint {path} is corrupt: its content does not match its checksum")
        for key, ok, expected in (("algo", isinstance(state.get("algo"), str), "a string"),
                                  ("task", isinstance(state.get("task"), str), "a string"),
                                  ("num_steps", _is_int(state.get("num_steps")) and state["num_steps"] >= 0,
                                   "a non-negative integer"),
                                  ("algorithm", isinstance(state.get("algorithm"), dict), "a dict"),
                                  ("policy", isinstance(state.get("policy"), dict), "a dict"),
                                  ("loop", isinstance(state.get("loop", {}), dict), "a dict")):
            if not ok:
                raise UserError(f"checkpoint {path}: field {key!r} must be {expected}")
        if settings is not None:
            for key in ("algo", "task"):
                if state[key] != getattr(settings, key):
                    raise UserError(f"checkpoint {path} is of {key} {state[key]!r} but config.json says "
                                    f"{getattr(settings, key)!r}; the checkpoint belongs to another run")
        _check_record(state["policy"], path)
        _check_loop(state.get("loop", {}), path)
        return state

    def policy(self, state: dict[str, Any]) -> Any:
        """The deployable policy (`robotrl.policies.DeployedPolicy`) of a loaded checkpoint."""
        from robotrl.policies import from_record

        try:
            return from_record(state["policy"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]  # the reader's first sentence
            if len(first) > 150:
                first = first[:150].rsplit(" ", 1)[0] + " ..."
            raise UserError(f"checkpoint {self.latest_checkpoint}: its policy cannot be rebuilt ({first})") from None


def _check_record(record: dict[str, Any], path: Path) -> None:
    """The policy record's fields that everything downstream relies on (dimensions, bounds)."""
    import torch

    def bad(field: str, expected: str) -> UserError:
        return UserError(f"checkpoint {path}: policy field {field!r} must be {expected}")

    for key in ("obs_dim", "act_dim"):
        if not _is_int(record.get(key)) or record[key] < 1:
            raise bad(key, "a positive integer")
    if not isinstance(record.get("hidden_sizes"), list) or not all(_is_int(h) and h >= 1
                                                                   for h in record["hidden_sizes"]):
        raise bad("hidden_sizes", "a list of positive integers")
    if not isinstance(record.get("net"), dict) or not all(isinstance(v, torch.Tensor) for v in record["net"].values()):
        raise bad("net", "a dict of tensors")
    for key, n in (("obs_mean", record["obs_dim"]), ("obs_var", record["obs_dim"]),
                   ("action_low", record["act_dim"]), ("action_high", record["act_dim"])):
        t = record.get(key)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,) or not bool(torch.isfinite(t).all()):
            raise bad(key, f"a tensor of {n} finite numbers")
    if not bool((record["action_low"] < record["action_high"]).all()):
        raise bad("action_low", "below action_high")
    clip = record.get("obs_clip")
    if clip is not None and not (_is_number(clip) and clip > 0):
        raise bad("obs_clip", "a positive number or None")
    if record.get("activation") not in ("tanh", "relu", "elu"):
        raise bad("activation", "tanh, relu or elu")
    if record.get("out_activation") not in (None, "tanh"):
        raise bad("out_activation", "tanh or None")
    if not isinstance(record.get("layer_norm"), bool) or not isinstance(record.get("normalize_obs"), bool):
        raise bad("layer_norm", "true or false")


def _check_loop(loop: dict[str, Any], path: Path) -> None:
    for key in ("recent_returns", "recent_lengths"):
        v = loop.get(key, [])
        if not isinstance(v, list) or not all(_is_number(x) for x in v):
            raise UserError(f"checkpoint {path}: loop field {key!r} must be a list of finite numbers")
    means = loop.get("recent_means", {})
    if not isinstance(means, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(_is_number(x) for x in v) for k, v in means.items()):
        raise UserError(f"checkpoint {path}: loop field 'recent_means' must map names to lists of finite numbers")
    if not _is_int(loop.get("episodes", 0)) or not _is_number(loop.get("elapsed_s", 0.0)):
        raise UserError(f"checkpoint {path}: loop fields 'episodes' and 'elapsed_s' must be numbers")


def read_metrics(path: Path, *, drop_torn_tail: bool = True) -> tuple[list[str], list[dict[str, str]]]:
    """See `RunDir.read_metrics`."""
    path = Path(path)
    _not_regular(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file (a CSV of metrics expected)") from None
    if drop_torn_tail and text and not text.endswith(("\n", "\r")):
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]
    if not text.strip():
        return [], []
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        body = list(reader)
    except csv.Error as e:
        raise UserError(f"{path} is malformed: {e}") from None
    if not header or header[0] != "step":
        raise UserError(f"{path}: the first column must be 'step', got {header[:1]}")
    if len(set(header)) != len(header) or "" in header:
        raise UserError(f"{path}: the header has an empty or repeated column name")
    rows = []
    for line, cells in enumerate(body, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise UserError(f"{path}, line {line}: {len(cells)} cells, expected {len(header)} (one per column)")
        for name, cell in zip(header, cells, strict=True):
            if cell == "" and name != "step":
                continue
            try:
                value = float(cell)
            except ValueError:
                raise UserError(f"{path}, line {line}, column {name!r}: expected a number, got {cell[:40]!r}") from None
            if name == "step" and not (math.isfinite(value) and value >= 0 and value.is_integer()):
                raise UserError(f"{path}, line {line}, column 'step': expected a non-negative integer, "
                                f"got {cell[:40]!r}")
        rows.append(dict(zip(header, cells, strict=True)))
    return header, rows
