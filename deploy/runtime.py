"""The exported actor on the robot side: onnxruntime and numpy only (no torch, gymnasium, mujoco).

    card = load_card("actor.onnx")      # the policy card, checked against the graph
    policy = OnnxPolicy("actor.onnx")   # policy(obs [N, obs_dim] or [obs_dim]) -> action in robot units

Wherever a file is expected, ``pretrained:NAME`` names an actor shipped with robotrl
(`pretrained_names()` lists them; each card says the command that trained it and its figures).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CARD_KEY = "robotrl_card"
CARD_FORMAT = "robotrl-card/1"
REQUIRED = ("format", "task_id", "algo", "spec", "normalizer", "training", "robotrl_version")


class CardError(ValueError):
    """The file is not a usable robotrl actor; the message names what is wrong."""


def pretrained_dir() -> Path:
    """Where the shipped actors live (package data of robotrl.policies), found without importing
    that package (it imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("robotrl.policies")
    if spec is None or not spec.submodule_search_locations:
        raise CardError("robotrl.policies is not installed; pretrained actors ship with it")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained"


def pretrained_names() -> list[str]:
    d = pretrained_dir()
    return sorted(p.stem for p in d.glob("*.onnx")) if d.is_dir() else []


def resolve(path: str | Path) -> Path:
    """A file path, or ``pretrained:NAME`` -> the shipped actor's path."""
    text = str(path)
    if text.startswith("pretrained:"):
        name = text.split(":", 1)[1]
        p = pretrained_dir() / f"{name}.onnx"
        if not p.is_file():
            raise CardError(f"no pretrained actor {name!r}; shipped: {', '.join(pretrained_names()) or 'none'}")
        return p
    return Path(path)


def _session(path: str | Path, threads: int = 1):
    import onnxruntime as ort

    p = resolve(path)
    if not p.is_file():
        raise CardError(f"{str(p)!r}: no such file")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CardError(f"{str(p)!r} is not a loadable ONNX model ({first[:200]})") from None


def _card_from_session(sess: Any, path: str | Path) -> dict[str, Any]:
    meta = sess.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise CardError(f"{str(path)!r} has no robotrl policy card (metadata key {CARD_KEY!r}); export it with "
                        "'robotrl export RUN_DIR'")
    try:
        card = json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as e:
        raise CardError(f"{str(path)!r}: the policy card is not valid JSON ({e})") from None
    if not isinstance(card, dict):
        raise CardError(f"{str(path)!r}: the policy card is not a JSON object")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise CardError(f"{str(path)!r}: the policy card lacks {', '.join(missing)}")
    if card["format"] != CARD_FORMAT:
        raise CardError(f"{str(path)!r}: policy card format {card['format']!r} is not {CARD_FORMAT!r}")
    spec = card["spec"]
    for key in ("observation", "action"):
        if not isinstance(spec.get(key), list) or not spec[key]:
            raise CardError(f"{str(path)!r}: the card's spec has no {key} elements")
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise CardError(f"{str(path)!r}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
    in_dim, out_dim = inputs[0].shape[-1], outputs[0].shape[-1]
    if in_dim != len(spec["observation"]):
        raise CardError(f"{str(path)!r}: the card names {len(spec['observation'])} observation elements but the "
                        f"graph's input has {in_dim}")
    if out_dim != len(spec["action"]):
        raise CardError(f"{str(path)!r}: the card names {len(spec['action'])} action elements but the graph's "
                        f"output has {out_dim}")
    return card


def load_card(path: str | Path) -> dict[str, Any]:
    """The policy card of an exported actor, validated against its graph; raises CardError."""
    return _card_from_session(_session(path), resolve(path))


class OnnxPolicy:
    """Runs an exported actor: raw observations in, commands in robot units out."""

    def __init__(self, path: str | Path, *, threads: int = 1):
        self.path = str(resolve(path))
        self._sess = _session(self.path, threads)
        self.card = _card_from_session(self._sess, self.path)
        self.obs_dim = len(self.card["spec"]["observation"])
        self.act_dim = len(self.card["spec"]["action"])
        self._in = self._sess.get_inputs()[0].name
        self._run = self._sess.run
        self._out = [self._sess.get_outputs()[0].name]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        if single:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"observation must have shape [{self.obs_dim}] or [N, {self.obs_dim}], got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("observation contains NaN or Inf")
        y = self._run(self._out, {self._in: x})[0]
        return y[0] if single else y

    act = __call__
