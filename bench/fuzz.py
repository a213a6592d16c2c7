"""The fuzz suite with more, fresh random cases than CI runs; a table of cases and times.

tests/test_fuzz.py, and the study files' property of tests/sweep/test_hardening_sweep.py (issue 31).

    python bench/fuzz.py                 # 1000 random cases per property
    python bench/fuzz.py --cases 5000 -k damaged

CI runs the same properties derandomised (fixed cases, about a minute); here every run draws new ones
(``ROBOTRL_FUZZ_CASES`` switches tests/test_fuzz.py to random cases, N per property; the robot-config and MJCF
properties take half of N, about 80 ms a case, each under a 60 s alarm; the real-process one 2 %). A failure prints
Hypothesis's minimal failing case and the ``@reproduce_failure`` line to replay it. The table goes to
stdout and, as JSON, to bench/out/fuzz.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY_PROPERTY = "test_random_study_files_are_a_study_or_one_line"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000, help="random cases per property (default 1000)")
    ap.add_argument("-k", default=None, help="only the properties whose name matches (pytest -k)")
    args = ap.parse_args()
    env = {**os.environ, "ROBOTRL_FUZZ_CASES": str(args.cases)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_fuzz.py"),
           f"{ROOT / 'tests' / 'test_hardening_sweep.py'}::{STUDY_PROPERTY}",  # study files (issue 31)
           "--hypothesis-show-statistics", "--durations=0", "--durations-min=0"]
    if args.k:
        cmd += ["-k", args.k]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    text = p.stdout + p.stderr
    rows: dict[str, dict[str, float]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^tests/test_(?:fuzz|hardening_sweep)\.py::(\w+):$", line.strip())
        if m:
            current = m.group(1)
            rows.setdefault(current, {"passing": 0, "failing": 0, "invalid": 0, "seconds": 0.0})
            continue
        m = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", line)
        if m and current:
            for key, value in zip(("passing", "failing", "invalid"), m.groups(), strict=True):
                rows[current][key] += int(value)
        m = re.match(r"^\s*([\d.]+)s call\s+tests/test_(?:fuzz|hardening_sweep)\.py::(\w+)", line)
        if m and m.group(2) in rows:
            rows[m.group(2)]["seconds"] = float(m.group(1))
    print(f"{'property':40s} {'cases':>7s} {'failing':>8s} {'seconds':>8s} {'ms/case':>8s}")
    for name, r in rows.items():
        n = r["passing"] + r["failing"]
        print(f"{name:40s} {n:7.0f} {r['failing']:8.0f} {r['seconds']:8.1f} {1000 * r['seconds'] / max(n, 1):8.1f}")
    total = sum(r["passing"] + r["failing"] for r in rows.values())
    print(f"{'total':40s} {total:7.0f} {'':8s} {wall:8.1f}   (wall clock, pytest start-up included)")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps({"cases_per_property": args.cases, "wall_s": wall, "rows": rows,
                                               "exit_status": p.returncode}, indent=2))
    if p.returncode != 0:
        print(text[-20000:], file=sys.stderr)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
