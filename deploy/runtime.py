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

from robotrl.errors import brief_json, shorten_numbers
from robotrl.spec import ACT_KINDS, OBS_KINDS, finite_number

CARD_KEY = "robotrl_card"
CARD_FORMAT = "robotrl-card/1"
REQUIRED = ("format", "task_id", "algo", "spec", "normalizer", "training", "robotrl_version")


class CardError(ValueError):
    """The file is not a usable robotrl actor; the message names what is wrong (a 400-digit number shortened)."""

    def __str__(self) -> str:
        return shorten_numbers(super().__str__())


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
    if p.is_dir():
        hint = f"; its exported actor is {str(p / 'actor.onnx')!r}" if (p / "actor.onnx").is_file() else \
            " (robotrl export RUN_DIR writes RUN_DIR/actor.onnx)"
        raise CardError(f"{str(p)!r} is a directory, not an exported actor{hint}")
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
    try:
        meta = sess.get_modelmeta().custom_metadata_map
    except (UnicodeDecodeError, RuntimeError) as e:  # damaged metadata bytes
        raise CardError(f"{str(path)!r}: the model's metadata is damaged ({type(e).__name__})") from None
    if CARD_KEY not in meta:
        raise CardError(f"{str(path)!r} has no robotrl policy card (metadata key {CARD_KEY!r}); export it with "
                        "'robotrl export RUN_DIR'")
    try:
        card = json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as e:
        raise CardError(f"{str(path)!r}: the policy card is not valid JSON ({e})") from None
    if not isinstance(card, dict):
        raise CardError(f"{str(path)!r}: the policy card is not a JSON object")
    validate_card(card, str(path))
    spec = card["spec"]
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


_XYZ = ("x", "y", "z")
_AXES = {"base_pos": _XYZ, "base_angle": _XYZ, "base_quat": ("w", "x", "y", "z"), "base_lin_vel": _XYZ,
         "base_ang_vel": _XYZ, "projected_gravity": _XYZ, "body_pos": _XYZ, "object_pos": _XYZ, "goal": _XYZ,
         "velocity_command": ("x", "y", "yaw")}
_FRAMES = {"base_lin_vel": ("world", "base"), "base_ang_vel": ("world", "base")}


_number = finite_number


def validate_card(card: Any, where: str = "card") -> None:
    """Check a policy card's schema and its consistency; raise `CardError` naming the first problem.

    Types and presence of every field the robot side reads; action bounds finite with low < high and
    one element per joint; a positive control period; observation elements of known kinds with the
    axis and frame their kind needs; joint ranges finite with low < high; a sane normaliser clip.
    """
    def bad(field: str, expected: str, got: Any = None) -> CardError:
        shown = "" if got is None else f", got {brief_json(got, 80)}"
        return CardError(f"{where}: policy card field {field} must be {expected}{shown}")

    if not isinstance(card, dict):
        raise CardError(f"{where}: the policy card is not a JSON object")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise CardError(f"{where}: the policy card lacks {', '.join(missing)}")
    if card["format"] != CARD_FORMAT:
        raise CardError(f"{where}: policy card format {card['format']!r} is not {CARD_FORMAT!r}")
    for key in ("task_id", "algo", "robotrl_version"):
        if not isinstance(card[key], str) or not card[key]:
            raise bad(key, "a non-empty string", card[key])
    for key in ("normalizer", "training"):
        if not isinstance(card[key], dict):
            raise bad(key, "an object", card[key])
    spec = card["spec"]
    if not isinstance(spec, dict):
        raise bad("spec", "an object", spec)
    for key in ("observation", "action"):
        if not isinstance(spec.get(key), list) or not spec[key]:
            raise CardError(f"{where}: the card's spec has no {key} elements")
    deployable = spec.get("deployable", False)
    if not isinstance(deployable, bool):
        raise bad("spec.deployable", "true or false", deployable)
    period = card.get("control_period", spec.get("control_period"))
    if (period is not None or deployable) and not (_number(period) and 0 < period <= 10):
        raise bad("control_period", "a number of seconds in (0, 10]", period)
    inner = spec.get("control_period")  # informational beside the card's own, but a number if given
    if inner is not None and not (_number(inner) and 0 < inner <= 10):
        raise bad("spec.control_period", "a number of seconds in (0, 10]", inner)
    for key in ("frame_skip", "max_episode_steps"):
        v = spec.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v < 2**63):
            raise bad(f"spec.{key}", "a positive integer or null", v)
    joints = []
    for i, a in enumerate(spec["action"]):
        f = f"spec.action[{i}]"
        if not isinstance(a, dict):
            raise bad(f, "an object", a)
        if not isinstance(a.get("joint"), str) or not a["joint"]:
            raise bad(f"{f}.joint", "a joint name", a.get("joint"))
        if a.get("kind") not in ACT_KINDS:
            raise bad(f"{f}.kind", "one of " + ", ".join(ACT_KINDS), a.get("kind"))
        lo, hi = a.get("low"), a.get("high")
        if not (_number(lo) and _number(hi)):
            raise bad(f"{f} ({a['joint']}) low/high", "finite numbers", [lo, hi])
        if not lo < hi:
            raise CardError(f"{where}: policy card action bounds of {a['joint']!r} are inconsistent: "
                            f"low {lo} is not below high {hi}")
        joints.append(a["joint"])
    dup = sorted({j for j in joints if joints.count(j) > 1})
    if dup:
        raise CardError(f"{where}: policy card commands joint(s) {', '.join(dup)} more than once")
    for i, e in enumerate(spec["observation"]):
        f = f"spec.observation[{i}]"
        if not isinstance(e, dict):
            raise bad(f, "an object", e)
        kind = e.get("kind")
        if not isinstance(kind, str) or kind not in OBS_KINDS:
            raise bad(f"{f}.kind", "a known observation kind (" + ", ".join(OBS_KINDS) + ")", kind)
        if not isinstance(e.get("name"), str) or not e["name"]:
            raise bad(f"{f}.name", "a non-empty string", e.get("name"))
        for key in ("axis", "frame", "unit"):
            if not isinstance(e.get(key, ""), str):
                raise bad(f"{f}.{key}", "a string", e.get(key))
        if kind in _AXES and e.get("axis", "") not in _AXES[kind]:
            raise bad(f"{f}.axis ({kind})", "one of " + ", ".join(_AXES[kind]), e.get("axis"))
        if kind in _FRAMES and e.get("frame", "") not in ("", *_FRAMES[kind]):
            raise bad(f"{f}.frame ({kind})", "world or base", e.get("frame"))
        clip = e.get("clip")
        if clip is not None and (not _number(clip) or clip <= 0):
            raise bad(f"{f}.clip", "a positive number or null", clip)
        if not _number(e.get("offset", 0.0)):
            raise bad(f"{f}.offset", "a finite number", e.get("offset"))
        rng = e.get("range")
        if kind == "velocity_command" and rng is None:
            raise bad(f"{f}.range ({kind})", "[low, high], the range trained on", rng)
        if rng is not None and not (isinstance(rng, (list, tuple)) and len(rng) == 2 and _number(rng[0])
                                    and _number(rng[1]) and rng[0] <= rng[1]):
            raise bad(f"{f}.range", "[low, high] with low <= high", rng)
        if kind == "prev_action" and e["name"] not in joints:
            raise CardError(f"{where}: policy card observes the previous action of {e['name']!r}, which it does "
                            "not command")
    ranges = spec.get("joint_ranges") or {}
    if not isinstance(ranges, dict):
        raise bad("spec.joint_ranges", "an object {joint: [low, high]}", ranges)
    for name, r in ranges.items():
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and _number(r[0]) and _number(r[1])):
            raise bad(f"spec.joint_ranges.{name}", "[low, high] (finite numbers)", r)
        if not r[0] < r[1]:
            raise CardError(f"{where}: policy card joint range of {name!r} is inconsistent: low {r[0]} is not "
                            f"below high {r[1]}")
    norm = card["normalizer"]
    if not isinstance(norm.get("enabled", False), bool):
        raise bad("normalizer.enabled", "true or false", norm.get("enabled"))
    clip = norm.get("clip")
    if norm.get("enabled") and clip is not None and (not _number(clip) or clip <= 0):
        raise bad("normalizer.clip", "a positive number or null", clip)


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
        shape = x.shape  # as given, for the message
        single = x.ndim == 1
        if single:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.obs_dim:
            raise ValueError(f"observation must have shape [{self.obs_dim}] or [N, {self.obs_dim}], got {shape}")
        if not np.isfinite(x).all():
            raise ValueError("observation contains NaN or Inf")
        y = self._run(self._out, {self._in: x})[0]
        return y[0] if single else y

    act = __call__
