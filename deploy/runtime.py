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
from robotrl.kinds import KINDS
from robotrl.spec import ACT_KINDS, MAX_COMMAND, OBS_KINDS, finite_number

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
        from robotrl.userfile import file_problem

        raise CardError(f"{str(p)!r}: " + ("no such file" if not p.exists() else (file_problem(p) or "not a file")))
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




_number = finite_number
MIN_PERIOD = 1e-4  # s: the policy node runs at 10 kHz at most
PERIODS = f"a number of seconds in [{MIN_PERIOD:g}, 10] (at most {1 / MIN_PERIOD:g} Hz)"


def _close(a: float, b: float) -> bool:
    """Two numbers of a card that must agree (one computed from the other): equal but for float rounding."""
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _within(lo: float, hi: float, r: Any) -> bool:
    """[lo, hi] lies inside the range r = [low, high], but for float rounding."""
    return lo >= r[0] - 1e-6 * max(1.0, abs(r[0])) and hi <= r[1] + 1e-6 * max(1.0, abs(r[1]))


def _check_plausible(card: dict[str, Any], spec: dict[str, Any], ranges: dict[str, Any], where: str) -> None:
    """The card's numbers against each other and against physics, each field's type being checked already: the
    targets of a position action inside its joint's range, a default pose inside it, commands within the template's
    bound, gains and torque limits that a motor can have, a physics step and decimation that give the control
    period. A card that training cannot have written (edited by hand, or damaged) is refused, naming the element
    and its values, before a robot is sent what it says."""
    def refuse(text: str) -> CardError:
        return CardError(f"{where}: policy card {text}")

    for i, a in enumerate(spec["action"]):
        r = ranges.get(a["joint"])
        if a["kind"] == "position" and r is not None and not _within(a["low"], a["high"], r):
            raise refuse(f"action bounds of {a['joint']!r} (spec.action[{i}]) are [{a['low']:g}, {a['high']:g}], "
                         f"outside the joint's range [{r[0]:g}, {r[1]:g}] (spec.joint_ranges): the robot would be "
                         "sent targets the joint cannot reach")
    for i, e in enumerate(spec["observation"]):
        rng, r = e.get("range"), ranges.get(e["name"])
        if e["kind"] == "velocity_command" and not rng[0] <= 0.0 <= rng[1]:
            raise refuse(f"range of velocity_command.{e.get('axis', '')} (spec.observation[{i}].range) is "
                         f"[{rng[0]:g}, {rng[1]:g}], which does not hold 0: 'stand' (no /cmd_vel, or a stale one) "
                         "would be clamped to a motion; the template trains on ranges with low <= 0 <= high")
        if e["kind"] == "velocity_command" and max(-rng[0], rng[1]) > MAX_COMMAND:
            raise refuse(f"range of velocity_command.{e.get('axis', '')} (spec.observation[{i}].range) is "
                         f"[{rng[0]:g}, {rng[1]:g}], beyond the template's bound +-{MAX_COMMAND:g} (m/s or rad/s): "
                         "/cmd_vel would be clamped to commands no policy was trained on")
        offset = e.get("offset", 0.0)
        if e["kind"] == "joint_pos_rel" and r is not None and not _within(offset, offset, r):
            raise refuse(f"default position of {e['name']!r} (spec.observation[{i}].offset) is {offset:g}, outside "
                         f"the joint's range [{r[0]:g}, {r[1]:g}] (spec.joint_ranges)")
    robot = (spec.get("extras") or {}).get("robot") if isinstance(spec.get("extras"), dict) else None
    if isinstance(robot, dict):
        _check_robot_extras(card, spec, robot, ranges, refuse)


def _check_robot_extras(card: dict[str, Any], spec: dict[str, Any], robot: dict[str, Any], ranges: dict[str, Any],
                        refuse: Any) -> None:
    """A robot template's facts (spec.extras.robot): gains, torque limits, default pose, physics step, decimation."""
    joints = [a["joint"] for a in spec["action"]]
    for key, what in (("kp", "PD stiffness"), ("kd", "PD damping"), ("effort_limit", "torque limit")):
        values = robot.get(key)
        if values is None:
            continue
        if not (isinstance(values, list) and len(values) == len(joints)):
            raise refuse(f"field spec.extras.robot.{key} must be a list of {len(joints)} numbers (one per action), got "
                         f"{brief_json(values, 80)}")
        for j, v in zip(joints, values, strict=True):
            ok = (_number(v) and v >= 0 if key != "effort_limit"
                  else not isinstance(v, bool) and isinstance(v, int | float) and v > 0)  # inf: no limit
            if not ok:
                low = "positive (or Infinity: none)" if key == "effort_limit" else "a finite number >= 0"
                raise refuse(f"{what} of {j!r} (spec.extras.robot.{key}) must be {low}, got {brief_json(v)}")
    pose = robot.get("default_pose")
    if pose is not None:
        if not isinstance(pose, dict) or not all(_number(v) for v in pose.values()):
            raise refuse(f"field spec.extras.robot.default_pose must be an object {{joint: position}}, got "
                         f"{brief_json(pose, 80)}")
        for j, v in pose.items():
            r = ranges.get(j)
            if r is not None and not _within(v, v, r):
                raise refuse(f"default position of {j!r} (spec.extras.robot.default_pose) is {v:g}, outside the "
                             f"joint's range [{r[0]:g}, {r[1]:g}] (spec.joint_ranges)")
    step, decimation = robot.get("physics_timestep"), robot.get("decimation")
    if step is not None and not (_number(step) and 0 < step <= 10):
        raise refuse(f"field spec.extras.robot.physics_timestep must be a number of seconds in (0, 10], got "
                     f"{brief_json(step)}")
    if decimation is not None and not (isinstance(decimation, int) and not isinstance(decimation, bool)
                                       and 1 <= decimation <= 10**6):
        raise refuse(f"field spec.extras.robot.decimation must be a whole number from 1 to 1,000,000, got "
                     f"{brief_json(decimation)}")
    skip = spec.get("frame_skip")
    if decimation is not None and skip is not None and skip != decimation:
        raise refuse(f"spec.frame_skip {skip} and spec.extras.robot.decimation {decimation} disagree (physics steps "
                     "per action are one number)")
    period = card.get("control_period", spec.get("control_period"))
    if step is not None and decimation is not None and period is not None and not _close(step * decimation, period):
        raise refuse(f"control_period {period:g} s is not its physics step x decimation ({step:g} s x {decimation} = "
                     f"{step * decimation:g} s)")


def validate_card(card: Any, where: str = "card") -> None:
    """Check a policy card's schema and its consistency; raise `CardError` naming the first problem.

    Types and presence of every field the robot side reads; action bounds finite with low < high and
    one element per joint; a control period of at most 10 kHz; observation elements of known kinds with the
    axis and frame their kind needs; joint ranges finite with low < high; a sane normaliser clip; and the
    numbers against each other (`_check_plausible`: targets inside the joints' ranges, commands within the
    template's bound, gains, default pose, rates).
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
    if spec.get("extras") is not None and not isinstance(spec["extras"], dict):
        raise bad("spec.extras", "an object", spec["extras"])
    period = card.get("control_period", spec.get("control_period"))
    if (period is not None or deployable) and not (_number(period) and MIN_PERIOD <= period <= 10):
        raise bad("control_period", PERIODS, period)
    inner = spec.get("control_period")  # informational beside the card's own, but a number if given
    if inner is not None and not (_number(inner) and MIN_PERIOD <= inner <= 10):
        raise bad("spec.control_period", PERIODS, inner)
    if period is not None and inner is not None and not _close(period, inner):
        raise CardError(f"{where}: policy card's control_period {period:g} s and spec.control_period {inner:g} s "
                        "disagree (the rate the policy was trained at is one number)")
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
        entry = KINDS[kind]  # the kind's axes, frames and whether it carries its trained range: robotrl.kinds
        if entry.axes and e.get("axis", "") not in entry.axes:
            raise bad(f"{f}.axis ({kind})", "one of " + ", ".join(entry.axes), e.get("axis"))
        if entry.frames and e.get("frame", "") not in ("", *entry.frames):
            raise bad(f"{f}.frame ({kind})", " or ".join(entry.frames), e.get("frame"))
        clip = e.get("clip")
        if clip is not None and (not _number(clip) or clip <= 0):
            raise bad(f"{f}.clip", "a positive number or null", clip)
        if not _number(e.get("offset", 0.0)):
            raise bad(f"{f}.offset", "a finite number", e.get("offset"))
        rng = e.get("range")
        if entry.needs_range and rng is None:
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
    _check_plausible(card, spec, ranges, where)
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
