"""The exported ONNX graph against a NumPy evaluation of the policy written out by hand (normaliser, clip,
linear layers, LayerNorm, activations, action clip and scaling), for every activation and option; the card
built from a run's files field by field; parity's two units; the observations the policy meets itself."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from robotrl.policies import RunningMeanStd, make_record, mlp
from robotrl.policies.export import (
    CARD_FORMAT,
    CARD_KEY,
    OPSET,
    actor_parameter_count,
    build_model,
    make_card,
    parity,
    recorded_observations,
)

LOW, HIGH = np.array([-1.0, -4.0, 0.0]), np.array([0.5, 4.0, 2.0])  # scale 0.75, 4, 1; offset -0.25, 0, 1


def _record(*, activation="tanh", layer_norm=False, out_activation=None, normalize=True, clip=2.0, seed=0,
            obs_dim=4, act_dim=3, hidden=(5, 6), low=LOW, high=HIGH):
    g = torch.Generator().manual_seed(seed)
    net = mlp([obs_dim, *hidden, act_dim], activation, out_gain=3.0, layer_norm=layer_norm,
              out_activation=out_activation, generator=g)
    with torch.no_grad():  # non-zero biases and LayerNorm affine parameters, so that each one shows
        for p in net.parameters():
            if p.ndim == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=g) + (1.0 if p is getattr(net[1], "weight", None) else 0))
    rms = None
    if normalize:
        rms = RunningMeanStd((obs_dim,))
        rms.update(np.random.default_rng(seed).normal([1.0, -2.0, 0.5, 3.0][:obs_dim], [0.5, 2.0, 1.0, 4.0][:obs_dim],
                                                      size=(200, obs_dim)))
    return make_record(net, obs_dim=obs_dim, act_dim=act_dim, hidden_sizes=hidden, activation=activation,
                       layer_norm=layer_norm, out_activation=out_activation, obs_rms=rms, obs_clip=clip,
                       action_low=low[:act_dim], action_high=high[:act_dim])


def _by_hand(record, obs, dtype=np.float64):
    """The deployed policy, written out in NumPy from the record alone (in float64, or in float32 as the graph
    computes it: the two differ by the policy's own float32 rounding)."""
    x = obs.astype(dtype)
    if record["normalize_obs"]:
        x = ((x - record["obs_mean"].numpy().astype(dtype)) / np.sqrt(record["obs_var"].numpy().astype(dtype) + 1e-8)
             ).astype(dtype)
        if record["obs_clip"] is not None:
            x = np.clip(x, -record["obs_clip"], record["obs_clip"]).astype(dtype)
    net = {k: v.double().numpy().astype(dtype) for k, v in record["net"].items()}
    act = {"tanh": np.tanh, "relu": lambda h: np.maximum(h, 0.0),
           "elu": lambda h: np.where(h > 0, h, np.exp(np.minimum(h, 0.0)) - 1.0)}[record["activation"]]
    n_hidden = len(record["hidden_sizes"])
    step = 3 if record["layer_norm"] else 2  # Linear, [LayerNorm], activation
    for i in range(n_hidden + 1):
        k = i * step
        x = x @ net[f"{k}.weight"].T + net[f"{k}.bias"]
        if i == n_hidden:
            break
        if record["layer_norm"]:
            mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + 1e-5) * net[f"{k + 1}.weight"] + net[f"{k + 1}.bias"]
        x = act(x)
    if record["out_activation"] == "tanh":
        x = np.tanh(x)
    a = np.clip(x, -1.0, 1.0)
    low, high = record["action_low"].numpy(), record["action_high"].numpy()
    return (high + low) / 2 + (high - low) / 2 * a


def _run(model, obs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"obs": obs.astype(np.float32)})[0]


def _obs(n=300, seed=1, obs_dim=4):
    # wide enough that the normaliser's clip, the activations' kinks and the action clip are all reached
    return (np.random.default_rng(seed).normal(0.0, 6.0, size=(n, obs_dim))).astype(np.float32)


@pytest.mark.parametrize("options", [
    {"activation": "tanh", "layer_norm": True, "out_activation": "tanh"},
    {"activation": "relu", "normalize": False},
    {"activation": "elu", "clip": None},
    {"activation": "relu", "layer_norm": True, "hidden": (7,)},
    {"activation": "tanh", "hidden": (5, 6, 4), "clip": 0.5},
])
def test_the_graph_computes_the_policy_written_out_by_hand(options):
    record = _record(**options)
    model = build_model(record, {"format": CARD_FORMAT, "x": 1})
    obs = _obs()
    got = _run(model, obs)
    expected = _by_hand(record, obs)
    # the graph runs in float32: allowed, 2e-5 plus four times the policy's own float32 rounding at each element (as
    # export's parity check allows; an unclipped ELU actor reaches pre-activations where that rounding is ~1e-5)
    rounding = np.abs(_by_hand(record, obs, np.float32) - expected)
    assert np.all(np.abs(got - expected) <= 2e-5 + 1e-5 * np.abs(expected) + 4 * rounding), \
        float(np.max(np.abs(got - expected) - 4 * rounding))
    a = (expected - (HIGH + LOW) / 2) / ((HIGH - LOW) / 2)
    assert (np.abs(a) < 0.99).any()
    if record["out_activation"] is None:
        assert (np.abs(a) >= 1 - 1e-9).any()  # the action clip is reached


def test_the_normaliser_clip_acts_on_the_normalised_observation():
    record = _record(activation="relu", clip=0.25)
    obs = _obs(obs_dim=4)
    unclipped = dict(record, obs_clip=None)
    got = _run(build_model(record, {}), obs)
    np.testing.assert_allclose(got, _by_hand(record, obs), atol=2e-5, rtol=1e-5)
    assert np.abs(_by_hand(unclipped, obs) - got).max() > 1e-2  # the clip changes the output


def test_the_graph_holds_only_the_actor_and_the_card():
    record = _record(layer_norm=True, out_activation="tanh")
    card = {"format": CARD_FORMAT, "task_id": "t", "b": [1, 2], "a": {"z": 1, "y": None}}
    model = build_model(record, card)
    assert [n.op_type for n in model.graph.node] == [
        "Sub", "Mul", "Clip", "Gemm", "LayerNormalization", "Tanh", "Gemm", "LayerNormalization", "Tanh", "Gemm",
        "Tanh", "Clip", "Mul", "Add"]
    assert all(n.attribute[0].i == 1 for n in model.graph.node if n.op_type == "Gemm")  # transB
    ln = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert all({a.name: (a.i if a.name == "axis" else a.f) for a in n.attribute} == pytest.approx(
        {"axis": -1, "epsilon": 1e-5}) for n in ln)
    assert [i.name for i in model.graph.input] == ["obs"] and [o.name for o in model.graph.output] == ["action"]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*model.graph.input, *model.graph.output)]
    assert dims == [["N", 4], ["N", 3]]
    assert model.opset_import[0].version == OPSET == 17 and model.ir_version == 8 and model.producer_name == "robotrl"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {CARD_KEY: json.dumps(card, sort_keys=True)} and CARD_KEY == "robotrl_card"
    plain = build_model(_record(normalize=False, activation="relu"), {})
    assert [n.op_type for n in plain.graph.node] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Clip", "Mul", "Add"]
    no_clip = build_model(_record(clip=None, activation="elu", hidden=(3,)), {})
    assert [n.op_type for n in no_clip.graph.node] == ["Sub", "Mul", "Gemm", "Elu", "Gemm", "Clip", "Mul", "Add"]
    inits = {t.name: t for t in plain.graph.initializer}
    np.testing.assert_allclose(np.frombuffer(inits["act_scale"].raw_data, np.float32), (HIGH - LOW) / 2)
    np.testing.assert_allclose(np.frombuffer(inits["act_offset"].raw_data, np.float32), (HIGH + LOW) / 2)


def test_actor_parameter_count_by_hand():
    # 4 -> 5 -> 6 -> 3: (4*5 + 5) + (5*6 + 6) + (6*3 + 3) = 82; LayerNorm adds 2 x (5 + 6)
    assert actor_parameter_count(_record()) == 82
    assert actor_parameter_count(_record(layer_norm=True)) == 82 + 22


def _card_inputs(normalize=True):
    record = _record(normalize=normalize, clip=4.0)
    conf = {"task": "robotrl/ArmReach-v0", "algo": "ppo", "command": "robotrl train ppo robotrl/ArmReach-v0",
            "ppo": {"learning_rate": 3e-4}, "run": {"seed": 7, "total_steps": 1000}}
    spec = {"control_period": 0.02, "extras": {"sim2real": {"action_delay": 1}}, "observation": []}
    state = {"num_steps": 1024}
    ev = {"mean_return": -3.5, "std_return": 0.5, "episodes": 10, "seed": 100, "success_rate": 0.9, "other": 1}
    return conf, spec, record, state, ev


def test_the_card_says_what_the_run_was():
    from robotrl import __version__

    conf, spec, record, state, ev = _card_inputs()
    card = make_card(conf, spec, record, state, ev, "/runs/arm")
    assert card == {
        "format": "robotrl-card/1", "task_id": "robotrl/ArmReach-v0", "algo": "ppo", "spec": spec,
        "control_period": 0.02,
        "normalizer": {"enabled": True, "frozen_after_steps": 1024, "samples": pytest.approx(200.0001), "clip": 4.0},
        "actor": {"hidden_sizes": [5, 6], "activation": "tanh", "layer_norm": False, "out_activation": None,
                  "parameters": 82},
        "training": {"steps": 1024, "seed": 7, "command": "robotrl train ppo robotrl/ArmReach-v0",
                     "config": {"learning_rate": 3e-4}, "run": {"seed": 7, "total_steps": 1000},
                     "run_dir": "/runs/arm"},
        "evaluation": {"mean_return": -3.5, "std_return": 0.5, "episodes": 10, "seed": 100, "success_rate": 0.9},
        "sim2real": {"action_delay": 1}, "robotrl_version": __version__}


def test_the_card_of_a_run_without_normaliser_evaluation_or_sim2real():
    conf, _, record, state, _ = _card_inputs(normalize=False)
    conf = {"task": conf["task"], "algo": "ddpg"}
    card = make_card(conf, {"observation": []}, record, state, None, "r")
    assert card["normalizer"] == {"enabled": False, "frozen_after_steps": 1024, "samples": 0.0, "clip": None}
    assert card["evaluation"] is None and card["sim2real"] is None and card["control_period"] is None
    assert card["training"] == {"steps": 1024, "seed": 0, "command": None, "config": {}, "run": {}, "run_dir": "r"}
    few = make_card(conf, {}, record, state, {"mean_return": 1.0, "episodes": 2}, "r")
    assert few["evaluation"] == {"mean_return": 1.0, "episodes": 2}


def test_parity_in_normalised_and_robot_units():
    record = _record(activation="relu")
    obs = _obs(n=100)
    exact = build_model(record, {}).SerializeToString()
    normalised, robot = parity(exact, record, obs)
    assert normalised <= 1e-5 and robot <= 4e-5
    shifted = dict(record, net=dict(record["net"]))
    b = shifted["net"]["4.bias"].clone()
    b[1] += 0.01  # joint 1 (scale 4) moves 0.01 in normalised units wherever its action is not clipped
    shifted["net"]["4.bias"] = b
    normalised, robot = parity(build_model(shifted, {}).SerializeToString(), record, obs)
    assert normalised == pytest.approx(0.01, abs=1e-5) and robot == pytest.approx(0.04, abs=4e-5)
    first = obs[:1]  # the row-by-row check alone: one observation
    n1, r1 = parity(build_model(shifted, {}).SerializeToString(), record, first)
    assert n1 <= 0.01 + 1e-5 and r1 <= 0.04 + 4e-5


def test_recorded_observations_are_the_policys_own_rollouts():
    from robotrl.envs import make
    from robotrl.policies import from_record

    env = make("robotrl/ArmReach-v0")
    spec = env.get_wrapper_attr("task_spec")
    steps = env.spec.max_episode_steps
    record = _record(obs_dim=spec.obs_dim, act_dim=spec.act_dim, low=np.array(spec.action_low),
                     high=np.array(spec.action_high), normalize=False, activation="relu")
    got = recorded_observations(record, "robotrl/ArmReach-v0", steps + 3, seed=11)
    assert got.shape == (steps + 3, spec.obs_dim) and got.dtype == np.float32
    policy = from_record(record)
    obs, _ = env.reset(seed=11)
    expected = []
    while len(expected) < steps + 3:
        expected.append(obs)
        obs, _, term, trunc, _ = env.step(policy.act(obs))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float32))  # across the episode's end


def test_an_observation_element_that_never_varied_stays_finite():
    # A joint that never moved in training has variance 0: the graph must divide by sqrt(0 + eps), as torch does,
    # not produce NaN or Inf for it.
    from robotrl.policies import from_record

    record = _record(activation="relu")
    var = record["obs_var"].clone()
    var[2] = 0.0
    record["obs_var"] = var
    obs = _obs(n=50)
    got = _run(build_model(record, {}), obs)
    assert np.isfinite(got).all()
    with torch.inference_mode():
        ref = from_record(record)(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """A tiny real run (SAC on the arm, observation normaliser on) for export_run itself."""
    from robotrl.run.train import train

    return train("sac", "robotrl/ArmReach-v0",
                 algo_flags={"learning_starts": "100", "hidden_sizes": "32,32", "batch_size": "32",
                             "iteration_steps": "250", "normalize_obs": "true"},
                 run_flags={"total_steps": "500", "seed": "1", "workers": "0", "eval_episodes": "2"},
                 out=tmp_path_factory.mktemp("export-run") / "sac", progress=False)


def test_float32_rounding_of_a_raw_input_actor_is_allowed_for_and_a_wrong_graph_still_is_not():
    # DDPG reads raw observations (no normaliser): on HalfCheetah they reach ~100, and a 256-wide actor's float32
    # output then sits ~1e-5 from its exact value in torch and onnxruntime alike, so the two disagree by about that
    from robotrl.policies.export import PARITY_TOL, ROUNDING_FACTOR, float32_rounding

    record = _record(activation="relu", normalize=False, obs_dim=4, hidden=(256, 256), out_activation="tanh")
    obs = (100 * _obs(n=300)).astype(np.float32)
    rounding = float32_rounding(record, obs)
    normalised, _ = parity(build_model(record, {}).SerializeToString(), record, obs)
    assert 1e-7 < rounding < 1e-3 and normalised <= max(PARITY_TOL, ROUNDING_FACTOR * rounding)
    shifted = dict(record, net=dict(record["net"]))
    last = max(k for k in shifted["net"] if k.endswith(".bias"))
    b = shifted["net"][last].clone()
    b[0] += 1e-2
    shifted["net"][last] = b
    wrong, _ = parity(build_model(shifted, {}).SerializeToString(), record, obs)
    assert wrong > 10 * max(PARITY_TOL, ROUNDING_FACTOR * rounding)  # a real difference stays far above the limit


def test_export_run_writes_the_parity_it_measured_into_the_card_and_refuses_bad_targets(sac_run, tmp_path):
    import shutil

    from robotrl.deploy.runtime import load_card
    from robotrl.errors import UserError
    from robotrl.policies.export import OPSET, export_run

    out = tmp_path / "a.onnx"
    s = export_run(str(sac_run), str(out), samples=16)
    assert s["path"] == str(out) and s["bytes"] == out.stat().st_size
    assert s["card"] == load_card(out)  # the summary's card is the one in the file
    assert s["card"]["actor"]["out_activation"] == "tanh"  # SAC's deterministic action is tanh(mu(s))
    assert s["card"]["export"] == {  # what a reader of the card learns about the check
        "parity_max_abs_diff": s["parity_max_abs_diff"],
        "parity_max_abs_diff_robot_units": s["parity_max_abs_diff_robot_units"],
        "parity_limit": s["parity_limit"], "float32_rounding": s["card"]["export"]["float32_rounding"],
        "parity_units": "normalised action ([-1, 1] over each joint's range)", "parity_samples": 32, "opset": OPSET}
    assert s["parity_limit"] == max(1e-5, 4 * s["card"]["export"]["float32_rounding"])
    import onnx

    assert OPSET == 17 and onnx.load(str(out)).opset_import[0].version == OPSET
    with pytest.raises(UserError, match="is a directory; give a file name"):
        export_run(str(sac_run), str(tmp_path), samples=16)
    with pytest.raises(UserError, match="does not exist"):
        export_run(str(sac_run), str(tmp_path / "no" / "such" / "a.onnx"), samples=16)
    with pytest.raises(UserError, match=r"written as ONNX; give a file name ending in \.onnx"):
        export_run(str(sac_run), str(tmp_path / "actor.pt"), samples=16)
    assert not (tmp_path / "actor.pt").exists()
    # a spec.json whose action bounds are not the actor's (same sizes): refused, nothing written
    for edit in ("low", "high"):
        run = tmp_path / f"edited-{edit}"
        shutil.copytree(sac_run, run)
        spec = json.loads((run / "spec.json").read_text())
        spec["action"][0][edit] = spec["action"][0][edit] * 0.5
        (run / "spec.json").write_text(json.dumps(spec))
        (run / "actor.onnx").unlink(missing_ok=True)
        with pytest.raises(UserError, match="does not describe the checkpoint's actor"):
            export_run(str(run), samples=16)
        assert not (run / "actor.onnx").exists()


def test_parity_reports_the_largest_difference_over_every_observation():
    # A graph whose error differs from one observation to the next (one last-layer weight off): the reported
    # figure must be the maximum over all of them, wherever the worst one lies, not a typical or the smallest one.
    record = _record(activation="relu", normalize=False)
    obs = _obs(n=100)
    shifted = dict(record, net=dict(record["net"]))
    w = shifted["net"]["4.weight"].clone()
    w[0, 0] += 0.003
    shifted["net"]["4.weight"] = w
    model = build_model(shifted, {})
    scale = (HIGH - LOW) / 2
    err = np.abs(_run(model, obs) - _by_hand(record, obs))
    worst = int(np.argmax(err.max(1)))
    per_obs = err.max(1)
    assert (per_obs > 1e-4).sum() >= 10 and per_obs.max() > 1.2 * np.sort(per_obs)[-2]  # varies; one is worst
    order = [i for i in range(len(obs)) if i != worst] + [worst]  # the worst one last, beyond the row-by-row part
    normalised, robot = parity(model.SerializeToString(), record, obs[order])
    assert robot == pytest.approx(err.max(), abs=2e-5)
    assert normalised == pytest.approx((err / scale).max(), abs=2e-5)
