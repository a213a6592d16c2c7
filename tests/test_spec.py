"""The task spec (the policy card's source): element validation at its boundaries, labels, action scaling by
hand, the JSON round trip, and each refusal of a damaged spec.json naming what is wrong."""

from __future__ import annotations

import json
import math

import pytest

from robotrl.spec import ACT_KINDS, OBS_KINDS, SPEC_FORMAT, ActElement, ObsElement, TaskSpec


def test_observation_elements_check_their_kind_and_range():
    with pytest.raises(ValueError, match="^unknown observation kind 'torque'; known: " + ", ".join(OBS_KINDS) + "$"):
        ObsElement("torque", "a")
    e = ObsElement("velocity_command", "cmd", axis="x", range=(-1, 2))
    assert e.range == (-1.0, 2.0) and all(type(v) is float for v in e.range)
    assert ObsElement("velocity_command", "cmd", axis="y", range=(0.5, 0.5)).range == (0.5, 0.5)  # low == high
    for bad in ((1.0, 0.0), (-math.inf, 1.0), (0.0, math.nan)):
        with pytest.raises(ValueError, match=r"^velocity_command\(cmd\)\.x: range must be finite with low <= high"):
            ObsElement("velocity_command", "cmd", axis="x", range=bad)
    assert ObsElement("joint_pos", "a").range is None and ObsElement("joint_pos", "a").offset == 0.0


def test_labels():
    assert ObsElement("joint_pos", "knee").label() == "joint_pos(knee)"
    assert ObsElement("base_lin_vel", "rootx", axis="x", frame="world").label() == "base_lin_vel(rootx).x[world]"
    assert ObsElement("body_pos", "tip", frame="palm").label() == "body_pos(tip)[palm]"


def test_action_elements_check_kind_and_bounds_and_scale_by_hand():
    assert ACT_KINDS == ("effort", "position", "velocity", "generic")
    a = ActElement("knee", "effort", -2.0, 6.0)
    assert (a.scale, a.offset) == (4.0, 2.0)  # command = 2 + 4 a: -1 -> -2, 1 -> 6
    with pytest.raises(ValueError, match=r"^unknown action kind 'torque'; known: effort, position, velocity, generic$"):
        ActElement("knee", "torque", -1.0, 1.0)
    for low, high in ((1.0, 1.0), (2.0, 1.0), (-math.inf, 1.0), (0.0, math.nan)):
        with pytest.raises(ValueError, match=r"^action bounds of 'knee' must be finite with low < high, got "):
            ActElement("knee", "position", low, high)


def _spec(**kw) -> TaskSpec:
    return TaskSpec(
        task_id="robotrl/Test-v0",
        observation=(ObsElement("joint_pos", "a", unit="rad"), ObsElement("goal", "target", axis="x", clip=5.0),
                     ObsElement("velocity_command", "cmd", axis="yaw", range=(-1.0, 1.0))),
        action=(ActElement("a", "position", -1.0, 0.5, "rad"), ActElement("b", "effort", -3.0, 3.0, "N m")),
        **kw)


def test_dimensions_and_bounds():
    s = _spec()
    assert (s.obs_dim, s.act_dim) == (3, 2)
    assert s.action_low == [-1.0, -3.0] and s.action_high == [0.5, 3.0]
    assert s.control_period is None and s.frame_skip is None and s.max_episode_steps is None
    assert s.deployable is False and s.extras == {} and s.joint_ranges == {}


def test_json_round_trip_keeps_every_field():
    s = _spec(control_period=0.02, frame_skip=4, max_episode_steps=500, deployable=True,
              extras={"sim2real": {"action_delay": 1}}, joint_ranges={"a": (-1.5, 1.5)})
    d = s.to_dict()
    assert d["format"] == SPEC_FORMAT == "robotrl-spec/1"
    assert d["observation"][1] == {"kind": "goal", "name": "target", "unit": "", "axis": "x", "frame": "",
                                   "clip": 5.0, "offset": 0.0, "range": None}
    assert d["action"][1] == {"joint": "b", "kind": "effort", "low": -3.0, "high": 3.0, "unit": "N m"}
    text = s.to_json()
    assert "\n  " in text and "\n" not in s.to_json(indent=None)
    back = TaskSpec.from_json(text)
    assert back == s
    assert back.joint_ranges == {"a": (-1.5, 1.5)} and back.observation[2].range == (-1.0, 1.0)
    assert TaskSpec.from_dict({k: v for k, v in d.items() if k != "format"}) == s  # no format: the current one


def test_defaults_of_a_minimal_spec():
    s = TaskSpec.from_dict({"task_id": 7, "observation": [{"kind": "obs", "name": "obs_0"}],
                            "action": [{"joint": "a0", "kind": "generic", "low": -1, "high": 1}], "extras": None,
                            "joint_ranges": None, "deployable": 1})
    assert s.task_id == "7" and s.deployable is True and s.extras == {} and s.joint_ranges == {}
    assert s.control_period is None and s.frame_skip is None and s.max_episode_steps is None


@pytest.mark.parametrize("change, message", [
    (lambda d: ["not", "an", "object"], "task spec must be a JSON object"),
    (lambda d: d | {"format": "robotrl-spec/2"}, "task spec format 'robotrl-spec/2' is not supported (expected "
                                                 "'robotrl-spec/1')"),
    (lambda d: {k: v for k, v in d.items() if k != "task_id"}, "task spec has no 'task_id'"),
    (lambda d: {k: v for k, v in d.items() if k != "observation"}, "task spec has no 'observation'"),
    (lambda d: {k: v for k, v in d.items() if k != "action"}, "task spec has no 'action'"),
    (lambda d: d | {"observation": [{"kind": "joint_pos"}]}, "malformed task spec element: "),
    (lambda d: d | {"action": [{"joint": "a", "kind": "effort", "low": 0, "high": 1, "gear": 2}]},
     "malformed task spec element: "),
    (lambda d: d | {"joint_ranges": [[0, 1]]}, "task spec 'joint_ranges' must be an object {joint: [low, high]}"),
    (lambda d: d | {"joint_ranges": {"a": [0]}}, "task spec joint_ranges['a'] must be [low, high], finite, low < high; "
                                                 "got [0]"),
    (lambda d: d | {"joint_ranges": {"a": "01"}}, "task spec joint_ranges['a'] must be [low, high], finite, "
                                                  "low < high; got '01'"),
    (lambda d: d | {"joint_ranges": {"a": [0, "1"]}}, "task spec joint_ranges['a'] must be [low, high], finite, "
                                                      "low < high; got [0, '1']"),
    (lambda d: d | {"joint_ranges": {"a": [0, math.inf]}}, "task spec joint_ranges['a'] must be [low, high], "
                                                           "finite, low < high; got [0, inf]"),
    (lambda d: d | {"joint_ranges": {"a": [1, 1]}}, "task spec joint_ranges['a'] must be [low, high], finite, "
                                                    "low < high; got [1, 1]"),
])
def test_a_damaged_spec_is_refused_naming_the_problem(change, message):
    d = json.loads(_spec().to_json())
    with pytest.raises(ValueError) as e:
        TaskSpec.from_dict(change(d))
    assert str(e.value).startswith(message)
    if not message.endswith(": "):
        assert str(e.value) == message


def test_joint_ranges_accept_a_tuple_and_integers():
    d = json.loads(_spec().to_json())
    s = TaskSpec.from_dict(d | {"joint_ranges": {"a": (-2, 3), "b": [0.5, 0.75]}})
    assert s.joint_ranges == {"a": (-2.0, 3.0), "b": (0.5, 0.75)} and type(s.joint_ranges["a"][0]) is float


def test_the_spec_is_immutable_and_its_dict_has_exactly_the_documented_fields():
    # A spec is shared by the env, the algorithm, the card and the node: none may change it under the others.
    import dataclasses

    s = _spec()
    for obj, field in ((s, "task_id"), (s.observation[0], "name"), (s.action[0], "low")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0)
    d = s.to_dict()
    assert set(d) == {"format", "task_id", "observation", "action", "control_period", "frame_skip",
                      "max_episode_steps", "deployable", "extras", "joint_ranges"}
    assert type(d["observation"]) is list and type(d["action"]) is list  # JSON arrays, not tuples
    assert s.to_json() == json.dumps(d, indent=2)  # spec.json as written into run directories
    assert ObsElement("joint_pos", "a").unit == "" and ActElement("a", "generic", -1, 1).unit == ""
    d.pop("deployable")
    assert TaskSpec.from_dict(d).deployable is False  # a spec that does not say so is not deployable


def test_a_spec_whose_extras_is_not_an_object_is_refused_by_both_readers():
    """Found by the card fuzz: a card with ``"extras": -1`` was a TypeError traceback in `eval --onnx`."""
    from robotrl.deploy.runtime import CardError, load_card, resolve, validate_card
    from robotrl.spec import TaskSpec

    d = {"task_id": "t", "observation": [{"kind": "joint_pos", "name": "a"}],
         "action": [{"joint": "a", "kind": "position", "low": -1.0, "high": 1.0}], "extras": -1}
    with pytest.raises(ValueError, match="task spec 'extras' must be an object, got -1"):
        TaskSpec.from_dict(d)
    card = load_card(resolve("pretrained:hopper"))
    card["spec"]["extras"] = -1
    with pytest.raises(CardError, match=r"spec\.extras"):
        validate_card(card)
