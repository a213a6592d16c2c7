"""ONNX export: parity with the torch actor for PPO, TRPO, DDPG, TD3 and SAC, only the actor in the graph, the
card round-trips, bad files are refused with a clear message, and the exported file evaluates to the
checkpoint's return with onnxruntime alone."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from robotrl.cli import main
from robotrl.deploy.runtime import CardError, OnnxPolicy, load_card
from robotrl.policies.export import PARITY_TOL, actor_parameter_count
from robotrl.run.train import train

TASK = "robotrl/ArmReach-v0"
RUNS = {
    "ppo": {"num_envs": "4", "rollout_steps": "64", "minibatch_size": "64", "update_epochs": "2"},
    "trpo": {"num_envs": "4", "rollout_steps": "64", "critic_minibatch_size": "64", "critic_epochs": "2"},
    "ddpg": {"learning_starts": "100", "hidden_sizes": "32,32", "batch_size": "32", "iteration_steps": "250"},
    "td3": {"learning_starts": "100", "hidden_sizes": "32,32", "batch_size": "32", "iteration_steps": "250"},
    "sac": {"learning_starts": "100", "hidden_sizes": "32,32", "batch_size": "32", "iteration_steps": "250"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    out = {}
    for algo, flags in RUNS.items():
        extra = {"normalize_obs": "true"} if algo in ("ddpg", "sac") else {}
        out[algo] = train(algo, TASK, algo_flags={**flags, **extra},
                          run_flags={"total_steps": "512", "seed": "1", "workers": "0", "eval_episodes": "3"},
                          out=root / algo, progress=False)
    return out


@pytest.mark.parametrize("algo", sorted(RUNS))
def test_export_parity_and_actor_only(runs, algo, capsys):
    run = runs[algo]
    assert main(["export", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parity_max_abs_diff"] <= PARITY_TOL
    path = run / "actor.onnx"
    model = onnx.load(str(path))
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    record = state["policy"]
    obs_dim, act_dim = record["obs_dim"], record["act_dim"]
    graph_numbers = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    # actor + (mean, inv_std) of the normaliser + (scale, offset) of the bounds + 6 scalar clip limits at most
    assert actor_parameter_count(record) + 2 * act_dim <= graph_numbers
    assert graph_numbers <= actor_parameter_count(record) + 2 * obs_dim + 2 * act_dim + 6
    critic_numbers = sum(int(np.prod(v.shape)) for v in state["algorithm"]["critic"].values())
    assert graph_numbers < actor_parameter_count(record) + critic_numbers // 2
    names = {t.name for t in model.graph.initializer}
    assert not any("log_std" in n or "critic" in n or "q." in n for n in names)

    # independent parity check here: onnxruntime vs the torch actor rebuilt from the checkpoint
    from robotrl.policies import from_record

    policy = OnnxPolicy(path)
    rng = np.random.default_rng(0)
    obs = rng.normal(0.0, 2.0, size=(256, obs_dim)).astype(np.float32)
    with torch.inference_mode():
        ref = from_record(record)(torch.from_numpy(obs)).numpy()
    scale = (record["action_high"] - record["action_low"]).numpy() / 2  # parity is held in normalised units
    np.testing.assert_allclose(policy(obs) / scale, ref / scale, atol=PARITY_TOL, rtol=0)
    np.testing.assert_allclose(policy(obs[0]) / scale, ref[0] / scale, atol=PARITY_TOL, rtol=0)
    # commands are in robot units inside the card's bounds
    acts = policy(rng.normal(0.0, 100.0, size=(256, obs_dim)))
    low = np.array([a["low"] for a in policy.card["spec"]["action"]])
    high = np.array([a["high"] for a in policy.card["spec"]["action"]])
    assert np.all(acts >= low - 1e-6) and np.all(acts <= high + 1e-6)


def test_card_round_trips_and_names_what_the_robot_needs(runs, capsys):
    run = runs["ddpg"]
    main(["export", str(run), "-o", str(run / "a.onnx")])
    capsys.readouterr()
    card = load_card(run / "a.onnx")
    spec = json.loads((run / "spec.json").read_text())
    ev = json.loads((run / "eval.json").read_text())
    assert card["spec"] == spec
    assert card["task_id"] == TASK and card["algo"] == "ddpg"
    assert card["training"]["steps"] >= 512 and card["training"]["seed"] == 1
    assert card["evaluation"]["mean_return"] == ev["mean_return"]
    assert card["normalizer"]["enabled"] is True and card["normalizer"]["samples"] > 0
    assert card["control_period"] == pytest.approx(0.02)
    assert card["robotrl_version"]
    assert "sim2real" in card
    assert main(["card", str(run / "a.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == card



def test_card_prints_what_the_robot_needs_in_words(runs, tmp_path, capsys):
    """The human-readable card: evaluation with the episode count in words, the sim2real settings that were on
    (not a Python dict), the elements."""
    run = runs["ddpg"]
    main(["export", str(run), "-o", str(run / "words.onnx")])
    capsys.readouterr()
    model = onnx.load(str(run / "words.onnx"))
    card = json.loads({p.key: p.value for p in model.metadata_props}["robotrl_card"])
    card["sim2real"] = {"randomize_mass": 0.2, "obs_noise": 0.0, "action_delay": 2}
    card["evaluation"]["episodes"] = 1
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"robotrl_card": json.dumps(card)})
    onnx.save(model, str(tmp_path / "s2r.onnx"))
    assert main(["card", str(tmp_path / "s2r.onnx")]) == 0
    out = capsys.readouterr().out
    assert "sim2real    randomize_mass 0.2, action_delay 2\n" in out
    assert " over 1 episode" in out and "1 episodes" not in out
    assert main(["card", str(run / "words.onnx")]) == 0
    out = capsys.readouterr().out
    assert "sim2real    none\n" in out and " over 3 episodes" in out

def test_onnx_evaluation_matches_the_checkpoint(runs, capsys):
    run = runs["ppo"]
    main(["export", str(run)])
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3", "--json"]) == 0
    from_ckpt = json.loads(capsys.readouterr().out)
    assert main(["eval", "--onnx", str(run / "actor.onnx"), "--episodes", "3", "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert from_onnx["mean_return"] == pytest.approx(from_ckpt["mean_return"], rel=1e-4)
    assert from_onnx["mean_return"] == pytest.approx(json.loads((run / "eval.json").read_text())["mean_return"],
                                                     rel=1e-4)


def _foreign_onnx(path, in_dim=3, out_dim=2):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((out_dim, in_dim), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(out_dim, np.float32), "b")
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_dim])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])], initializer=[w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return m


def test_bad_files_are_refused_with_a_clear_message(runs, tmp_path, capsys):
    good = runs["trpo"] / "actor.onnx"
    main(["export", str(runs["trpo"])])
    capsys.readouterr()
    corrupt = tmp_path / "corrupt.onnx"
    data = bytearray(good.read_bytes())
    corrupt.write_bytes(bytes(data[: len(data) // 3]))
    foreign = tmp_path / "foreign.onnx"
    onnx.save(_foreign_onnx(foreign), str(foreign))
    mismatched = tmp_path / "mismatched.onnx"
    m = _foreign_onnx(mismatched)
    card = load_card(good)
    onnx.helper.set_model_props(m, {"robotrl_card": json.dumps(card)})  # card says 18 -> 6, graph is 3 -> 2
    onnx.save(m, str(mismatched))
    bad_json = tmp_path / "badjson.onnx"
    m = _foreign_onnx(bad_json)
    onnx.helper.set_model_props(m, {"robotrl_card": "{not json"})
    onnx.save(m, str(bad_json))
    cases = {
        tmp_path / "missing.onnx": "no such file",
        corrupt: "not a loadable ONNX model",
        foreign: "has no robotrl policy card",
        mismatched: "observation elements but the graph's input has 3",
        bad_json: "not valid JSON",
    }
    for path, needle in cases.items():
        with pytest.raises(CardError, match=needle):
            load_card(path)
        for argv in (["card", str(path)], ["eval", "--onnx", str(path), "--episodes", "1"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.startswith("robotrl: error: ") and needle in err and err.count("\n") == 1, err


def test_export_refuses_a_graph_that_computes_something_else(runs, tmp_path, monkeypatch, capsys):
    """The real parity check against a really wrong graph: the graph is built from weights with one output
    bias off by 0.01 (a plausible export bug: a stale or mis-transposed tensor); the check must refuse it."""
    import robotrl.policies.export as ex

    real_build = ex.build_model

    def off_by_a_bit(record, card):
        bad = {**record, "net": dict(record["net"])}
        last = [k for k in bad["net"] if k.endswith("bias")][-1]
        bad["net"][last] = bad["net"][last] + 0.01
        return real_build(bad, card)

    monkeypatch.setattr(ex, "build_model", off_by_a_bit)
    out = tmp_path / "never.onnx"
    assert main(["export", str(runs["ppo"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "export refused" in err and err.count("\n") == 1, err
    assert not out.exists()
    monkeypatch.setattr(ex, "build_model", real_build)  # and the right graph passes the same check
    assert main(["export", str(runs["ppo"]), "-o", str(out)]) == 0 and out.exists()


def test_robot_side_imports_no_training_stack():
    code = ("import sys, robotrl.deploy, robotrl.deploy.runtime, robotrl.deploy.observation, robotrl.deploy.safety; "
            "bad = [m for m in ('torch', 'gymnasium', 'mujoco', 'robotrl.envs', 'robotrl.policies') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runtime_refuses_bad_observations(runs, capsys):
    main(["export", str(runs["ppo"])])
    capsys.readouterr()
    policy = OnnxPolicy(runs["ppo"] / "actor.onnx")
    with pytest.raises(ValueError, match="NaN or Inf"):
        policy(np.full(policy.obs_dim, np.nan))
    with pytest.raises(ValueError, match=r"shape \[18\]"):
        policy(np.zeros(5))


def test_shipped_pretrained_actors_load_and_say_how_they_were_made():
    from robotrl.deploy.runtime import pretrained_names

    names = pretrained_names()
    assert names, "no pretrained actors shipped"
    for name in names:
        card = load_card(f"pretrained:{name}")
        assert card["training"]["command"].startswith("robotrl train ")
        assert card["evaluation"]["mean_return"] is not None
    with pytest.raises(CardError, match="no pretrained actor 'nope'"):
        load_card("pretrained:nope")


@pytest.mark.parametrize("name", ["arm-reach", "hopper", "quadruped"])
def test_shipped_actors_earn_the_returns_their_cards_state(name):
    """Each shipped actor, run with onnxruntime on the episodes its card's evaluation used, scores what the card
    says (the card's figure came from the torch actor; a closed loop may amplify 1e-7 differences a little)."""
    from robotrl.deploy.runtime import OnnxPolicy
    from robotrl.run.evaluate import evaluate

    policy = OnnxPolicy(f"pretrained:{name}")
    stated = policy.card["evaluation"]
    ev = evaluate(policy, policy.card["task_id"], int(stated["episodes"]), int(stated["seed"]))
    tol = max(0.05 * abs(stated["mean_return"]), 0.5 * stated["std_return"])
    assert abs(ev["mean_return"] - stated["mean_return"]) <= tol, (ev["mean_return"], stated)
    if "success_rate" in stated:
        assert ev["success_rate"] >= stated["success_rate"] - 0.1, (ev["success_rate"], stated)
