# ruff: noqa: E501  (the keys are the mutated source lines, kept whole so that they can be searched for)
"""Surviving mutants of bench/mutation.py that are left alive on purpose, each with the reason.

Keyed by module, then by the mutant's key (``bench/out/mutation/MODULE.json``: the source line's text, the
operator and the change), so an entry outlives edits elsewhere in the file. An equivalent mutant changes
nothing observable; every survivor on the robot side (runtime, observation, safety) must be explained here.
"""

EQUIVALENT = "equivalent: "

EXPLAINED: dict[str, dict[str, str]] = {
    "functional": {
        "last = np.zeros(values.shape[1:], dtype=np.float64) | number: 1 -> 2":
            EQUIVALENT + "GAE's running sum starts as zeros of shape values.shape[2:] = () for [T, N] values; "
            "a scalar 0 broadcasts to [N] at the first step, so every advantage is the same.",
        "strict=True)]) | bool: True -> False":
            EQUIVALENT + "torch.autograd.grad returns exactly one gradient per parameter, so the zip's lengths are "
            "always equal; strict only guards against a future change.",
        "break | break: break -> continue":
            EQUIVALENT + "once the residual is below tol, `continue` skips the rest of every remaining iteration, "
            "which is what `break` does, only slower.",
        "return len(os.sched_getaffinity(0)) | number: 0 -> 1":
            "environment: the affinity of pid 1 instead of this process; identical here (one container, one mask), "
            "different only where a process was pinned to fewer cores than init.",
        "return os.cpu_count() or 1 | boolop: os.cpu_count() or 1 -> os.cpu_count() and 1":
            "not covered: the fallback for systems without sched_getaffinity (not Linux); the tests run on Linux.",
        "return os.cpu_count() or 1 | number: 1 -> 2":
            "not covered: the fallback for systems without sched_getaffinity (not Linux); the tests run on Linux.",
    },
    "buffers": {
        "self.has_transitions = False | assign: False -> None":
            EQUIVALENT + "the flag is only tested for truth; None is as false as False.",
        "self.starts[self.pos[envs], envs] = False  # overwrites whatever transition started here"
        " | assign: False -> None":
            EQUIVALENT + "assigning None into a numpy bool array stores False.",
        "while ks.size < batch_size: | compare: ks.size < batch_size -> ks.size <= batch_size":
            "harmless: when rejection sampling has exactly batch_size candidates it draws one more round and keeps the "
            "first batch_size; the minibatch is the same, the random stream after it differs (still uniform).",
    },
    "runtime": {
        "if spec is None or not spec.submodule_search_locations: | boolop: spec is None or not "
        "spec.submodule_search_locations -> spec is None and (not spec.submodule_search_locations)":
            "robot-side install only: robotrl.policies is missing only in an install without the training side; "
            "tests/test_hardening.py checks that install in a separate venv and process, which the mutants "
            "(served in this process) do not reach.",
        "raise CardError(\"robotrl.policies is not installed; pretrained actors ship with it\") | raise_del: "
        "raise CardError('robotrl.policies is not installed; pretrained acto... -> pass":
            "not covered here: as above, the robot-side-only install is tested in its own venv and process.",
        "def _session(path: str | Path, threads: int = 1): | number: 1 -> 2":
            EQUIVALENT + "onnxruntime's intra-op threads change the latency (bench/node_latency.py), not the "
            "actions: one thread is the default for the node's cache's sake.",
        "in_dim, out_dim = inputs[0].shape[-1], outputs[0].shape[-1] | neg: -1 -> 1":
            EQUIVALENT + "the graph's input is [batch, obs_dim] (export writes it so, and a card naming a rank-3 "
            "graph is refused further down by the dimension check): shape[-1] is shape[1].",
        "in_dim, out_dim = inputs[0].shape[-1], outputs[0].shape[-1] | neg: -1 -> 1 #2":
            EQUIVALENT + "the output is [batch, act_dim]: shape[-1] is shape[1].",
        "if not isinstance(e.get(key, \"\"), str): | string: '' -> 'XXXX'":
            EQUIVALENT + "the default of a missing key is a string either way; only its type is checked.",
        "if kind in _AXES and e.get(\"axis\", \"\") not in _AXES[kind]: | string: '' -> 'XXXX'":
            EQUIVALENT + "a missing axis is refused either way: neither '' nor 'XXXX' is an axis of any kind.",
        "if not _number(e.get(\"offset\", 0.0)): | number: 0.0 -> 1.0":
            EQUIVALENT + "a missing offset defaults to a number either way; only its type is checked here.",
        "if not isinstance(norm.get(\"enabled\", False), bool): | bool: False -> True":
            EQUIVALENT + "a missing 'enabled' defaults to a bool either way; only its type is checked here.",
        "self._out = [self._sess.get_outputs()[0].name] | assign: [self._sess.get_outputs()[0].name] -> None":
            EQUIVALENT + "run(None) returns every output, and an actor graph has exactly one (the card check "
            "refuses others), so output 0 is the same array.",
    },
    "observation": {
        "return np.isfinite(values) & (np.abs(values) <= F32_MAX) | compare: np.abs(values) <= F32_MAX -> "
        "np.abs(values) < F32_MAX":
            "boundary of no consequence: only a reading of exactly +-3.4028235e38 differs, accepted (it is a "
            "float32) or refused; the range and speed checks refuse it as a joint reading either way.",
        "if not abs(n - 1.0) <= 0.2:  # a unit quaternion, give or take a driver's rounding; NaN fails too | "
        "compare: abs(n - 1.0) <= 0.2 -> abs(n - 1.0) < 0.2":
            "boundary of no consequence: a quaternion of norm exactly 0.8 or 1.2; the tests check 0.8/1.2 accepted "
            "by value, and 1.2 * q is not exactly 1.2 in floating point.",
        "self.cmd = {\"x\": 0.0, \"y\": 0.0, \"yaw\": 0.0} | assign: {'x': 0.0, 'y': 0.0, 'yaw': 0.0} -> None":
            EQUIVALENT + "never read before the first command: current_command() returns zeros while cmd_stamp is "
            "-inf.",
        **{f"self.cmd = {{\"x\": 0.0, \"y\": 0.0, \"yaw\": 0.0}} | {m}":
           EQUIVALENT + "the initial command is never read: current_command() returns zeros until one arrives."
           for m in ("string: 'x' -> 'XXxXX'", "string: 'y' -> 'XXyXX'", "string: 'yaw' -> 'XXyawXX'",
                     "number: 0.0 -> 1.0", "number: 0.0 -> 1.0 #2", "number: 0.0 -> 1.0 #3")},
        "self.cmd_stamp = -np.inf | neg: -np.inf -> np.inf":
            EQUIVALENT + "with no command yet, an age check of now - inf is stale and gives zeros, and without an "
            "age limit the initial command (zeros) is returned: zeros either way.",
        "seen = np.isfinite(last) & np.isfinite(last_t) | binop: np.isfinite(last) & np.isfinite(last_t) -> "
        "np.isfinite(last) | np.isfinite(last_t)":
            EQUIVALENT + "a joint's position and its stamp are stored together, so both are finite or neither is.",
        "dt = np.maximum(self.period, np.where(seen, stamp - last_t, 0.0)) | number: 0.0 -> 1.0":
            EQUIVALENT + "dt of a joint never seen is masked out by `seen &` on the next line.",
        "for k in np.flatnonzero(seen & (jump > vmax * dt + 1e-9)): | compare: jump > vmax * dt + 1e-09 -> "
        "jump >= vmax * dt + 1e-09":
            "boundary of no consequence: a jump equal to the limit plus 1e-9 to the last bit.",
        "v = np.asarray(values, dtype=np.float64).reshape(-1) | number: 1 -> 2":
            EQUIVALENT + "numpy takes reshape(-2) as reshape(-1) (any negative size is the inferred one).",
        "self.cmd = {a: float(np.clip(x, *lo_hi.get(a, (-np.inf, np.inf)))) for a, x in zip((\"x\", \"y\", "
        "\"yaw\"), v, | neg: -np.inf -> np.inf":
            EQUIVALENT + "the default range is used only for an axis the card does not observe (a card's "
            "velocity_command always has a range), whose value is never read.",
        "strict=True)} | bool: True -> False":
            EQUIVALENT + "three axes zipped with three checked values: the lengths are always equal.",
        "if self.cmd_stamp == -np.inf or (max_age is not None and now - self.cmd_stamp > max_age): | neg: "
        "-np.inf -> np.inf":
            EQUIVALENT + "without a command the age test (now - -inf > max_age) gives zeros, and without an age "
            "limit the initial command is zeros too.",
        "out = [f\"joint {j}\" for j, t in zip(self.joints, self.q_stamp, strict=True) if now - t > max_age] | "
        "bool: True -> False":
            EQUIVALENT + "q_stamp is allocated with one entry per joint: the lengths are always equal.",
        "k, name, axis, frame = e[\"kind\"], e[\"name\"], e.get(\"axis\", \"\"), e.get(\"frame\", \"\") | "
        "string: '' -> 'XXXX'":
            EQUIVALENT + "every kind that reads an axis has one (validate_card); the default is never used.",
    },
    "safety": {
        "self._t0 = 0.0 | assign: 0.0 -> None":
            EQUIVALENT + "set by activate() before filter() can read it (filter refuses an inactive filter).",
        "self._t0 = 0.0 | number: 0.0 -> 1.0":
            EQUIVALENT + "set by activate() before filter() can read it.",
        "self._start = np.zeros(len(self.joints)) | assign: np.zeros(len(self.joints)) -> None":
            EQUIVALENT + "set by activate() before the ramp reads it.",
        "self._hold = np.zeros(len(self.joints)) | assign: np.zeros(len(self.joints)) -> None":
            EQUIVALENT + "set by fault() before safe_action() reads it; nothing else calls safe_action().",
    },
    "export": {
        "return t.detach().cpu().numpy() if hasattr(t, \"detach\") else np.asarray(t) | cond: hasattr(t, 'detach') -> not hasattr(t, 'detach')":
            "equivalent: np.asarray of a CPU tensor is tensor.detach().cpu().numpy(); records hold CPU tensors.",
        "return t.detach().cpu().numpy() if hasattr(t, \"detach\") else np.asarray(t) | string: 'detach' -> 'XXdetachXX'":
            "equivalent: np.asarray of a CPU tensor is tensor.detach().cpu().numpy(); records hold CPU tensors.",
        "nodes.append(helper.make_node(\"Sub\", [x, const(\"obs_mean\", mean)], [\"obs_centered\"])) | string: 'obs_mean' -> 'XXobs_meanXX'":
            "equivalent: the name of a constant inside the graph; any unique name computes the same.",
        "nodes.append(helper.make_node(\"Mul\", [\"obs_centered\", const(\"obs_inv_std\", inv_std)], [\"obs_scaled\"])) | string: 'obs_inv_std' -> 'XXobs_inv_stdXX'":
            "equivalent: the name of a constant inside the graph; any unique name computes the same.",
        "nodes.append(helper.make_node(\"Clip\", [x, const(\"obs_clip_lo\", np.array(-c)), | string: 'obs_clip_lo' -> 'XXobs_clip_loXX'":
            "equivalent: the name of a constant inside the graph; any unique name computes the same.",
        "const(\"obs_clip_hi\", np.array(c))], [\"obs_normalized\"])) | string: 'obs_clip_hi' -> 'XXobs_clip_hiXX'":
            "equivalent: the name of a constant inside the graph; any unique name computes the same.",
        "layer_norms = {k.split(\".\")[0] for k in net if k.endswith(\".weight\") and net[k].ndim == 1} | boolop: k.endswith('.weight') and net[k].ndim == 1 -> k.endswith('.weight') or net[k].ndim == 1":
            "equivalent: with `or`, linear layers' indices join the set too, but a LayerNorm is looked up at the index after a linear layer (its activation), never a linear one.",
        "break | break: break -> continue":
            "equivalent: `continue` on the last layer also ends the loop.",
        "nodes.append(helper.make_node(\"Clip\", [x, const(\"one_neg\", np.array(-1.0)), const(\"one\", np.array(1.0))], | string: 'one_neg' -> 'XXone_negXX'":
            "equivalent: the name of a constant inside the graph; any unique name computes the same.",
        "nodes.append(helper.make_node(\"Clip\", [x, const(\"one_neg\", np.array(-1.0)), const(\"one\", np.array(1.0))], | string: 'one' -> 'XXoneXX'":
            "equivalent: the name of a constant inside the graph; any unique name computes the same.",
        "nodes, \"robotrl_actor\", | string: 'robotrl_actor' -> 'XXrobotrl_actorXX'":
            "equivalent: the graph's own name, shown by viewers only.",
        "onnx.checker.check_model(model, full_check=True) | call_del: onnx.checker.check_model(model, full_check=True) -> pass":
            "a guard: onnx's checker on a graph our builder made; parity and the robot-side read-back would catch a graph that does not run.",
        "onnx.checker.check_model(model, full_check=True) | bool: True -> False":
            "a guard: onnx's checker on a graph our builder made; parity and the robot-side read-back would catch a graph that does not run.",
        "\"samples\": float(record.get(\"obs_count\", 0.0)), | number: 0.0 -> 1.0":
            "equivalent for every run: a record with a normaliser always carries obs_count; the default is for hand-made records.",
        "env.close() | call_del: env.close() -> pass":
            "resource only: the env used to record observations is not closed (garbage collected instead).",
        "rows = np.concatenate([sess.run(None, {\"obs\": observations[i:i + 1]})[0] for i in range(min(64, len(ref)))]) | name: min -> max":
            "equivalent: more rows checked one by one (65, or all) finds the same maximum; the batch covers every row.",
        "rows = np.concatenate([sess.run(None, {\"obs\": observations[i:i + 1]})[0] for i in range(min(64, len(ref)))]) | number: 64 -> 65":
            "equivalent: more rows checked one by one (65, or all) finds the same maximum; the batch covers every row.",
        "robot = max(np.abs(batch - ref).max(), np.abs(rows - ref[:len(rows)]).max()) | name: np.abs(rows - ref[:len(rows)]).max -> np.abs(rows - ref[:len(rows)]).min":
            "equivalent: the row-by-row maximum is within the batch maximum for a graph without batch coupling, which no actor has.",
        "normalised = max((np.abs(batch - ref) / scale).max(), (np.abs(rows - ref[:len(rows)]) / scale).max()) | name: (np.abs(rows - ref[:len(rows)]) / scale).max -> (np.abs(rows - ref[:len(rows)]) / scale).min":
            "equivalent: the row-by-row maximum is within the batch maximum for a graph without batch coupling, which no actor has.",
        "def export_run(run_dir: str, out: str | None = None, *, samples: int = 512) -> dict[str, Any]: | number: 512 -> 513":
            "equivalent: 513 instead of 512 parity samples.",
        "validate_card(card, f\"the card made from {rd.path}\") | call_del: validate_card(card, f'the card made from {rd.path}') -> pass":
            "redundant by design: the written file is read back with load_card, which runs the same validate_card.",
        "check_training_fields(card, f\"the card made from {rd.path}\") | call_del: check_training_fields(card, f'the card made from {rd.path}') -> pass":
            "redundant for cards export makes: the training fields come from config.json, already checked by RunDir.",
        "raise UserError(f\"export refused: {e}\") from None | raise_del: raise UserError(f'export refused: {e}') from None -> pass":
            "not covered: only reached if the two checks above refuse a card made from a valid run directory.",
        "seed = int(conf.get(\"run\", {}).get(\"seed\", 0)) | assign: int(conf.get('run', {}).get('seed', 0)) -> None":
            "equivalent for a correct graph: another seed draws other parity samples; the wrong-graph test refuses whichever are drawn.",
        "seed = int(conf.get(\"run\", {}).get(\"seed\", 0)) | string: 'run' -> 'XXrunXX'":
            "equivalent for a correct graph: another seed draws other parity samples; the wrong-graph test refuses whichever are drawn.",
        "seed = int(conf.get(\"run\", {}).get(\"seed\", 0)) | string: 'seed' -> 'XXseedXX'":
            "equivalent for a correct graph: another seed draws other parity samples; the wrong-graph test refuses whichever are drawn.",
        "seed = int(conf.get(\"run\", {}).get(\"seed\", 0)) | number: 0 -> 1":
            "equivalent for a correct graph: another seed draws other parity samples; the wrong-graph test refuses whichever are drawn.",
        "spread = seen.std(0) + 1e-3 | binop: seen.std(0) + 0.001 -> seen.std(0) - 0.001":
            "equivalent for a correct graph: the spread of the random parity probes (the wrong-graph test refuses with any spread).",
        "spread = seen.std(0) + 1e-3 | number: 0.001 -> 1.001":
            "equivalent for a correct graph: the spread of the random parity probes (the wrong-graph test refuses with any spread).",
        "wild = (seen.mean(0) + spread * rng.standard_normal((samples, seen.shape[1])) * 3).astype(np.float32) | binop: seen.mean(0) + spread * rng.standard_normal((samples, seen.shape[1]... -> seen.mean(0) - spread * rng.standard_normal((samples, seen.shape[1]...":
            "equivalent for a correct graph: the spread of the random parity probes (the wrong-graph test refuses with any spread).",
        "wild = (seen.mean(0) + spread * rng.standard_normal((samples, seen.shape[1])) * 3).astype(np.float32) | binop: spread * rng.standard_normal((samples, seen.shape[1])) * 3 -> spread * rng.standard_normal((samples, seen.shape[1])) / 3":
            "equivalent for a correct graph: the spread of the random parity probes (the wrong-graph test refuses with any spread).",
        "wild = (seen.mean(0) + spread * rng.standard_normal((samples, seen.shape[1])) * 3).astype(np.float32) | binop: spread * rng.standard_normal((samples, seen.shape[1])) -> spread / rng.standard_normal((samples, seen.shape[1]))":
            "equivalent for a correct graph: the spread of the random parity probes (the wrong-graph test refuses with any spread).",
        "wild = (seen.mean(0) + spread * rng.standard_normal((samples, seen.shape[1])) * 3).astype(np.float32) | number: 3 -> 4":
            "equivalent for a correct graph: the spread of the random parity probes (the wrong-graph test refuses with any spread).",
        "if not diff <= PARITY_TOL: | compare: diff <= PARITY_TOL -> diff < PARITY_TOL":
            "boundary of no consequence: a difference of exactly 1e-5.",
        "raise UserError(f\"export refused, {path} left as it was: the written file does not load on the robot \" | raise_del: raise UserError(f'export refused, {path} left as it was: the writte... -> pass":
            "not covered: the read-back refusal of a file that does not load; only a broken writer or disk reaches it.",
        "raise UserError(f\"export refused, {path} left as it was: the card read back differs from the one written\") | raise_del: raise UserError(f'export refused, {path} left as it was: the card r... -> pass":
            "not covered: the read-back refusal of a card that changed in writing; only a broken writer reaches it.",
    },
}
