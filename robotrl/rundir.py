"""The run directory: everything one training run leaves behind.

    config.json          resolved configuration (algorithm, task, run settings, every hyper-parameter)
    spec.json            the task's observation/action spec (the policy card's source)
    metrics.csv          one row per iteration: step, rollout/*, train/*, time/*
    tb/                  the same metrics as TensorBoard events
    checkpoints/latest.pt  newest training state (weights-only: torch.load(weights_only=True) reads it)
    eval.json            final deterministic evaluation
    learning_curve.png   return against steps

Every file is written atomically: to a temporary file in the same directory, flushed to disk, then
renamed over the old one, so a run killed at any moment leaves either the old or the new version.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from robotrl.errors import UserError

CHECKPOINT_FORMAT = "robotrl-checkpoint/1"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    spec = property(lambda self: self.path / "spec.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    tensorboard = property(lambda self: self.path / "tb")
    checkpoints = property(lambda self: self.path / "checkpoints")
    latest_checkpoint = property(lambda self: self.path / "checkpoints" / "latest.pt")
    eval = property(lambda self: self.path / "eval.json")
    plot = property(lambda self: self.path / "learning_curve.png")

    @classmethod
    def create(cls, path: str | Path) -> RunDir:
        p = Path(path)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise UserError(f"output directory {str(p)!r} already exists and is not empty; choose another --out "
                            f"or continue it with 'robotrl resume {p}'")
        (p / "checkpoints").mkdir(parents=True, exist_ok=True)
        return cls(p)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        p = Path(path)
        if not p.is_dir():
            raise UserError(f"run directory {str(p)!r} does not exist")
        rd = cls(p)
        if not rd.config.is_file():
            raise UserError(f"{str(p)!r} is not a robotrl run directory (no config.json)")
        return rd

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{self.config} is malformed: {e}") from None

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Write `state` (tensors and plain values only) atomically to checkpoints/latest.pt."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.latest_checkpoint, buf.getvalue())
        return self.latest_checkpoint

    def load_checkpoint(self) -> dict[str, Any]:
        """Read checkpoints/latest.pt with ``weights_only=True`` (no code is unpickled)."""
        import pickle

        import torch

        path = self.latest_checkpoint
        if not path.is_file():
            raise UserError(f"run directory {str(self.path)!r} has no checkpoint yet ({path.name} is missing)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as e:
            raise UserError(f"checkpoint {path} cannot be read: {str(e).splitlines()[0]}") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"{path} is not a robotrl checkpoint")
        return state
