"""The robot side imports on a robot computer: numpy, onnxruntime and rclpy only (DESIGN.md, `robotrl.deploy`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import robotrl.deploy

BLOCKED = ("torch", "gymnasium", "mujoco", "tensorboard", "matplotlib", "robotrl.envs", "robotrl.simrobot",
           "robotrl.algorithms", "robotrl.run.train")


def test_every_module_of_deploy_imports_with_the_training_side_blocked():
    """Each module of robotrl.deploy is imported in a fresh interpreter in which importing torch, gymnasium, mujoco
    (or the training and simulation parts of robotrl) raises: none of them may need one."""
    modules = sorted(p.stem for p in Path(robotrl.deploy.__file__).parent.glob("*.py") if p.stem != "__init__")
    assert {"node", "observation", "runtime", "safety"} <= set(modules)
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, sys
        BLOCKED = {BLOCKED!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"blocked on a robot computer: {{name}}")
                return None
        sys.meta_path.insert(0, Block())
        for m in {modules!r}:
            if m == "__main__":
                continue  # `python -m robotrl.deploy` runs the CLI
            importlib.import_module("robotrl.deploy." + m)
        loaded = sorted(n for n in sys.modules if any(n == b or n.startswith(b + ".") for b in BLOCKED))
        assert not loaded, loaded
        print("ok", len({modules!r}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]
    assert "simrobot" not in " ".join(modules)  # the simulated robot lives in robotrl.simrobot now
