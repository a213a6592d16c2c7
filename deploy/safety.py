"""The safety filter between the policy and the robot: the last word on every command.

Per control step, in this order:
  1. a fault (stale or missing input, NaN/Inf, inference error or overrun, e-stop) -> the safe action:
     ``hold`` (position joints keep the position measured when the fault began; effort joints 0)
     or ``zero`` (every command 0);
  2. clamp to the card's action bounds, and to joint limits where given;
  3. soft start: for `ramp_s` seconds after activation, blend from the start command (the measured
     pose for position joints, 0 effort) to the policy's command;
  4. rate limit: no joint's command moves more than `max_rate` (units/s) x dt from the last command.
A clamp is recorded in `last_clamped`, so telemetry can tell that it really clamped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MODES = ("inactive", "ramp", "run", "fault")


@dataclass
class SafetyConfig:
    ramp_s: float = 1.0
    """Soft-start duration after activation (0: none)."""
    max_rate: float | None = None
    """Largest command change per second for every joint, in command units (None: no rate limit)."""
    safe_action: str = "hold"
    """On a fault: 'hold' (position joints hold the measured pose, effort joints 0) or 'zero'."""

    def __post_init__(self) -> None:
        if self.safe_action not in ("hold", "zero"):
            raise ValueError(f"safe_action must be 'hold' or 'zero', got {self.safe_action!r}")
        if self.ramp_s < 0:
            raise ValueError(f"ramp_s must be >= 0, got {self.ramp_s}")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError(f"max_rate must be positive, got {self.max_rate}")


class SafetyFilter:
    def __init__(self, action_spec: Sequence[dict], config: SafetyConfig,
                 joint_limits: dict[str, tuple[float, float]] | None = None):
        self.cfg = config
        self.joints = [a["joint"] for a in action_spec]
        self.kinds = np.array([a["kind"] for a in action_spec])
        self.position = self.kinds == "position"
        low = np.array([float(a["low"]) for a in action_spec])
        high = np.array([float(a["high"]) for a in action_spec])
        for name in joint_limits or {}:
            if name not in self.joints:
                raise ValueError(f"joint_limits names {name!r}, which the policy does not command "
                                 f"(it commands {', '.join(self.joints)})")
        for i, j in enumerate(self.joints):
            if joint_limits and j in joint_limits and self.position[i]:
                lo, hi = joint_limits[j]
                low[i], high[i] = max(low[i], lo), min(high[i], hi)
                if not low[i] < high[i]:
                    raise ValueError(f"joint_limits of {j!r} [{lo}, {hi}] leave no room inside the card's bounds "
                                     f"[{action_spec[i]['low']}, {action_spec[i]['high']}]")
        self.low, self.high = low, high
        self.mode = "inactive"
        self.fault_reason = ""
        self._t0 = 0.0
        self._start = np.zeros(len(self.joints))
        self._hold = np.zeros(len(self.joints))
        self._last: np.ndarray | None = None
        self.last_clamped = np.zeros(len(self.joints), dtype=bool)

    def activate(self, t: float, measured: np.ndarray | None) -> None:
        """Begin the soft start from the measured joint positions (of the action joints)."""
        start = np.zeros(len(self.joints))
        if measured is not None:
            start[self.position] = np.clip(np.asarray(measured, dtype=np.float64)[self.position],
                                           self.low[self.position], self.high[self.position])
        self._start = start
        self._last = start.copy()
        self._t0 = t
        self.mode = "ramp" if self.cfg.ramp_s > 0 else "run"
        self.fault_reason = ""

    def safe_action(self, measured: np.ndarray | None) -> np.ndarray:
        out = np.zeros(len(self.joints))
        if self.cfg.safe_action == "hold":
            out[self.position] = self._hold[self.position]
        return out

    def fault(self, reason: str, measured: np.ndarray | None) -> np.ndarray:
        """Enter (or stay in) the safe action; `measured`: positions of the action joints, if known."""
        if self.mode != "fault":
            hold = self._last.copy() if self._last is not None else np.zeros(len(self.joints))
            if measured is not None:
                m = np.asarray(measured, dtype=np.float64)
                ok = np.isfinite(m)
                hold[ok] = m[ok]
            self._hold = np.clip(hold, self.low, self.high)
        self.mode, self.fault_reason = "fault", reason
        out = self.safe_action(measured)
        self._last = out.copy()
        return out

    def deactivate(self, measured: np.ndarray | None) -> np.ndarray:
        out = self.fault("deactivated", measured)
        self.mode = "inactive"
        return out

    def filter(self, command: np.ndarray, t: float, dt: float) -> np.ndarray:
        """The command to send for a healthy step (call `fault` instead when something is wrong)."""
        if self.mode in ("inactive", "fault"):
            raise RuntimeError(f"safety filter is {self.mode}: activate() first")
        cmd = np.asarray(command, dtype=np.float64)
        clipped = np.clip(cmd, self.low, self.high)
        self.last_clamped = clipped != cmd
        out = clipped
        if self.mode == "ramp":
            alpha = min(1.0, (t - self._t0) / self.cfg.ramp_s)
            out = (1.0 - alpha) * self._start + alpha * clipped
            if alpha >= 1.0:
                self.mode = "run"
        if self.cfg.max_rate is not None and self._last is not None:
            step = self.cfg.max_rate * dt
            out = np.clip(out, self._last - step, self._last + step)
        self._last = out.copy()
        return out
