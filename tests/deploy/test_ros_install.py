"""The ROS test file must fail, not skip, when the `ros` extra is installed but rclpy cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_a_broken_ros_install_fails_the_ros_tests_instead_of_skipping(tmp_path):
    try:
        version("ros-rclpy")
    except PackageNotFoundError:
        pytest.skip("the ros extra is not installed here: its tests rightly skip")
    broken = tmp_path / "rclpy"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('librcl.so: cannot open shared object file')\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co",
                        "tests/deploy/test_ros.py"],
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
                       timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "librcl.so" in out and "skipped" not in out.splitlines()[-1], out[-2000:]
