"""Hardening (issue 31, item 3): an actor meets a robot only as the robot it was trained on, and a card says only
what a robot can do.

Found from outside: `eval --onnx ACTOR legged:OTHER.toml` and `sim2sim ACTOR legged:OTHER.toml` ran an actor on a
config with other gains, decimation (sim2sim said "OK ... +0.0 %" at 25 ms for a card of 20 ms), trunk mass, command
ranges or reward weights, while the same edit at the card's own path was refused; and `card`/`deploy` accepted a
card whose action bounds exceeded its joint ranges (1e9 against [-0.8, 0.8]) or whose /cmd_vel ranges were +-100 m/s.

The actor here is real: the shipped quadruped's graph with a card written for a copy of its robot config (the spec
a run of this robotrl records: physics digest, settings, gains), so the comparison sees every field training
records. Each case runs the CLI for real: in this process for the matrix, in a subprocess where the exit code and
stderr of the command itself are the point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robotrl.cli import main

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "envs" / "assets"


def _cli(argv: list, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "43")}
    return subprocess.run([sys.executable, "-m", "robotrl", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("robotrl: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def _robot(folder: Path, toml_edit=None, xml_edit=None) -> Path:
    """A copy of robotrl's quadruped (config + model) in `folder`, optionally edited; its config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    toml, xml = (ASSETS / "quadruped.toml").read_text(), (ASSETS / "quadruped.xml").read_text()
    (folder / "quadruped.xml").write_text(xml_edit(xml) if xml_edit else xml)
    (folder / "quadruped.toml").write_text(toml_edit(toml) if toml_edit else toml)
    return (folder / "quadruped.toml").resolve()


def _write_card(path: Path, change) -> Path:
    """The shipped quadruped actor with its card changed by `change(card)`, saved at `path`."""
    import onnx

    from robotrl.deploy.runtime import resolve

    model = onnx.load(str(resolve("pretrained:quadruped")))
    card = json.loads({p.key: p.value for p in model.metadata_props}["robotrl_card"])
    change(card)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"robotrl_card": json.dumps(card)})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def actor(tmp_path_factory) -> tuple[Path, Path]:
    """(actor.onnx, its robot config): a card as `robotrl export` writes it today, for a copy of the quadruped."""
    from robotrl.envs import task_spec

    root = tmp_path_factory.mktemp("card")
    config = _robot(root / "trained")
    spec = task_spec(f"legged:{config}").to_dict()

    def fresh(card):
        card["spec"], card["task_id"], card["control_period"] = spec, spec["task_id"], spec["control_period"]

    return _write_card(root / "actor.onnx", fresh), config


EDITS = {  # what the outside tester changed in a copy of the robot config -> the difference the refusal names
    "gains": (lambda t: t.replace("kp = 40.0", "kp = 60.0"), None, "extras.robot.kp[0]: 40.0 then, 60.0 now"),
    "decimation": (lambda t: t.replace("decimation = 4 ", "decimation = 5 "), None,
                   "control_period: 0.02 then, 0.025 now"),
    "trunk mass": (None, lambda x: x.replace('mass="6.0"', 'mass="7.0"'), "body 'trunk': its mass differs"),
    "command range": (lambda t: t + "\n[legged]\ncommand_x = [-0.6, 2.0]\n", None,
                      "observation[6].range[1]: 1.0 then, 2.0 now"),
    "reward weight": (lambda t: t + "\n[legged.rewards]\ntrack_lin = 2.0\n", None,
                      "extras.robot.settings.rewards.track_lin: 1.0 then, 2.0 now"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_robot_at_another_path_is_refused_as_in_place(actor, tmp_path, capsys, edit):
    onnx_path, trained = actor
    toml_edit, xml_edit, needle = EDITS[edit]
    other = _robot(tmp_path / "other", toml_edit, xml_edit)
    for argv in (["eval", "--onnx", onnx_path, f"legged:{other}", "--episodes", "1"],
                 ["sim2sim", onnx_path, f"legged:{other}", "--episodes", "1"]):
        code = main([str(a) for a in argv])
        _one_line_error(code, capsys.readouterr().err, needle, "differs from it", "pass --other-robot")
    # the same edit in place: the same difference, the same way out
    original = trained.read_text(), (trained.parent / "quadruped.xml").read_text()
    try:
        _robot(trained.parent, toml_edit, xml_edit)
        code = main(["eval", "--onnx", str(onnx_path), "--episodes", "1"])
        _one_line_error(code, capsys.readouterr().err, needle, "has changed since", "pass --other-robot")
    finally:
        trained.write_text(original[0])
        (trained.parent / "quadruped.xml").write_text(original[1])


def test_a_moved_config_runs_silently_and_another_robot_only_when_asked(actor, tmp_path):
    onnx_path, _ = actor
    # moved, its model in a folder of its own, a comment, 40 for 40.0 and a default written out: the same robot
    moved = _robot(tmp_path / "moved", lambda t: "# moved\n" + t.replace(
        'model = "quadruped.xml"', 'model = "mjcf/quadruped.xml"').replace("kp = 40.0", "kp = 40")
        + "\n[legged]\ncommand_x = [-0.6, 1.0]\n")
    (moved.parent / "mjcf").mkdir()
    shutil.move(moved.parent / "quadruped.xml", moved.parent / "mjcf" / "quadruped.xml")
    done = _cli(["eval", "--onnx", onnx_path, f"legged:{moved}", "--episodes", "1", "--json"])
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout)["episodes"] == 1
    stiff = _robot(tmp_path / "stiff", lambda t: t.replace("kp = 40.0", "kp = 60.0"))
    for argv in (["eval", "--onnx", onnx_path, f"legged:{stiff}", "--episodes", "1", "--other-robot", "--json"],
                 ["sim2sim", onnx_path, f"legged:{stiff}", "--episodes", "1", "--other-robot", "--json"]):
        done = _cli(argv)
        assert done.returncode in (0, 1), done.stderr  # it ran (sim2sim: 1 where the node did worse)
        notes = [line for line in done.stderr.splitlines() if line.startswith("robotrl: note:")]
        assert len(notes) == 1 and "not the robot it was trained on" in notes[0], done.stderr
        assert "extras.robot.kp[0]: 40.0 then, 60.0 now" in notes[0], done.stderr
        assert "robotrl: error" not in done.stderr and json.loads(done.stdout.splitlines()[-1])


def test_sim2sim_refuses_another_control_period_before_ros_starts(actor, tmp_path):
    """The reproducer: 25 ms for a card of 20 ms printed "OK ... +0.0 %"."""
    onnx_path, _ = actor
    slow = _robot(tmp_path / "slow", lambda t: t.replace("decimation = 4 ", "decimation = 5 "))
    done = _cli(["sim2sim", onnx_path, f"legged:{slow}", "--episodes", "1"])
    _one_line_error(done.returncode, done.stderr, "control_period: 0.02 then, 0.025 now", "--other-robot")
    assert "OK" not in done.stdout and "[INFO]" not in done.stderr


def test_commands_without_a_task_refuse_an_edited_robot_and_the_flag_needs_an_actor(actor, capsys):
    onnx_path, trained = actor
    original = trained.read_text()
    try:
        trained.write_text(original.replace("kp = 40.0", "kp = 60.0"))
        for argv in (["sim-robot", onnx_path, "--episodes", "1"], ["video", onnx_path, "-o", "x.gif"]):
            code = main([str(a) for a in argv])
            _one_line_error(code, capsys.readouterr().err, "extras.robot.kp[0]: 40.0 then, 60.0 now",
                            "has changed since")
    finally:
        trained.write_text(original)
    _one_line_error(main(["eval", "some-run", "--other-robot"]), capsys.readouterr().err,
                    "--other-robot is for an exported actor on a task")


# -- the card itself ----------------------------------------------------------------------------------------------

def _action(card, joint="FL_hip_joint"):
    return next(a for a in card["spec"]["action"] if a["joint"] == joint)


def _element(card, kind, key):
    return next(e for e in card["spec"]["observation"] if e["kind"] == kind and key in (e.get("axis"), e["name"]))


def _set(card, path, value):
    node = card
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


BAD_CARDS = {  # a hand edit -> what the one line names
    "action bounds beyond the joint range": (
        lambda c: _action(c).update(low=-1e9, high=1e9),
        "action bounds of 'FL_hip_joint' (spec.action[0]) are [-1e+09, 1e+09], outside the joint's range [-0.8, 0.8]"),
    "absurd /cmd_vel range": (
        lambda c: _element(c, "velocity_command", "x").update(range=[-100, 100]),
        "range of velocity_command.x (spec.observation[6].range) is [-100, 100], beyond the template's bound +-20"),
    "control period of a GHz": (
        lambda c: (_set(c, ["control_period"], 1e-9), _set(c, ["spec", "control_period"], 1e-9)),
        "policy card field control_period must be a number of seconds in [0.0001, 10] (at most 10000 Hz), got 1e-09"),
    "two control periods": (
        lambda c: _set(c, ["control_period"], 0.025),
        "control_period 0.025 s and spec.control_period 0.02 s disagree"),
    "negative gain": (
        lambda c: _set(c, ["spec", "extras", "robot", "kp", 0], -40.0),
        "PD stiffness of 'FL_hip_joint' (spec.extras.robot.kp) must be a finite number >= 0, got -40.0"),
    "zero torque limit": (
        lambda c: _set(c, ["spec", "extras", "robot", "effort_limit", 2], 0),
        "torque limit of 'FL_calf_joint' (spec.extras.robot.effort_limit) must be positive"),
    "default pose outside the range": (
        lambda c: _set(c, ["spec", "extras", "robot", "default_pose", "FL_hip_joint"], 2.0),
        "default position of 'FL_hip_joint' (spec.extras.robot.default_pose) is 2, outside the joint's range"),
    "observed default outside the range": (
        lambda c: _element(c, "joint_pos_rel", "FL_calf_joint").update(offset=-3.0),
        "default position of 'FL_calf_joint' (spec.observation[11].offset) is -3, outside the joint's range "
        "[-2.7, -0.85]"),
    "a rate its physics does not give": (
        lambda c: (_set(c, ["spec", "extras", "robot", "decimation"], 5), _set(c, ["spec", "frame_skip"], 5)),
        "control_period 0.02 s is not its physics step x decimation (0.005 s x 5 = 0.025 s)"),
    "two decimations": (
        lambda c: _set(c, ["spec", "extras", "robot", "decimation"], 5),
        "spec.frame_skip 4 and spec.extras.robot.decimation 5 disagree"),
}


@pytest.fixture(scope="module")
def bad_cards(actor, tmp_path_factory) -> dict[str, Path]:
    onnx_path, _ = actor
    import onnx

    root = tmp_path_factory.mktemp("bad-cards")
    card = json.loads({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}["robotrl_card"])
    out = {}
    for i, (name, (change, _)) in enumerate(BAD_CARDS.items()):
        def edit(c, change=change):
            c.clear()
            c.update(json.loads(json.dumps(card)))
            change(c)
        out[name] = _write_card(root / f"{i}.onnx", edit)
    return out


@pytest.mark.parametrize("case", BAD_CARDS)
def test_a_card_that_no_robot_can_follow_is_refused_where_the_robot_side_reads_it(bad_cards, capsys, case):
    from robotrl.deploy.runtime import CardError, load_card

    path, needle = bad_cards[case], BAD_CARDS[case][1]
    with pytest.raises(CardError, match="policy card") as e:
        load_card(path)
    assert needle in str(e.value), str(e.value)
    for argv in (["card", path], ["deploy", path], ["eval", "--onnx", path, "--episodes", "1"]):
        _one_line_error(main([str(a) for a in argv]), capsys.readouterr().err, needle)


def test_card_and_deploy_refuse_the_reproducer_as_processes(bad_cards):
    needle = BAD_CARDS["action bounds beyond the joint range"][1]
    for argv in (["card", bad_cards["action bounds beyond the joint range"]],
                 ["deploy", bad_cards["absurd /cmd_vel range"]]):
        done = _cli(argv)
        _one_line_error(done.returncode, done.stderr, needle if argv[0] == "card" else "beyond the template's bound")


def test_the_shipped_and_freshly_written_cards_pass(actor):
    from robotrl.deploy.runtime import load_card

    for path in ("pretrained:quadruped", "pretrained:hopper", "pretrained:arm-reach", actor[0]):
        assert load_card(path)["spec"]["action"]
