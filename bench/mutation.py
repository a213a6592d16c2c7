"""Mutation testing (issue 21): how many deliberately planted bugs do the fast tests of the modules the rest
of robotrl rests on catch? A mutant is the module with one small change (``<`` for ``<=``, ``-`` for ``+``,
a constant plus one, a deleted ``raise``, ...); the tests kill it when one of them fails.

    python bench/mutation.py                          # every module; resumes where a killed run stopped
    python bench/mutation.py --modules safety,runtime --fresh
    python bench/mutation.py --list safety            # the mutants, numbered
    python bench/mutation.py --run safety:12          # one mutant, with the tests' output (to study a survivor)

Why a mutator of our own (this file, the standard library's `ast` plus pytest) rather than a library:
mutmut 3 copies the tree into ``mutants/`` and expects the tests to import from there, but with our
package-dir mapping (``robotrl.deploy`` = ``deploy/``, ...) and the editable install every test imports the
original file (mutmut 3.8.1 on deploy/safety.py: "could not find any test case for any mutant");
cosmic-ray writes each mutant into the working tree, which breaks any other test run in the same checkout,
and starts a fresh interpreter (about 1.5 s of imports) per mutant. Here a mutant is compiled from the AST in
memory and served to the import system by a meta-path finder, in a forked child of a process that has
already imported numpy, torch, gymnasium, mujoco, onnxruntime and pytest; no file is ever written.

How a module is measured:

1. Baseline: its fast tests run once, unmutated, in a forked child with a line tracer on the module's file:
   which test executes which lines (lines run while collecting, e.g. at import, count for every test file),
   and how long each test takes. A test that fails unmutated is left out and reported.
2. Mutants: every place where one operator below applies, numbered in the order of the syntax tree.
3. Each mutant, in a forked child (``--jobs``, default 2, at a time): the mutated module replaces the
   original for every import; pytest runs the tests that execute a mutated line (all of the module's tests
   when the line runs while collecting), stopping at the first failure (``-x``), with a per-test timeout
   (pytest-timeout: ten times the module's slowest unmutated test, at least 10 s) and a limit on the whole
   child. A mutant on lines that no test executes is "not covered" and survives without a run. (Lines run by
   a shared fixture are credited to the first test that set it up; a mutant there runs that test only, which
   can only let a mutant survive, never kill one wrongly.)

Outcomes: killed (a test failed or errored, import and collection included), timeout (counted as caught,
as mutmut and Stryker do), survived. Score = (killed + timeout) / mutants.

Operators (mutmut's set, plus statement deletions that matter for validation and safety code):
  binop      ``+ -``, ``* /``, ``// -> /``, ``% -> /``, ``** -> *``, ``& |``, ``^ -> &`` (also in ``+=`` ...)
  compare    ``< -> <=``, ``<= -> <``, ``> -> >=``, ``>= -> >``, ``== !=``, ``is / is not``, ``in / not in``
  boolop     ``and / or``;  not: ``not x -> x``;  neg: ``-x -> x``;  cond: ``if x`` -> ``if not x`` (a test
             that is not already a comparison or boolean expression)
  number     ``n -> n + 1``;  bool: ``True / False``;  string: ``"s" -> "XXsXX"``
  name       ``min / max``, ``minimum / maximum``, ``any / all``
  assign     ``x = e -> x = None``;  call_del: a call statement deleted;  raise_del: a ``raise`` deleted;
  break      ``break / continue``
Not mutated: docstrings, annotations, imports, error text (anything inside a ``raise``, an f-string, or the
arguments of a call to ``...Error``/``...Input``/``...Exception``), lines marked ``# pragma: no mutate`` (on
the first line of a simple statement: all its lines; used for tables of documentation text, e.g. spec.OBS_KINDS'
descriptions).
Limits: a test that runs robotrl in a subprocess sees the unmutated module.

Results: ``bench/out/mutation/MODULE.json`` (every mutant, kept as it finishes and reused while the module
and its tests are unchanged; ``--fresh`` redoes them), ``bench/out/mutation.json`` (the summary) and the
``mutation`` section of BENCHMARKS.md once every module has current results. Survivors judged equivalent or
harmless are explained in ``bench/mutation_survivors.py``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.abc
import importlib.util
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, REPO, machine, save_json, update_section, versions
from mutation_survivors import EXPLAINED

MUTATION_OUT = OUT / "mutation"  # --state NAME: bench/out/NAME/ and bench/out/NAME.json
TESTS_ROOT = REPO  # --tests-root: a copy of the repository's tests (a snapshot to measure while editing them)
SLOW_MARKER = "not slow"
MEMORY_LIMIT = 6 << 30  # bytes of address space per child beyond the parent's: a runaway allocation fails


@dataclass(frozen=True)
class Target:
    module: str  # import name
    path: str  # source file, relative to the repository
    tests: tuple[str, ...]  # its fast tests (files, relative to the repository)


TARGETS = {
    "functional": Target("robotrl.algorithms.functional", "robotrl/algorithms/functional.py",
                         ("tests/algorithms/test_functional.py",)),
    "noise": Target("robotrl.algorithms.noise", "robotrl/algorithms/noise.py", ("tests/algorithms/test_noise.py",)),
    "buffers": Target("robotrl.algorithms.buffers", "robotrl/algorithms/buffers.py",
                      ("tests/algorithms/test_buffers.py",)),
    "spec": Target("robotrl.spec", "robotrl/spec.py", ("tests/test_spec.py", "tests/envs/test_envs.py")),
    "normalizer": Target("robotrl.policies.normalizer", "policies/normalizer.py",
                         ("tests/policies/test_normalizer.py",)),
    "export": Target("robotrl.policies.export", "policies/export.py",
                     ("tests/policies/test_export_graph.py", "tests/policies/test_export.py")),
    "runtime": Target("robotrl.deploy.runtime", "deploy/runtime.py",
                      ("tests/deploy/test_runtime.py", "tests/policies/test_export.py")),
    "observation": Target("robotrl.deploy.observation", "deploy/observation.py",
                          ("tests/deploy/test_observation.py", "tests/deploy/test_deploy_core.py")),
    "safety": Target("robotrl.deploy.safety", "deploy/safety.py",
                     ("tests/deploy/test_safety.py", "tests/deploy/test_deploy_core.py")),
}
ROBOT_SIDE = ("runtime", "observation", "safety")

# Imported once by the parent, so that each forked child starts with them loaded. Nothing of robotrl: the
# child must import robotrl itself, after the mutant's finder is in place.
PRELOAD = ("numpy", "torch", "gymnasium", "mujoco", "tqdm", "onnx", "onnxruntime", "pytest", "pytest_timeout")


# --------------------------------------------------------------------------------------------------
# Mutants


@dataclass
class Site:
    index: int
    op: str
    line: int
    end_line: int
    before: str
    after: str
    key: str = ""  # stable across line shifts: the line's text and the change


_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
          ast.Mod: ast.Div, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitAnd,
          ast.LShift: ast.RShift, ast.RShift: ast.LShift}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
        ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_NAMES = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum", "any": "all", "all": "any"}
_ERROR_SUFFIXES = ("Error", "Input", "Exception")


def _short(node: ast.AST, limit: int = 70) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Mutator(ast.NodeTransformer):
    """Walks a module's tree in a fixed order. With ``target < 0`` it lists the mutation sites; otherwise it
    returns the tree with site number `target` changed (every site before it is counted the same way)."""

    def __init__(self, skip_lines: set[int], target: int = -1):
        self.skip_lines = skip_lines
        self.target = target
        self.n = -1
        self.sites: list[Site] = []
        self.hit: Site | None = None

    def _site(self, node: ast.AST, op: str, new: ast.AST, before: ast.AST | None = None,
              after: ast.AST | None = None) -> bool:
        if getattr(node, "lineno", None) in self.skip_lines:
            return False
        self.n += 1
        site = Site(self.n, op, node.lineno, getattr(node, "end_lineno", node.lineno) or node.lineno,
                    _short(before or node), _short(after or new))
        if self.target < 0:
            self.sites.append(site)
            return False
        if self.n == self.target:
            self.hit = site
            return True
        return False

    # contexts that are not mutated -----------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> ast.AST:
        return node

    visit_ImportFrom = visit_Import

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:  # message text
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        if self._site(node, "raise_del", ast.Pass(), after=ast.Pass()):
            return ast.copy_location(ast.Pass(), node)
        return node  # the exception's construction is message text

    def _visit_list(self, nodes: list[ast.AST]) -> list[ast.AST]:
        out = []
        for n in nodes:
            if n is None:
                out.append(None)
                continue
            r = self.visit(n)
            if r is None:
                continue
            out.extend(r if isinstance(r, list) else [r])
        return out

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:  # annotations are left alone
        node.decorator_list = self._visit_list(node.decorator_list)
        node.args.defaults = self._visit_list(node.args.defaults)
        node.args.kw_defaults = self._visit_list(node.args.kw_defaults)
        node.body = self._visit_list(node.body) or [ast.Pass()]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node.args.defaults = self._visit_list(node.args.defaults)
        node.args.kw_defaults = self._visit_list(node.args.kw_defaults)
        node.body = self.visit(node.body)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node  # a docstring
        if isinstance(node.value, ast.Call) and self._site(node, "call_del", ast.Pass(), after=ast.Pass()):
            return ast.copy_location(ast.Pass(), node)
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name.endswith(_ERROR_SUFFIXES):
            return node  # an exception being built: its arguments are message text
        return self.generic_visit(node)

    # operators -----------------------------------------------------------------------------------------
    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        new_op = _BINOP.get(type(node.op))
        if new_op is not None:
            new = ast.BinOp(left=node.left, op=new_op(), right=node.right)
            if self._site(node, "binop", new):
                return ast.copy_location(new, node)
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        new_op = _BINOP.get(type(node.op))
        if new_op is not None:
            new = ast.AugAssign(target=node.target, op=new_op(), value=node.value)
            if self._site(node, "binop", new):
                return ast.copy_location(new, node)
        return self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        for i, op in enumerate(node.ops):
            new_ops = list(node.ops)
            new_ops[i] = _CMP[type(op)]()
            new = ast.Compare(left=node.left, ops=new_ops, comparators=node.comparators)
            if self._site(node, "compare", new):
                return ast.copy_location(new, node)
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        new = ast.BoolOp(op=ast.Or() if isinstance(node.op, ast.And) else ast.And(), values=node.values)
        if self._site(node, "boolop", new):
            return ast.copy_location(new, node)
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, (ast.Not, ast.USub)) and self._site(
                node, "not" if isinstance(node.op, ast.Not) else "neg", node.operand):
            return node.operand
        return self.generic_visit(node)

    def _cond(self, node: ast.AST) -> None:
        t = node.test
        if isinstance(t, (ast.Compare, ast.BoolOp)) or (isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not)):
            return
        new = ast.UnaryOp(op=ast.Not(), operand=t)
        if self._site(t, "cond", new):
            node.test = ast.copy_location(new, t)

    def visit_If(self, node: ast.If) -> ast.AST:
        self._cond(node)
        return self.generic_visit(node)

    visit_While = visit_IfExp = visit_Assert = visit_If

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        v = node.value
        if isinstance(v, bool):
            new: Any = not v
            op = "bool"
        elif isinstance(v, (int, float)) and not isinstance(v, complex):
            new, op = v + 1, "number"
        elif isinstance(v, str):
            new, op = f"XX{v}XX", "string"
        else:
            return node
        if self._site(node, op, ast.Constant(new)):
            return ast.copy_location(ast.Constant(new), node)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _NAMES and isinstance(node.ctx, ast.Load):
            new = ast.Name(id=_NAMES[node.id], ctx=ast.Load())
            if self._site(node, "name", new):
                return ast.copy_location(new, node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if node.attr in _NAMES and isinstance(node.ctx, ast.Load):
            new = ast.Attribute(value=node.value, attr=_NAMES[node.attr], ctx=ast.Load())
            if self._site(node, "name", new):
                return ast.copy_location(new, node)
        return self.generic_visit(node)

    # statements ----------------------------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return node
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            new = ast.Assign(targets=node.targets, value=ast.Constant(None))
            if self._site(node, "assign", new, before=node.value, after=new.value):
                node.value = ast.copy_location(ast.Constant(None), node.value)
                return node
        return self.generic_visit(node)

    def visit_Break(self, node: ast.Break) -> ast.AST:
        if self._site(node, "break", ast.Continue()):
            return ast.copy_location(ast.Continue(), node)
        return node

    def visit_Continue(self, node: ast.Continue) -> ast.AST:
        if self._site(node, "break", ast.Break()):
            return ast.copy_location(ast.Break(), node)
        return node


def _skip_lines(source: str) -> set[int]:
    """Lines marked ``# pragma: no mutate``; a mark on the first line of a simple statement that spans several
    lines (a table of documentation text, say) covers all of them."""
    marked = {i for i, line in enumerate(source.splitlines(), 1) if "pragma: no mutate" in line}
    skip = set(marked)
    compound = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With, ast.Try)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt) and not isinstance(node, compound) and node.lineno in marked:
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return skip


def list_sites(source: str) -> list[Site]:
    m = Mutator(_skip_lines(source))
    m.visit(ast.parse(source))
    lines = source.splitlines()
    seen: dict[str, int] = {}
    for s in m.sites:  # a key that survives edits elsewhere in the file
        base = f"{lines[s.line - 1].strip()} | {s.op}: {s.before} -> {s.after}"
        seen[base] = seen.get(base, 0) + 1
        s.key = base if seen[base] == 1 else f"{base} #{seen[base]}"
    return m.sites


def mutant_code(source: str, filename: str, index: int):
    m = Mutator(_skip_lines(source), target=index)
    tree = ast.fix_missing_locations(m.visit(ast.parse(source)))
    if m.hit is None:
        raise IndexError(f"no mutant {index}")
    return compile(tree, filename, "exec", dont_inherit=True)


# --------------------------------------------------------------------------------------------------
# Running tests in a forked child


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `code` for the module `name` (the mutant, or the original compiled the same way)."""

    def __init__(self, name: str, code: Any, filename: str):
        self.name, self.code, self.filename = name, code, filename

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, origin=self.filename)
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.filename
        exec(self.code, module.__dict__)


class _Plugin:
    """Runs only the `select`ed tests (all when None); records outcomes, timeouts and (baseline) the lines each
    test runs."""

    def __init__(self, select: set[str] | None, trace_file: str | None = None):
        self.select, self.trace_file = select, trace_file
        self.failed: str | None = None
        self.timeout = False
        self.outcomes: dict[str, str] = {}
        self.durations: dict[str, float] = {}
        self.lines: dict[str, set[int]] = {"<collect>": set()}
        self._current = self.lines["<collect>"]
        if trace_file:
            sys.settrace(self._global)
            import threading

            threading.settrace(self._global)

    def _global(self, frame, event, arg):
        return self._local if frame.f_code.co_filename == self.trace_file else None

    def _local(self, frame, event, arg):
        if event == "line":
            self._current.add(frame.f_lineno)
        return self._local

    def pytest_collection_modifyitems(self, session, config, items):
        if self.select is None:
            return
        dropped = [it for it in items if it.nodeid not in self.select]
        items[:] = [it for it in items if it.nodeid in self.select]
        if dropped:
            config.hook.pytest_deselected(items=dropped)

    def pytest_runtest_logstart(self, nodeid, location):
        self._current = self.lines.setdefault(nodeid, set())

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
            self.failed = self.failed or report.nodeid
            if "Timeout (>" in (report.longreprtext or ""):
                self.timeout = True
        else:
            self.outcomes.setdefault(report.nodeid, report.outcome)

    def pytest_collectreport(self, report):
        if report.failed:
            self.failed = self.failed or f"collecting {report.nodeid}"


def _child(target: Target, code: Any, files: list[str], select: set[str] | None, test_timeout: float, out: Path,
           *, trace: bool, show: bool, deselect: list[str]) -> None:
    """In the forked child: never returns."""
    status = 70
    try:
        os.setpgrp()  # the parent kills the whole group (subprocesses of a test included) on timeout
        os.chdir(TESTS_ROOT)
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        with contextlib.suppress(ValueError, OSError):
            limit = _vm_size() + MEMORY_LIMIT
            resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard),
                                                    hard))
        if not show:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        import torch

        torch.set_num_threads(1)  # two children on two cores
        filename = str(REPO / target.path)
        sys.meta_path.insert(0, _Finder(target.module, code, filename))
        plugin = _Plugin(select, filename if trace else None)
        import pytest

        args = [*files, "-q", "-p", "no:cacheprovider", "-m", SLOW_MARKER, "-o", f"timeout={test_timeout:.0f}",
                "--basetemp", str(out.parent / "tmp"), "-W", "ignore::DeprecationWarning"]
        args += [f"--deselect={d}" for d in deselect]
        if not trace:
            args.append("-x")
        rc = pytest.main(args, plugins=[plugin])
        sys.settrace(None)
        result = {"rc": int(rc), "failed": plugin.failed, "timeout": plugin.timeout}
        if trace:
            result |= {"outcomes": plugin.outcomes, "durations": plugin.durations,
                       "lines": {k: sorted(v) for k, v in plugin.lines.items()}}
        out.write_text(json.dumps(result))
        status = 0
    except BaseException:  # anything, so that the child never runs the parent's code
        with contextlib.suppress(Exception):
            import traceback

            out.write_text(json.dumps({"rc": -1, "failed": "child error", "timeout": False,
                                       "error": traceback.format_exc()[-2000:]}))
    finally:
        os._exit(status)


def _vm_size() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class _Job:
    pid: int
    site: Site | None
    out: Path
    start: float
    deadline: float


def _spawn(target: Target, code: Any, files: list[str], select: set[str] | None, test_timeout: float, limit: float,
           site: Site | None, *, trace: bool = False, show: bool = False, deselect: list[str] = ()) -> _Job:
    work = Path(tempfile.mkdtemp(prefix="robotrl-mutation-"))
    out = work / "result.json"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(target, code, files, select, test_timeout, out, trace=trace, show=show, deselect=list(deselect))
    now = time.perf_counter()
    return _Job(pid, site, out, now, now + limit)


def _finish(job: _Job, timed_out: bool) -> dict[str, Any]:
    try:
        result = json.loads(job.out.read_text()) if job.out.exists() else None
    except json.JSONDecodeError:
        result = None
    shutil.rmtree(job.out.parent, ignore_errors=True)
    if timed_out:
        return {"rc": None, "failed": None, "timeout": True}
    return result or {"rc": None, "failed": "child died without a result", "timeout": False}


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _wait_one(jobs: dict[int, _Job]) -> tuple[_Job, dict[str, Any]]:
    while True:
        now = time.perf_counter()
        for pid, job in list(jobs.items()):
            if now > job.deadline:
                _kill(pid)
                os.waitpid(pid, 0)
                del jobs[pid]
                return job, _finish(job, timed_out=True)
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid and pid in jobs:
            job = jobs.pop(pid)
            _kill(pid)  # whatever the tests started and left behind
            return job, _finish(job, timed_out=False)
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------------
# One module


def _sha(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    return h.hexdigest()[:16]


def _fingerprints(target: Target) -> tuple[str, str]:
    tests = [TESTS_ROOT / t for t in target.tests] + [TESTS_ROOT / "tests" / "conftest.py"]
    return _sha(REPO / target.path), _sha(*tests)


def baseline(name: str, target: Target) -> dict[str, Any]:
    """Run the fast tests unmutated, with the tracer; returns coverage and timing."""
    source = (REPO / target.path).read_text()
    code = compile(source, str(REPO / target.path), "exec", dont_inherit=True)
    files = [t for t in target.tests if (TESTS_ROOT / t).exists()]
    t0 = time.perf_counter()
    job = _spawn(target, code, files, None, 600, 1800, None, trace=True)
    _, result = _wait_one({job.pid: job})
    wall = time.perf_counter() - t0
    if "outcomes" not in result:
        raise SystemExit(f"{name}: the unmutated tests did not run: {result}")
    failing = sorted(k for k, v in result["outcomes"].items() if v == "failed")
    if failing:
        print(f"  {name}: {len(failing)} test(s) fail unmutated and are left out: {', '.join(failing)}", flush=True)
    per_test = {k: set(v) for k, v in result["lines"].items() if k != "<collect>" and k not in failing}
    return {"files": files, "collect": set(result["lines"].get("<collect>", [])), "per_test": per_test,
            "durations": {k: v for k, v in result["durations"].items() if k not in failing}, "failing": failing,
            "wall": wall}


def run_module(name: str, *, jobs: int, fresh: bool) -> dict[str, Any]:
    target = TARGETS[name]
    source = (REPO / target.path).read_text()
    sites = list_sites(source)
    src_sha, tests_sha = _fingerprints(target)
    state_path = MUTATION_OUT / f"{name}.json"
    done: dict[int, dict[str, Any]] = {}
    if state_path.exists() and not fresh:
        old = json.loads(state_path.read_text())
        if old.get("source_sha") == src_sha and old.get("tests_sha") == tests_sha:
            done = {m["index"]: m for m in old["mutants"] if m.get("status")}
    t_start = time.perf_counter()
    print(f"{name}: {len(sites)} mutants ({len(done)} already done), tests: {', '.join(target.tests)}", flush=True)
    base = baseline(name, target)
    slowest = max(base["durations"].values(), default=1.0)
    test_timeout = max(10.0, 10 * slowest)
    results: dict[int, dict[str, Any]] = dict(done)
    prior_seconds = sum(m.get("seconds", 0.0) for m in done.values())

    def save(finished: bool) -> None:
        MUTATION_OUT.mkdir(parents=True, exist_ok=True)
        state = {"module": target.module, "path": target.path, "tests": list(target.tests),
                 "source_sha": src_sha, "tests_sha": tests_sha, "baseline_failing": base["failing"],
                 "baseline_seconds": round(base["wall"], 1), "test_timeout_s": test_timeout,
                 "finished": finished, "wall_s": round(prior_seconds + time.perf_counter() - t_start, 1),
                 "mutants": [results.get(s.index, {"index": s.index, "status": None}) | _site_dict(s) for s in sites]}
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(state_path)

    todo = deque()
    for s in sites:
        if s.index in done:
            continue
        span = set(range(s.line, s.end_line + 1))
        covering = {t for t, lines in base["per_test"].items() if lines & span}
        select = None if span & base["collect"] else covering  # run at import: every test
        if select is not None and not select:
            results[s.index] = {"index": s.index, "status": "survived", "covered": False, "seconds": 0.0}
            continue
        files = [f for f in base["files"] if select is None or any(t.split("::")[0] == f for t in select)]
        todo.append((s, files, select))
    running: dict[int, _Job] = {}
    finished_count, last_save = 0, time.perf_counter()
    try:
        while todo or running:
            while todo and len(running) < jobs:
                s, files, select = todo.popleft()
                code = mutant_code(source, str(REPO / target.path), s.index)
                limit = 60 + 3 * sum(d for t, d in base["durations"].items() if select is None or t in select)
                job = _spawn(target, code, files, select, test_timeout, limit, s, deselect=base["failing"])
                running[job.pid] = job
            job, r = _wait_one(running)
            s = job.site
            if r.get("timeout"):
                status = "timeout"
            elif r.get("rc") == 0:
                status = "survived"
            elif r.get("rc") in (5, -1, None) and r.get("failed") in (None, "child error"):
                status = "error"  # no tests ran, or the harness failed: not a kill
            else:
                status = "killed"
            results[s.index] = {"index": s.index, "status": status, "covered": True, "killed_by": r.get("failed"),
                                "seconds": round(time.perf_counter() - job.start, 2)}
            if r.get("error"):
                results[s.index]["error"] = r["error"]
            finished_count += 1
            if time.perf_counter() - last_save > 10:
                save(False)
                last_save = time.perf_counter()
                print(f"  {name}: {len(results)}/{len(sites)}", flush=True)
    finally:
        for pid in list(running):
            _kill(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        save(not todo and not running)
    state = json.loads(state_path.read_text())
    row = summarise(name, state)
    print(f"{name}: {row['mutants']} mutants, {row['killed']} killed, {row['timeout']} timeouts, {row['survived']} "
          f"survived ({row['not_covered']} not covered), score {row['score']:.1%}, {state['wall_s']:.0f} s", flush=True)
    return state


def _site_dict(s: Site) -> dict[str, Any]:
    return {"op": s.op, "line": s.line, "before": s.before, "after": s.after, "key": s.key}


def summarise(name: str, state: dict[str, Any]) -> dict[str, Any]:
    ms = state["mutants"]
    count = {k: sum(1 for m in ms if m.get("status") == k) for k in ("killed", "timeout", "survived", "error")}
    explained = EXPLAINED.get(name, {})
    survivors = [m for m in ms if m.get("status") == "survived"]
    n = len(ms)
    return {"module": name, "path": state["path"], "mutants": n, **count,
            "not_covered": sum(1 for m in survivors if not m.get("covered", True)),
            "explained": sum(1 for m in survivors if m["key"] in explained),
            "score": (count["killed"] + count["timeout"]) / n if n else 1.0,
            "pending": sum(1 for m in ms if not m.get("status")), "wall_s": state.get("wall_s", 0.0),
            "tests": state["tests"], "baseline_failing": state.get("baseline_failing", []),
            "survivors": [{"line": m["line"], "op": m["op"], "change": f"{m['before']} -> {m['after']}",
                           "covered": m.get("covered", True), "reason": explained.get(m["key"]), "key": m["key"]}
                          for m in survivors]}


# --------------------------------------------------------------------------------------------------
# Report


def report(before: dict[str, Any] | None) -> None:
    rows, stale = [], []
    for name, target in TARGETS.items():
        path = MUTATION_OUT / f"{name}.json"
        if not path.exists():
            stale.append(f"{name} (not run)")
            continue
        state = json.loads(path.read_text())
        if (state["source_sha"], state["tests_sha"]) != _fingerprints(target) or not state.get("finished"):
            stale.append(f"{name} ({'unfinished' if not state.get('finished') else 'changed since'})")
        rows.append(summarise(name, state))
    summary = {"modules": rows, "machine": machine(), "total_wall_s": round(sum(r["wall_s"] for r in rows), 1),
               "stale": stale}
    save_json(MUTATION_OUT.name, summary)
    unexplained = [(r["module"], s) for r in rows if r["module"] in ROBOT_SIDE for s in r["survivors"]
                   if not s["reason"]]
    for module, s in unexplained:
        print(f"unexplained survivor on the robot side: {module} line {s['line']} {s['op']}: {s['change']}\n"
              f"    key: {s['key']!r}")
    if MUTATION_OUT.name != "mutation":
        return
    if stale:
        print("not written to BENCHMARKS.md; stale or missing: " + ", ".join(stale))
        return
    prev = {r["module"]: r for r in (before or {}).get("modules", [])}
    head = "| module | mutants | killed | timeouts | survived (not covered) | score |"
    sep = "| --- | ---: | ---: | ---: | ---: | ---: |"
    if prev:
        head += " before the new tests |"
        sep += " ---: |"
    lines = [head, sep]
    for r in rows:
        line = (f"| `{r['path']}` | {r['mutants']} | {r['killed']} | {r['timeout']} | {r['survived']} "
                f"({r['not_covered']}) | **{r['score']:.1%}** |")
        if prev:
            p = prev.get(r["module"])
            if p and p.get("baseline_failing"):  # not a measure of the tests: some failed unmutated then
                line += f" n/a ({len(p['baseline_failing'])} of its tests failed unmutated in that run) |"
            else:
                line += f" {p['score']:.1%} ({p['survived']} of {p['mutants']} survived) |" if p else " - |"
        lines.append(line)
    total_m = sum(r["mutants"] for r in rows)
    total_k = sum(r["killed"] + r["timeout"] for r in rows)
    lines.append(f"| all | {total_m} | {sum(r['killed'] for r in rows)} | {sum(r['timeout'] for r in rows)} | "
                 f"{sum(r['survived'] for r in rows)} ({sum(r['not_covered'] for r in rows)}) | "
                 f"**{total_k / total_m:.1%}** |" + (" |" if prev else ""))
    tests = "; ".join(f"{r['module']}: " + ", ".join(f"`{t}`" for t in r["tests"]) for r in rows)
    failing = [t for r in rows for t in r["baseline_failing"]]
    if failing:
        tests += (". Left out because they failed unmutated: " + ", ".join(f"`{t}`" for t in sorted(set(failing))))
    body = [
        f"Command: `python bench/mutation.py` ({time.strftime('%Y-%m-%d')}; {machine()}; "
        f"{versions('pytest', 'pytest-timeout')}), two mutants at a time on the two cores: "
        f"{summary['total_wall_s'] / 60:.0f} min of mutant runs in all (summed over the runs that made these "
        "results, reruns of changed modules included).",
        "",
        "Mutants are made and run by `bench/mutation.py` (its docstring has the operators and why it is not "
        "mutmut or cosmic-ray); each runs the module's fast tests (`-m 'not slow'`) that execute the mutated "
        "line, stopping at the first failure. Score = (killed + timeouts) / mutants; a survivor is a change no "
        "test noticed, \"not covered\" one on a line no test runs.",
        "",
        *lines,
        "",
        f"Tests per module: {tests}.",
        "",
        "Survivors, each with the reason it is left (equivalent: no observable difference; the reasons are "
        "kept in `bench/mutation_survivors.py`; per mutant in `bench/out/mutation/MODULE.json`):",
        "",
    ]
    for r in rows:
        if not r["survivors"]:
            body.append(f"- `{r['path']}`: none.")
            continue
        body.append(f"- `{r['path']}`:")
        for s in r["survivors"]:
            body.append(f"  - line {s['line']}, `{s['change']}`" + (" (not covered)" if not s["covered"] else "")
                        + f": {s['reason'] or 'not explained'}")
    update_section("mutation", "\n".join(body))
    print("BENCHMARKS.md: section mutation written")


def _preload() -> None:
    import importlib

    for mod in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at a time (default 2)")
    ap.add_argument("--fresh", action="store_true", help="redo every mutant, not only those not yet done")
    ap.add_argument("--before", default=None, help="a previous bench/out/mutation.json, shown beside the scores")
    ap.add_argument("--state", default="mutation", help="results under bench/out/STATE/ and bench/out/STATE.json; "
                    "BENCHMARKS.md is written only for the default, mutation")
    ap.add_argument("--tests-root", default=None, help="run the tests of this copy of the repository (its tests/ "
                    "and pyproject.toml) against the working tree's modules")
    ap.add_argument("--list", metavar="MODULE", help="print the mutants of a module and exit")
    ap.add_argument("--survivors", metavar="MODULE", help="print the survivors of a module's last run and exit")
    ap.add_argument("--run", metavar="MODULE:INDEX", help="run one mutant with the tests' output shown and exit")
    args = ap.parse_args()
    global MUTATION_OUT, TESTS_ROOT
    MUTATION_OUT = OUT / args.state
    TESTS_ROOT = Path(args.tests_root).resolve() if args.tests_root else REPO
    if args.list:
        for s in list_sites((REPO / TARGETS[args.list].path).read_text()):
            print(f"{s.index:4d}  line {s.line:4d}  {s.op:9s}  {s.before}  ->  {s.after}")
        return 0
    if args.survivors:
        state = json.loads((MUTATION_OUT / f"{args.survivors}.json").read_text())
        for r in summarise(args.survivors, state)["survivors"]:
            print(f"line {r['line']:4d}  {r['op']:9s}  {r['change']}" + ("  (not covered)" if not r["covered"] else "")
                  + (f"\n      explained: {r['reason']}" if r["reason"] else f"\n      key: {r['key']!r}"))
        return 0
    _preload()
    if args.run:
        name, index = args.run.split(":")
        target = TARGETS[name]
        source = (REPO / target.path).read_text()
        site = next(s for s in list_sites(source) if s.index == int(index))
        print(f"{name} mutant {index}, line {site.line}: {site.before}  ->  {site.after}", flush=True)
        code = mutant_code(source, str(REPO / target.path), int(index))
        job = _spawn(target, code, [t for t in target.tests if (TESTS_ROOT / t).exists()], None, 600, 1800, site,
                     show=True)
        _, r = _wait_one({job.pid: job})
        print(f"result: {r}")
        return 0
    names = [n.strip() for n in args.modules.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if not 1 <= args.jobs <= 2:
        ap.error("--jobs must be 1 or 2 (the machine has two cores)")
    for n in names:
        run_module(n, jobs=args.jobs, fresh=args.fresh)
    before = json.loads(Path(args.before).read_text()) if args.before else None
    report(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
