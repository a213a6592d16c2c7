"""Shared fixtures. Tests run real MuJoCo envs and real training; nothing is mocked."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def robotrl_cmd() -> list[str]:
    """Command prefix that runs the CLI in a fresh interpreter (for kill/resume tests)."""
    return [sys.executable, "-m", "robotrl"]
