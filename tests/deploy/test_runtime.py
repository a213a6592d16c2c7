"""The robot side's runtime without a trained run: the policy card's schema field by field (each refusal
names its field in one line), the card read back from a small hand-written ONNX graph, and `OnnxPolicy`
computing that graph's known output."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robotrl.deploy.runtime import (
    CARD_KEY,
    CardError,
    OnnxPolicy,
    load_card,
    pretrained_dir,
    pretrained_names,
    resolve,
    validate_card,
)
from robotrl.spec import OBS_KINDS

CARD = {
    "format": "robotrl-card/1", "task_id": "robotrl/Test-v0", "algo": "ppo", "robotrl_version": "0.1.0",
    "normalizer": {"enabled": True, "clip": 10.0}, "training": {}, "control_period": 0.02,
    "spec": {
        "deployable": True, "frame_skip": 1, "max_episode_steps": 100,
        "observation": [
            {"kind": "joint_pos", "name": "a", "unit": "rad"},
            {"kind": "base_lin_vel", "name": "root", "axis": "x", "frame": "world"},
            {"kind": "goal", "name": "target", "axis": "z", "clip": 2.0, "offset": 0.0},
        ],
        "action": [{"joint": "a", "kind": "position", "low": -1.0, "high": 1.0},
                   {"joint": "b", "kind": "effort", "low": -2.0, "high": 2.0}],
        "joint_ranges": {"a": [-1.5, 1.5]},
    },
}


def _card(change=None):
    c = copy.deepcopy(CARD)
    if change is not None:
        change(c)
    return c


def _set(path, value):
    """A change that sets card[path...] = value (value DELETE removes the key)."""
    def change(c):
        d = c
        for k in path[:-1]:
            d = d[k]
        if value is DELETE:
            del d[path[-1]]
        else:
            d[path[-1]] = value
    return change


DELETE = object()
F = "card: policy card field "
PERIOD = "control_period must be a number of seconds in [0.0001, 10] (at most 10000 Hz)"


@pytest.mark.parametrize("change, message", [
    (lambda c: c.clear(), "card: the policy card lacks format, task_id, algo, spec, normalizer, training, "
                          "robotrl_version"),
    (lambda c: (c.pop("algo"), c.pop("spec")), "card: the policy card lacks algo, spec"),
    (_set(["format"], "robotrl-card/2"), "card: policy card format 'robotrl-card/2' is not 'robotrl-card/1'"),
    (_set(["task_id"], ""), F + 'task_id must be a non-empty string, got ""'),
    (_set(["algo"], 3), F + "algo must be a non-empty string, got 3"),
    (_set(["robotrl_version"], None), F + "robotrl_version must be a non-empty string"),
    (_set(["task_id"], ["x" * 100]), F + "task_id must be a non-empty string, got " + json.dumps(["x" * 100])[:77]
     + "..."),  # cut, and says so
    (_set(["task_id"], object()), F + "task_id must be a non-empty string, got object"),
    (_set(["normalizer"], []), F + "normalizer must be an object, got []"),
    (_set(["training"], "x"), F + 'training must be an object, got "x"'),
    (_set(["spec"], "x"), F + 'spec must be an object, got "x"'),
    (_set(["spec", "observation"], []), "card: the card's spec has no observation elements"),
    (_set(["spec", "observation"], {"kind": "joint_pos"}), "card: the card's spec has no observation elements"),
    (_set(["spec", "action"], DELETE), "card: the card's spec has no action elements"),
    (_set(["spec", "deployable"], "yes"), F + 'spec.deployable must be true or false, got "yes"'),
    (_set(["control_period"], 0), F + PERIOD + ", got 0"),
    (_set(["control_period"], -0.02), F + PERIOD + ", got -0.02"),
    (_set(["control_period"], 10.5), F + PERIOD + ", got 10.5"),
    (_set(["control_period"], True), F + PERIOD + ", got true"),
    (_set(["control_period"], float("nan")), F + PERIOD + ", got NaN"),
    (_set(["control_period"], None), F + PERIOD),  # deployable
    (lambda c: (c.pop("control_period"), c["spec"].update(control_period=-1)),
     F + PERIOD + ", got -1"),  # the spec's, when the card has none
    (_set(["spec", "frame_skip"], 0), F + "spec.frame_skip must be a positive integer or null, got 0"),
    (_set(["spec", "max_episode_steps"], True), F + "spec.max_episode_steps must be a positive integer or null, "
                                                    "got true"),
    (_set(["spec", "max_episode_steps"], 2.0), F + "spec.max_episode_steps must be a positive integer or null, "
                                                   "got 2.0"),
    (_set(["spec", "action", 0], "a"), F + 'spec.action[0] must be an object, got "a"'),
    (_set(["spec", "action", 1, "joint"], ""), F + 'spec.action[1].joint must be a joint name, got ""'),
    (_set(["spec", "action", 1, "joint"], DELETE), F + "spec.action[1].joint must be a joint name"),
    (_set(["spec", "action", 0, "kind"], "torque"), F + 'spec.action[0].kind must be one of effort, position, '
                                                        'velocity, generic, got "torque"'),
    (_set(["spec", "action", 0, "high"], float("inf")), F + "spec.action[0] (a) low/high must be finite numbers, "
                                                            "got [-1.0, Infinity]"),
    (_set(["spec", "action", 1, "low"], "0"), F + 'spec.action[1] (b) low/high must be finite numbers, '
                                                  'got ["0", 2.0]'),
    (_set(["spec", "action", 0, "low"], 1.0), "card: policy card action bounds of 'a' are inconsistent: low 1.0 is "
                                              "not below high 1.0"),
    (_set(["spec", "action", 1, "joint"], "a"), "card: policy card commands joint(s) a more than once"),
    (_set(["spec", "observation", 0], 5), F + "spec.observation[0] must be an object, got 5"),
    (_set(["spec", "observation", 0, "kind"], "torque"),
     F + "spec.observation[0].kind must be a known observation kind (" + ", ".join(OBS_KINDS) + '), got "torque"'),
    (_set(["spec", "observation", 0, "kind"], 3),
     F + "spec.observation[0].kind must be a known observation kind (" + ", ".join(OBS_KINDS) + "), got 3"),
    (_set(["spec", "observation", 0, "name"], ""), F + 'spec.observation[0].name must be a non-empty string, got ""'),
    (_set(["spec", "observation", 0, "axis"], 1), F + "spec.observation[0].axis must be a string, got 1"),
    (_set(["spec", "observation", 0, "frame"], None), F + "spec.observation[0].frame must be a string"),
    (_set(["spec", "observation", 0, "unit"], 5), F + "spec.observation[0].unit must be a string, got 5"),
    (_set(["spec", "observation", 2, "axis"], "w"), F + 'spec.observation[2].axis (goal) must be one of x, y, z, '
                                                        'got "w"'),
    (_set(["spec", "observation", 2, "axis"], DELETE), F + "spec.observation[2].axis (goal) must be one of x, y, z"),
    (_set(["spec", "observation", 1, "frame"], "odom"), F + "spec.observation[1].frame (base_lin_vel) must be world "
                                                            'or base, got "odom"'),
    (_set(["spec", "observation", 2, "clip"], 0), F + "spec.observation[2].clip must be a positive number or null, "
                                                      "got 0"),
    (_set(["spec", "observation", 2, "clip"], True), F + "spec.observation[2].clip must be a positive number or "
                                                         "null, got true"),
    (_set(["spec", "observation", 2, "offset"], "1"), F + 'spec.observation[2].offset must be a finite number, '
                                                          'got "1"'),
    (_set(["spec", "observation", 2], {"kind": "velocity_command", "name": "cmd", "axis": "yaw"}),
     F + "spec.observation[2].range (velocity_command) must be [low, high], the range trained on"),
    (_set(["spec", "observation", 2, "range"], [1, 0]), F + "spec.observation[2].range must be [low, high] with "
                                                            "low <= high, got [1, 0]"),
    (_set(["spec", "observation", 2, "range"], [0, 1, 2]), F + "spec.observation[2].range must be [low, high] with "
                                                               "low <= high, got [0, 1, 2]"),
    (_set(["spec", "observation", 2, "range"], "ab"), F + "spec.observation[2].range must be [low, high] with "
                                                          'low <= high, got "ab"'),
    (_set(["spec", "observation", 2, "range"], [0, "1"]), F + "spec.observation[2].range must be [low, high] with "
                                                              'low <= high, got [0, "1"]'),
    (_set(["spec", "observation", 0], {"kind": "prev_action", "name": "c"}),
     "card: policy card observes the previous action of 'c', which it does not command"),
    (_set(["spec", "joint_ranges"], "x"), F + 'spec.joint_ranges must be an object {joint: [low, high]}, got "x"'),
    (_set(["spec", "joint_ranges"], {"a": [0]}), F + "spec.joint_ranges.a must be [low, high] (finite numbers), "
                                                     "got [0]"),
    (_set(["spec", "joint_ranges"], {"a": [0, "1"]}), F + "spec.joint_ranges.a must be [low, high] (finite numbers), "
                                                          'got [0, "1"]'),
    (_set(["spec", "joint_ranges"], {"a": "01"}), F + "spec.joint_ranges.a must be [low, high] (finite numbers), "
                                                      'got "01"'),
    (_set(["spec", "joint_ranges"], {"a": [1, 1]}), "card: policy card joint range of 'a' is inconsistent: low 1 is "
                                                    "not below high 1"),
    (_set(["normalizer", "enabled"], "yes"), F + 'normalizer.enabled must be true or false, got "yes"'),
    (_set(["normalizer", "clip"], 0), F + "normalizer.clip must be a positive number or null, got 0"),
    (_set(["normalizer", "clip"], "5"), F + 'normalizer.clip must be a positive number or null, got "5"'),
])
def test_each_inconsistent_field_is_refused_naming_it(change, message):
    with pytest.raises(CardError) as e:
        validate_card(_card(change))
    assert str(e.value) == message


@pytest.mark.parametrize("change", [
    None,
    _set(["control_period"], 10),  # the upper limit itself
    lambda c: (c.pop("control_period"), c["spec"].update(deployable=False)),  # no clock: a plain Gymnasium task
    _set(["spec", "deployable"], DELETE),  # not deployable by default, then the period may be absent
    lambda c: (c.pop("control_period"), c["spec"].pop("deployable")),
    _set(["spec", "observation", 2, "clip"], 0.5),  # any positive clip
    _set(["normalizer", "clip"], 0.5),
    lambda c: (c.pop("control_period"), c["spec"].update(deployable=False, control_period=None)),
    _set(["spec", "frame_skip"], None),
    _set(["spec", "observation", 2], {"kind": "velocity_command", "name": "cmd", "axis": "yaw", "range": [0.0, 0.0]}),
    _set(["spec", "observation", 1, "frame"], "base"),
    _set(["spec", "observation", 1, "frame"], DELETE),
    _set(["spec", "observation", 2, "clip"], None),
    _set(["spec", "observation", 0], {"kind": "base_quat", "name": "root", "axis": "w"}),
    _set(["spec", "observation", 0], {"kind": "body_pos", "name": "tip", "axis": "x", "frame": "target"}),
    _set(["spec", "observation", 0], {"kind": "prev_action", "name": "b"}),
    _set(["spec", "joint_ranges"], None),
    _set(["normalizer"], {"enabled": False, "clip": 0}),  # a disabled normaliser's clip is never used
    _set(["normalizer"], {}),
    _set(["normalizer", "clip"], None),
])
def test_consistent_cards_are_accepted(change):
    validate_card(_card(change))


def test_the_message_starts_with_where_the_card_came_from():
    with pytest.raises(CardError, match=r"^/robot/actor\.onnx: the policy card is not a JSON object$"):
        validate_card([], "/robot/actor.onnx")


# --------------------------------------------------------------------------------------------------
# Cards read back from files


W = np.array([[1.0, 0.0], [2.0, -1.0], [0.5, 3.0]], dtype=np.float32)  # action = obs @ W + B
B = np.array([0.25, -0.5], dtype=np.float32)


def _actor(path, card=CARD, *, in_dim=3, out_dim=2, inputs=1, meta=None):
    """A tiny affine actor written with onnx.helper, carrying `card` (or the raw metadata `meta`)."""
    w = np.zeros((in_dim, out_dim), dtype=np.float32)
    w[:min(3, in_dim), :min(2, out_dim)] = W[:in_dim, :out_dim]
    b = np.zeros(out_dim, dtype=np.float32)
    b[:min(2, out_dim)] = B[:out_dim]
    nodes = [helper.make_node("MatMul", ["obs", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["action"])]
    ins = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["N", in_dim])]
    if inputs == 2:
        ins.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["N", 1]))
        nodes.append(helper.make_node("Identity", ["extra"], ["extra_out"]))
    outs = [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["N", out_dim])]
    graph = helper.make_graph(nodes, "actor", ins, outs,
                              initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if meta is None:
        meta = {CARD_KEY: json.dumps(card)}
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def test_a_card_is_read_back_and_the_actor_computes_its_graph(tmp_path):
    path = _actor(tmp_path / "actor.onnx")
    assert load_card(path) == CARD
    policy = OnnxPolicy(path)
    assert policy.card == CARD and (policy.obs_dim, policy.act_dim) == (3, 2) and policy.path == str(path)
    obs = np.array([1.0, 2.0, -1.0])
    expected = np.array([1 + 4 - 0.5 + 0.25, -2 - 3 - 0.5])  # obs @ W + B by hand
    out = policy(obs)
    assert out.shape == (2,)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    batch = policy.act(np.stack([obs, np.zeros(3)]))  # `act` is the same call
    assert batch.shape == (2, 2)
    np.testing.assert_allclose(batch, [expected, B], rtol=1e-6)
    options = policy._sess.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level) == (1, 1, 3)
    assert options.execution_mode.name == "ORT_SEQUENTIAL"
    assert OnnxPolicy(path, threads=2)._sess.get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize("obs, needle", [
    (np.zeros(4), r"observation must have shape \[3\] or \[N, 3\], got \(4,\)"),
    (np.zeros((2, 2)), r"got \(2, 2\)"),
    (np.zeros((1, 2, 3)), r"got \(1, 2, 3\)"),
    (np.array([0.0, np.nan, 0.0]), "observation contains NaN or Inf"),
    (np.array([[0.0, 0.0, -np.inf]]), "observation contains NaN or Inf"),
])
def test_the_actor_refuses_observations_of_the_wrong_shape_or_not_finite(tmp_path, obs, needle):
    policy = OnnxPolicy(_actor(tmp_path / "actor.onnx"))
    with pytest.raises(ValueError, match=needle):
        policy(obs)


def test_files_that_are_not_usable_actors_are_refused_naming_the_problem(tmp_path):
    p = str(tmp_path / "missing.onnx")
    with pytest.raises(CardError, match=f"^'{p}': no such file$"):
        load_card(p)
    with pytest.raises(CardError, match=r"is a directory, not an exported actor \(robotrl export RUN_DIR"):
        load_card(tmp_path)  # a run directory given where its actor.onnx is meant
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a model")
    with pytest.raises(CardError, match=r"junk\.onnx' is not a loadable ONNX model \(.*(?i:parsing failed)"):
        load_card(tmp_path / "junk.onnx")  # onnxruntime's own reason, not just its exception's type
    cases = [
        ({"other": "{}"}, "'{p}' has no robotrl policy card (metadata key 'robotrl_card'); export it with 'robotrl "
                          "export RUN_DIR'"),
        ({CARD_KEY: "{not json"}, "'{p}': the policy card is not valid JSON (Expecting property name enclosed in "
                                  "double quotes: line 1 column 2 (char 1))"),
        ({CARD_KEY: "[1, 2]"}, "'{p}': the policy card is not a JSON object"),
        ({CARD_KEY: json.dumps(_card(_set(["algo"], "")))}, '{p}: policy card field algo must be a non-empty string, '
                                                            'got ""'),
    ]
    for i, (meta, message) in enumerate(cases):
        path = _actor(tmp_path / f"bad{i}.onnx", meta=meta)
        with pytest.raises(CardError) as e:
            load_card(path)
        assert str(e.value) == message.format(p=path)
        with pytest.raises(CardError):
            OnnxPolicy(path)


@pytest.mark.parametrize("kwargs, needle", [
    ({"inputs": 2}, "expected one input and one output, got 2 and 1"),
    ({"in_dim": 4}, "the card names 3 observation elements but the graph's input has 4"),
    ({"out_dim": 3}, "the card names 2 action elements but the graph's output has 3"),
])
def test_a_card_that_does_not_match_its_graph_is_refused(tmp_path, kwargs, needle):
    path = _actor(tmp_path / "actor.onnx", **kwargs)
    with pytest.raises(CardError) as e:
        load_card(path)
    assert str(e.value) == f"'{path}': {needle}"


def test_damaged_metadata_bytes_are_a_card_error(tmp_path):
    path = _actor(tmp_path / "actor.onnx", meta={CARD_KEY: json.dumps(CARD), "note": "\u00e9\u00e9"})
    data = path.read_bytes()
    assert data.count("\u00e9\u00e9".encode()) == 1
    path.write_bytes(data.replace("\u00e9\u00e9".encode(), b"\xff\xfe\xff\xfe"))  # not UTF-8
    with pytest.raises(CardError, match="the model's metadata is damaged"):
        load_card(path)


def test_pretrained_names_resolve_to_the_shipped_files():
    names = pretrained_names()
    assert names == sorted(p.stem for p in pretrained_dir().glob("*.onnx"))
    assert {"arm-reach", "hopper", "quadruped"} <= set(names)
    p = resolve("pretrained:hopper")
    assert p == pretrained_dir() / "hopper.onnx" and p.is_file()
    assert resolve("runs/x/actor.onnx") == Path("runs/x/actor.onnx")  # a plain path is left as it is
    with pytest.raises(CardError) as e:
        resolve("pretrained:no:such")
    assert str(e.value) == f"no pretrained actor 'no:such'; shipped: {', '.join(names)}"
    card = load_card("pretrained:hopper")
    assert card["task_id"] == "robotrl/Hopper-v5"


AXES = {"base_pos": "xyz", "base_angle": "xyz", "base_quat": "wxyz", "base_lin_vel": "xyz", "base_ang_vel": "xyz",
        "projected_gravity": "xyz", "body_pos": "xyz", "object_pos": "xyz", "goal": "xyz",
        "velocity_command": ("x", "y", "yaw")}


@pytest.mark.parametrize("kind", sorted(AXES))
def test_every_axis_kind_takes_its_axes_and_only_them(kind):
    # The robot side maps each such element to one component of a message (odometry, IMU, /cmd_vel, a point):
    # an axis the kind does not have would read nothing, so the card is refused at configure, not at run time.
    def element(axis):
        e = {"kind": kind, "name": "root", "axis": axis}
        return e | ({"range": [-1.0, 1.0]} if kind == "velocity_command" else {})

    for axis in AXES[kind]:
        validate_card(_card(_set(["spec", "observation", 1], element(axis))))
    for axis in ("q", "", "X"):
        with pytest.raises(CardError, match=rf"spec\.observation\[1\]\.axis \({kind}\) must be one of "):
            validate_card(_card(_set(["spec", "observation", 1], element(axis))))
    if kind in ("base_lin_vel", "base_ang_vel"):
        for frame in ("world", "base"):
            validate_card(_card(_set(["spec", "observation", 1], element("x") | {"frame": frame})))
        with pytest.raises(CardError, match=rf"frame \({kind}\) must be world or base"):
            validate_card(_card(_set(["spec", "observation", 1], element("x") | {"frame": "body"})))


@pytest.mark.parametrize("change, needle", [
    (_set(["spec", "observation", 2], {"kind": "velocity_command", "name": "cmd", "axis": "x", "range": ["a", 1.0]}),
     "range must be [low, high] with low <= high"),
    (_set(["spec", "observation", 2], {"kind": "velocity_command", "name": "cmd", "axis": "x", "range": [None, 1.0]}),
     "range must be [low, high] with low <= high"),
    (_set(["spec", "joint_ranges"], {"a": ["a", 1.0]}), "joint_ranges.a must be [low, high] (finite numbers)"),
    (_set(["spec", "joint_ranges"], {"a": [float("nan"), 1.0]}), "joint_ranges.a must be [low, high] (finite numbers)"),
])
def test_a_range_whose_low_is_not_a_number_is_a_card_error_not_a_crash(change, needle):
    with pytest.raises(CardError) as e:
        validate_card(_card(change))
    assert needle in str(e.value)
