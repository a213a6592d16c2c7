"""Typed configs: docs, parsing, files, precedence."""

from __future__ import annotations

import dataclasses
import json

import pytest

from robotrl.algorithms import registry as algos
from robotrl.algorithms.ppo import PPOConfig
from robotrl.algorithms.trpo import TRPOConfig
from robotrl.config import coerce, field_docs, from_dict, load_file, to_dict
from robotrl.errors import UserError
from robotrl.run.settings import RunConfig
from robotrl.run.train import resolve_config


@pytest.mark.parametrize("cls", [PPOConfig, TRPOConfig, RunConfig])
def test_every_field_has_a_docstring(cls):
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_coerce_types():
    from typing import Literal

    assert coerce(int, "1e6", name="x") == 1_000_000
    assert coerce(int, "2_048", name="x") == 2048
    assert coerce(float, "3e-4", name="x") == 3e-4
    assert coerce(bool, "false", name="x") is False
    assert coerce(tuple[int, ...], "256, 256", name="x") == (256, 256)
    assert coerce(tuple[int, ...], [64, 64], name="x") == (64, 64)
    assert coerce(float | None, "none", name="x") is None
    assert coerce(float | None, "0.02", name="x") == 0.02
    assert coerce(Literal["clip", "kl_penalty"], "kl_penalty", name="x") == "kl_penalty"
    with pytest.raises(UserError, match="--learning-rate: expected float, got 'abc'"):
        coerce(float, "abc", name="--learning-rate")
    with pytest.raises(UserError, match="expected one of clip, kl_penalty"):
        coerce(Literal["clip", "kl_penalty"], "huber", name="--objective")
    with pytest.raises(UserError):
        coerce(int, True, name="x")


def test_unknown_key_suggests_the_nearest_field():
    with pytest.raises(UserError, match="did you mean 'learning_rate'"):
        from_dict(PPOConfig, {"learning_rat": 1e-3})


def test_invalid_combination_is_a_user_error():
    with pytest.raises(UserError, match="must divide the batch size"):
        from_dict(PPOConfig, {"num_envs": 4, "rollout_steps": 10, "minibatch_size": 64})


def test_config_round_trips_through_json():
    cfg = from_dict(PPOConfig, {"hidden_sizes": "32,32", "target_kl": 0.02})
    again = from_dict(PPOConfig, json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg


def test_precedence_defaults_task_file_flags(tmp_path, monkeypatch):
    monkeypatch.setitem(algos.TASK_DEFAULTS["ppo"], "InvertedPendulum",
                        {"steps": 12_345, "config": {"learning_rate": 1e-3, "ent_coef": 0.01}})
    path = tmp_path / "c.toml"
    path.write_text('ent_coef = 0.02\nupdate_epochs = 4\n[run]\nseed = 7\n')
    run, cfg = resolve_config("ppo", "InvertedPendulum-v5", config_file=path,
                              algo_flags={"update_epochs": "3"}, run_flags={"total_steps": "1000"})
    assert cfg.learning_rate == 1e-3  # per-task default
    assert cfg.ent_coef == 0.02  # file beats per-task
    assert cfg.update_epochs == 3  # flag beats file
    assert run.seed == 7 and run.total_steps == 1000
    run2, _ = resolve_config("ppo", "InvertedPendulum-v5")
    assert run2.total_steps == 12_345


def test_a_runs_config_json_is_a_valid_config_file(tmp_path):
    conf = {"algo": "ppo", "task": "Hopper-v5", "robotrl_version": "0",
            "run": to_dict(RunConfig(seed=3)), "ppo": to_dict(PPOConfig(clip_coef=0.1))}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(conf))
    run, cfg = resolve_config("ppo", "Hopper-v5", config_file=path)
    assert run.seed == 3 and cfg.clip_coef == 0.1
    with pytest.raises(UserError, match=r"holds settings of ppo \(\[ppo\]\), not of sac: give a \[sac\] table"):
        resolve_config("sac", "Hopper-v5", config_file=path)


def test_bad_config_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("learning_rate = = 3")
    with pytest.raises(UserError, match="malformed"):
        load_file(bad)
    yml = tmp_path / "c.yaml"
    yml.write_text("a: 1")
    with pytest.raises(UserError, match=r"toml or \.json"):
        load_file(yml)


def test_non_finite_numbers_and_non_tables_are_refused():
    from robotrl.config import check_range

    for text in ("nan", "inf", "-Infinity", "1e400"):
        with pytest.raises(UserError, match="expected a finite number"):
            coerce(float, text, name="--learning-rate")
    with pytest.raises(UserError, match="expected a finite number"):
        coerce(float, float("nan"), name="x")
    with pytest.raises(UserError, match="expected float"):
        coerce(float, 10**400, name="x")  # no float is that large
    with pytest.raises(UserError, match="expected int"):
        coerce(int, "inf", name="x")
    with pytest.raises(UserError, match="expected a table of settings for PPOConfig, got list"):
        from_dict(PPOConfig, [1, 2])

    @dataclasses.dataclass
    class C:
        x: float = 1.0

    check_range(C(), "x", gt=0, le=1)
    with pytest.raises(ValueError, match=r"x must be > 0 and <= 0.5, got 1.0"):
        check_range(C(), "x", gt=0, le=0.5)


@pytest.mark.parametrize("fields, needle", [
    ({"minibatch_size": 1}, "minibatch_size must be >= 2"),
    ({"obs_clip": 0}, "obs_clip must be > 0"),
    ({"hidden_sizes": (64,) * 65}, "hidden_sizes must be 1 to 64 widths"),
    ({"num_envs": 5000}, "num_envs must be <= 4096"),
    ({"max_grad_norm": 0}, "max_grad_norm must be > 0"),
    ({"target_kl": -0.1}, "target_kl must be > 0"),
])
def test_ppo_ranges(fields, needle):
    with pytest.raises(UserError, match=needle):
        from_dict(PPOConfig, fields)


def test_ddpg_and_trpo_ranges():
    from robotrl.algorithms.ddpg import DDPGConfig

    with pytest.raises(UserError, match="ou_theta \\* ou_dt must be < 2"):
        from_dict(DDPGConfig, {"ou_theta": 100.0, "ou_dt": 0.05})
    with pytest.raises(UserError, match="param_noise_alpha must be > 1"):
        from_dict(DDPGConfig, {"param_noise_alpha": 1.0})
    with pytest.raises(UserError, match="critic_minibatch_size must be >= 1"):
        from_dict(TRPOConfig, {"critic_minibatch_size": 0})
    with pytest.raises(UserError, match="cg_iters must be >= 1"):
        from_dict(TRPOConfig, {"cg_iters": 0})


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_a_default_derived_from_another_field_follows_a_later_layer(tmp_path, algo):
    """layer_norm defaults to on with parameter noise: set by a flag or a file over the per-task defaults, the noise
    must still switch it on (a merge that copied the earlier layer's resolved value kept it off)."""
    _, cfg = resolve_config(algo, "Hopper-v5", algo_flags={"noise": "param"})
    assert cfg.layer_norm is True
    path = tmp_path / "c.toml"
    path.write_text('noise = "param"\n')
    assert resolve_config(algo, "Hopper-v5", config_file=path)[1].layer_norm is True
    _, cfg = resolve_config(algo, "Hopper-v5", config_file=path, algo_flags={"layer_norm": False})
    assert cfg.layer_norm is False  # an explicit value stays
    _, cfg = resolve_config(algo, "Hopper-v5", config_file=path, algo_flags={"noise": "ou"})
    assert cfg.layer_norm is False and cfg.noise == "ou"
    assert resolve_config(algo, "Hopper-v5")[1].layer_norm is False
