"""Export the actor alone to ONNX, with the policy card in the model's metadata.

The graph is written node by node from the policy record (see `robotrl.policies.policy`), not traced,
so it holds exactly what the robot needs and nothing else:

    obs [N, obs_dim] float32
      -> (obs - mean) * inv_std -> Clip(-c, c)              frozen observation normaliser (if trained with one)
      -> Gemm -> [LayerNormalization] -> act ... -> Gemm     the actor (PPO/TRPO: Gaussian mean; DDPG: mu)
      -> [Tanh] -> Clip(-1, 1) -> offset + scale * a         the task's action bounds, in robot units
    action [N, act_dim] float32

No critic, no log-std, no optimiser state. The card (JSON under the metadata key ``robotrl_card``)
says what every input and output element is; `robotrl.deploy` reads it back with onnxruntime alone.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

CARD_KEY = "robotrl_card"
CARD_FORMAT = "robotrl-card/1"
OPSET = 17  # LayerNormalization
PARITY_TOL = 1e-5
ROUNDING_FACTOR = 4  # an actor whose own float32 rounding exceeds PARITY_TOL is held to this many times that rounding


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def build_model(record: dict[str, Any], card: dict[str, Any]):
    """The ONNX ModelProto of a policy record, with `card` in its metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from robotrl.policies.policy import OBS_EPS

    obs_dim, act_dim = int(record["obs_dim"]), int(record["act_dim"])
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    x = "obs"
    if record.get("normalize_obs"):  # otherwise the record's normaliser is the identity: leave it out
        mean = _np(record["obs_mean"]).astype(np.float64)
        inv_std = 1.0 / np.sqrt(_np(record["obs_var"]).astype(np.float64) + OBS_EPS)
        nodes.append(helper.make_node("Sub", [x, const("obs_mean", mean)], ["obs_centered"]))
        nodes.append(helper.make_node("Mul", ["obs_centered", const("obs_inv_std", inv_std)], ["obs_scaled"]))
        x = "obs_scaled"
        if record.get("obs_clip") is not None:
            c = float(record["obs_clip"])
            nodes.append(helper.make_node("Clip", [x, const("obs_clip_lo", np.array(-c)),
                                                   const("obs_clip_hi", np.array(c))], ["obs_normalized"]))
            x = "obs_normalized"

    net = record["net"]
    linear = sorted({k.split(".")[0] for k in net if k.endswith(".weight") and net[k].ndim == 2}, key=int)
    layer_norms = {k.split(".")[0] for k in net if k.endswith(".weight") and net[k].ndim == 1}
    act_op = {"tanh": "Tanh", "relu": "Relu", "elu": "Elu"}[record["activation"]]
    for i, idx in enumerate(linear):
        w, b = _np(net[f"{idx}.weight"]), _np(net[f"{idx}.bias"])
        y = f"linear{i}"
        nodes.append(helper.make_node("Gemm", [x, const(f"layer{i}.weight", w), const(f"layer{i}.bias", b)], [y],
                                      transB=1))
        x = y
        if i == len(linear) - 1:
            break
        ln = str(int(idx) + 1)
        if ln in layer_norms:
            nodes.append(helper.make_node(
                "LayerNormalization", [x, const(f"layer{i}.ln.weight", _np(net[f"{ln}.weight"])),
                                       const(f"layer{i}.ln.bias", _np(net[f"{ln}.bias"]))], [f"ln{i}"],
                axis=-1, epsilon=1e-5))
            x = f"ln{i}"
        nodes.append(helper.make_node(act_op, [x], [f"hidden{i}"]))
        x = f"hidden{i}"
    if record.get("out_activation") == "tanh":
        nodes.append(helper.make_node("Tanh", [x], ["mu"]))
        x = "mu"
    nodes.append(helper.make_node("Clip", [x, const("one_neg", np.array(-1.0)), const("one", np.array(1.0))],
                                  ["a_normalized"]))
    low, high = _np(record["action_low"]).astype(np.float64), _np(record["action_high"]).astype(np.float64)
    nodes.append(helper.make_node("Mul", ["a_normalized", const("act_scale", (high - low) / 2)], ["a_scaled"]))
    nodes.append(helper.make_node("Add", ["a_scaled", const("act_offset", (high + low) / 2)], ["action"]))

    graph = helper.make_graph(
        nodes, "robotrl_actor",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", obs_dim])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["N", act_dim])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="robotrl",
                              ir_version=8)
    helper.set_model_props(model, {CARD_KEY: json.dumps(card, sort_keys=True)})
    onnx.checker.check_model(model, full_check=True)
    return model


def actor_parameter_count(record: dict[str, Any]) -> int:
    return int(sum(int(np.prod(t.shape)) for t in record["net"].values()))


def make_card(conf: dict[str, Any], spec: dict[str, Any], record: dict[str, Any], state: dict[str, Any],
              ev: dict[str, Any] | None, run_dir: str) -> dict[str, Any]:
    from robotrl import __version__

    run = conf.get("run", {})
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "task_id": conf["task"],
        "algo": conf["algo"],
        "spec": spec,
        "control_period": spec.get("control_period"),
        "normalizer": {
            "enabled": bool(record.get("normalize_obs")),
            "frozen_after_steps": int(state["num_steps"]),
            "samples": float(record.get("obs_count", 0.0)),
            "clip": record.get("obs_clip") if record.get("normalize_obs") else None,
        },
        "actor": {"hidden_sizes": list(record["hidden_sizes"]), "activation": record["activation"],
                  "layer_norm": bool(record["layer_norm"]), "out_activation": record.get("out_activation"),
                  "parameters": actor_parameter_count(record)},
        "training": {"steps": int(state["num_steps"]), "seed": int(run.get("seed", 0)),
                     "command": conf.get("command"),
                     "config": conf.get(conf["algo"], {}), "run": run, "run_dir": run_dir},
        "evaluation": ({k: ev[k] for k in ("mean_return", "std_return", "episodes", "seed", "success_rate")
                        if k in ev} if ev else None),
        "sim2real": spec.get("extras", {}).get("sim2real"),
        "robotrl_version": __version__,
    }
    return card


def recorded_observations(record: dict[str, Any], task: str, n: int, seed: int) -> np.ndarray:
    """Observations the policy itself meets on the task (its own rollouts), ``[n, obs_dim]``."""
    from robotrl.envs import make
    from robotrl.policies.policy import from_record

    policy = from_record(record)
    env = make(task)
    out = []
    try:
        obs, _ = env.reset(seed=seed)
        while len(out) < n:
            out.append(obs)
            obs, _, term, trunc, _ = env.step(policy.act(obs))
            if term or trunc:
                obs, _ = env.reset()
    finally:
        env.close()
    return np.asarray(out, dtype=np.float32)


def parity(model_bytes: bytes, record: dict[str, Any], observations: np.ndarray) -> tuple[float, float]:
    """Max |onnxruntime - torch| over `observations` (as one batch and row by row), in the policy's
    normalised action units (the actor's own output, [-1, 1]) and in robot units. The first is the
    one held to 1e-5: a torque range of +-200 N m alone would turn float32 rounding of 1e-7 into
    2e-5 N m."""
    import onnxruntime as ort
    import torch

    from robotrl.policies.policy import from_record

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    policy = from_record(record)
    with torch.inference_mode():
        ref = policy(torch.from_numpy(observations)).numpy()
    batch = sess.run(None, {"obs": observations})[0]
    rows = np.concatenate([sess.run(None, {"obs": observations[i:i + 1]})[0] for i in range(min(64, len(ref)))])
    robot = max(np.abs(batch - ref).max(), np.abs(rows - ref[:len(rows)]).max())
    scale = (_np(record["action_high"]) - _np(record["action_low"])) / 2
    normalised = max((np.abs(batch - ref) / scale).max(), (np.abs(rows - ref[:len(rows)]) / scale).max())
    return float(normalised), float(robot)


def float32_rounding(record: dict[str, Any], observations: np.ndarray) -> float:
    """Max |float32 actor - float64 actor| over `observations` in normalised action units: how far float32
    arithmetic itself puts this actor from its exact output. An actor that reads raw observations of ~100
    (DDPG on HalfCheetah, no normaliser) rounds by ~1e-5, so two correct float32 implementations (torch,
    onnxruntime) can differ by that much; the parity check allows for it."""
    import copy

    import torch

    from robotrl.policies.policy import from_record

    policy = from_record(record)
    with torch.inference_mode():
        single = policy(torch.from_numpy(observations)).numpy().astype(np.float64)
        exact = copy.deepcopy(policy).double()(torch.from_numpy(observations).double()).numpy()
    scale = (_np(record["action_high"]).astype(np.float64) - _np(record["action_low"])) / 2
    return float((np.abs(single - exact) / scale).max())


def export_run(run_dir: str, out: str | None = None, *, samples: int = 512) -> dict[str, Any]:
    """Export a run's actor to ONNX after checking parity with the torch actor; returns a summary.

    Every input is checked first (config.json, spec.json, eval.json, the checkpoint against them); the
    file is replaced only after the written copy has been read back with the robot side's own loader
    (`robotrl.deploy.runtime.load_card`: the card's schema and its agreement with the graph)."""
    from pathlib import Path

    from robotrl.atomic import atomic_write_bytes, replace_target
    from robotrl.card import check_training_fields
    from robotrl.deploy.runtime import CardError, load_card, validate_card
    from robotrl.errors import UserError
    from robotrl.run.rundir import RunDir

    rd = RunDir.open(run_dir)
    settings = rd.read_settings()
    conf = settings.raw
    state = rd.load_checkpoint(settings)
    record = state["policy"]
    task_spec = rd.read_spec(settings)
    if (task_spec.obs_dim, task_spec.act_dim) != (record["obs_dim"], record["act_dim"]) or not (
            np.allclose(task_spec.action_low, _np(record["action_low"]))
            and np.allclose(task_spec.action_high, _np(record["action_high"]))):
        raise UserError(f"{rd.spec} does not describe the checkpoint's actor ({task_spec.obs_dim} -> "
                        f"{task_spec.act_dim} elements and action bounds, the actor {record['obs_dim']} -> "
                        f"{record['act_dim']}); export refused")
    spec = json.loads(rd.spec.read_text())
    ev = rd.read_eval()
    path = Path(out) if out else rd.path / "actor.onnx"
    if path.is_dir():
        raise UserError(f"-o {str(path)!r} is a directory; give a file name (e.g. {path / 'actor.onnx'})")
    if not path.parent.is_dir():
        raise UserError(f"-o {str(path)!r}: folder {str(path.parent)!r} does not exist")
    if path.suffix.lower() != ".onnx":  # an ONNX file named .pt would be taken for a torch checkpoint
        raise UserError(f"-o {str(path)!r}: the actor is written as ONNX; give a file name ending in .onnx")
    path = replace_target(path)  # before the parity check: -o /dev/null is refused at once
    card = make_card(conf, spec, record, state, ev, str(rd.path))
    try:  # the robot side's schema and the training side's fields, before anything is built
        validate_card(card, f"the card made from {rd.path}")
        check_training_fields(card, f"the card made from {rd.path}")
    except ValueError as e:  # CardError is one
        raise UserError(f"export refused: {e}") from None
    # parity on what the robot will see (the policy's own rollouts) and on random inputs around them
    seed = int(conf.get("run", {}).get("seed", 0))
    seen = recorded_observations(record, conf["task"], samples, seed)
    rng = np.random.default_rng(seed)
    spread = seen.std(0) + 1e-3
    wild = (seen.mean(0) + spread * rng.standard_normal((samples, seen.shape[1])) * 3).astype(np.float32)
    probe = build_model(record, card)
    probe_obs = np.concatenate([seen, wild])
    diff, diff_robot = parity(probe.SerializeToString(), record, probe_obs)
    rounding = float32_rounding(record, probe_obs)
    limit = max(PARITY_TOL, ROUNDING_FACTOR * rounding)
    card["export"] = {"parity_max_abs_diff": diff, "parity_max_abs_diff_robot_units": diff_robot,
                      "parity_limit": limit, "float32_rounding": rounding,
                      "parity_units": "normalised action ([-1, 1] over each joint's range)",
                      "parity_samples": 2 * samples, "opset": OPSET}
    if not diff <= limit:
        raise UserError(f"export refused: the ONNX graph differs from the torch actor by up to {diff:.3g} "
                        f"in normalised action units (limit {limit:.3g}: {PARITY_TOL:g}, or {ROUNDING_FACTOR} x "
                        f"the actor's own float32 rounding {rounding:.2g} where larger); nothing was written")
    model = build_model(record, card)
    data = model.SerializeToString()

    def read_back(tmp: Path) -> None:
        try:
            back = load_card(tmp)
        except CardError as e:
            raise UserError(f"export refused, {path} left as it was: the written file does not load on the robot "
                            f"side ({e})") from None
        if back != json.loads(json.dumps(card)):
            raise UserError(f"export refused, {path} left as it was: the card read back differs from the one written")

    atomic_write_bytes(path, data, verify=read_back)
    initializer_params = int(sum(int(np.prod(t.dims)) for t in model.graph.initializer))
    return {"path": str(path), "bytes": len(data), "parity_max_abs_diff": diff,
            "parity_max_abs_diff_robot_units": diff_robot, "parity_limit": limit,
            "actor_parameters": actor_parameter_count(record), "graph_parameters": initializer_params, "card": card}
