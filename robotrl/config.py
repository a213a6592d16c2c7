"""Typed configuration: dataclasses whose fields become CLI flags, config-file keys and run-dir JSON.

Why our own ~250 lines rather than tyro (the typed-CLI library CleanRL and mjlab use) or pydantic,
measured on this machine (tyro 1.0.17, pydantic 2.14): tyro parses the same dataclasses and
attribute docstrings and can carry our precedence chain (``tyro.cli(Config, default=resolved)``),
but it (1) prints every mistake as a boxed multi-line panel and exits by itself, where robotrl's
contract is one ``robotrl: error:`` line and status 2; (2) checks types only: ``--learning-rate nan``
is accepted, so the range checks below would stay ours anyway; (3) spells tuples
``--hidden-sizes 256 256``, breaking the ``256,256`` of recorded commands (config.json, cards,
BENCHMARKS.md); (4) takes 45 ms to import against 6 ms for argparse, paid by every ``robotrl``
command. pydantic would validate the config files (28 ms import, ~35 ms more to build a validator)
but not parse the command line, and our checks that span fields (``minibatch_size`` divides the
batch) would be validators written by hand just the same. So: argparse for the command line, and
one place per input kind for validation -- `coerce` (type, finiteness; every flag and file value),
each config dataclass's ``__post_init__`` with `check_range` (ranges, cross-field rules, the size
limits below), and `robotrl.run.train.plan` (what depends on the machine: the device, the task).

Each algorithm has one config dataclass. A field is documented by the string literal written just
below it (an attribute docstring); `field_docs` reads those with `ast`, so the same text shows up
in ``robotrl train ALGO --help`` and in the source. Values are parsed and checked here, never
``eval``-ed.

Precedence when a run is set up: dataclass default < per-task default < ``--config FILE`` < flag.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import json
import math
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from robotrl.errors import UserError

# Upper limits of sizes that allocate memory or threads up front: far above any sensible setting, low
# enough that a slip (--num-envs 1e9) is refused at once instead of exhausting the machine.
MAX_ENVS = 4096
MAX_BATCH = 2**24  # samples in one on-policy batch
MAX_WIDTH = 16_384
MAX_LAYERS = 64


def check_network(hidden_sizes: tuple[int, ...], name: str = "hidden_sizes") -> None:
    """Raise ValueError unless `hidden_sizes` are 1 to MAX_LAYERS widths in [1, MAX_WIDTH]."""
    if not hidden_sizes or len(hidden_sizes) > MAX_LAYERS or not all(1 <= h <= MAX_WIDTH for h in hidden_sizes):
        raise ValueError(f"{name} must be 1 to {MAX_LAYERS} widths in [1, {MAX_WIDTH}], got {hidden_sizes}")


def check_range(obj: Any, name: str, *, gt: float | None = None, ge: float | None = None,
                lt: float | None = None, le: float | None = None) -> None:
    """Raise ValueError unless field `name` of `obj` lies in the range given (None values are skipped)."""
    v = getattr(obj, name)
    if v is None:
        return
    ok = ((gt is None or v > gt) and (ge is None or v >= ge) and (lt is None or v < lt) and (le is None or v <= le))
    if not ok:
        lo = f"> {gt}" if gt is not None else f">= {ge}" if ge is not None else ""
        hi = f"< {lt}" if lt is not None else f"<= {le}" if le is not None else ""
        raise ValueError(f"{name} must be {' and '.join(x for x in (lo, hi) if x)}, got {v}")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Map field name -> the docstring written under it in the class body (empty if none)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Resolved once per class: get_type_hints evaluates every annotation string anew (90 % of a study's check of
    100,000 configurations)."""
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"comma-separated {_type_name(get_args(tp)[0])}s"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, *, name: str) -> Any:
    """Convert `value` (a string from the command line, or a JSON/TOML value) to type `tp`.

    Raises UserError naming the field and the expected type.
    """
    origin = get_origin(tp)
    bad = UserError(f"{name}: expected {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str)
                                                      and value.strip().lower() in ("none", "null", ""))):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, name=name)
            except UserError:
                pass
        raise bad
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        raise UserError(f"{name}: expected one of {', '.join(map(str, choices))}, got {value!r}")
    if origin is tuple:
        (elem, *_rest) = get_args(tp)
        if isinstance(value, str):
            parts = value.replace(" ", "").split(",")
            if "" in parts:
                raise UserError(f"{name}: expected a comma-separated list without empty entries (e.g. 256,256), "
                                f"got {value!r}")
        elif isinstance(value, list | tuple):
            parts = list(value)
        else:
            raise bad
        return tuple(coerce(elem, p, name=name) for p in parts)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:  # accept 1e6
                    f = float(value)
                except ValueError:
                    raise bad from None
                if f.is_integer():  # False for NaN and infinities
                    return int(f)
        raise bad
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad
        try:
            f = float(value.replace("_", "") if isinstance(value, str) else value)
        except (ValueError, OverflowError):
            raise bad from None
        if not math.isfinite(f):  # NaN and infinities pass float() but no setting means them
            raise UserError(f"{name}: expected a finite number, got {value!r}")
        return f
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"unsupported config field type {tp!r} for {name}")


def from_dict(cls: type, data: dict[str, Any], *, base: Any = None, source: str = "config",
              flags: bool = False) -> Any:
    """Build `cls` from `data` on top of `base` (or the defaults); unknown keys are an error.

    With `flags`, messages name fields as command-line flags (``--learning-rate``).
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a table of settings for {cls.__name__}, got {type(data).__name__}")
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted((set(data) - set(names)), key=str)
    if unknown:
        import difflib

        hint = difflib.get_close_matches(str(unknown[0]), names, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UserError(f"{source}: unknown option {unknown[0]!r} for {cls.__name__}{extra}")
    values = {k: coerce(hints[k], v, name=cli_flag(k) if flags else f"{source}: {k}") for k, v in data.items()}
    # Rebuilt from the defaults with every value given so far, not `replace(base)`: a default derived from another
    # field in __post_init__ (DDPG's layer_norm from its noise) then follows a later layer that changes that field.
    given = getattr(base, "_given", frozenset(names)) if base is not None else frozenset()
    values = {**{k: getattr(base, k) for k in given}, **values}
    try:
        cfg = cls(**values)
    except (ValueError, TypeError, ArithmeticError) as e:  # the dataclass's own range checks
        raise UserError(str(e) if flags else f"{source}: {e}") from None
    object.__setattr__(cfg, "_given", frozenset(values))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-serialisable dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def load_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a TOML or JSON config file into a dict; errors name the file."""
    from robotrl.userfile import file_problem, one_toml_in, read_text

    p = Path(path)
    problem = file_problem(p)
    if problem == "is a directory":
        inside = one_toml_in(p)
        raise UserError(f"{what} {str(p)!r} is a directory; give the file" + (f" in it: {str(inside)!r}" if inside
                                                                               else " (TOML or JSON)"))
    if problem is not None:
        raise UserError(f"{what} {str(p)!r} {problem}")
    text = read_text(p, f"{what} {str(p)!r}")
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10 (ROS 2 Humble's Ubuntu 22.04)
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        if p.suffix == ".toml":
            return tomllib.loads(text)
        if p.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise UserError(f"{what} {str(p)!r}: expected a JSON object")
            return data
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise UserError(f"{what} {str(p)!r} is malformed: {str(e).splitlines()[0] if str(e) else 'too deep'}"
                        ) from None
    raise UserError(f"{what} {str(p)!r}: use a .toml or .json file")


FLAG_NAMES = {"total_steps": "--steps"}  # fields whose command-line flag is not the field's name


def cli_flag(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def add_arguments(parser: Any, cls: type, *, defaults: Any = None, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of `cls` to an argparse parser, with its docstring as help.

    Values stay strings here (parsed later by `coerce`, so errors name the field); a flag that is not
    given leaves no attribute, so precedence can be applied afterwards.
    """
    import argparse

    docs = field_docs(cls)
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        tp = hints[f.name]
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default if f.default is not dataclasses.MISSING else None)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{docs.get(f.name, '')} [{_type_name(tp)}; default: {shown}]"
        help_text = help_text.replace("%", "%%")
        if tp is bool:
            parser.add_argument(cli_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(cli_flag(f.name), dest=f.name, metavar="V", default=argparse.SUPPRESS,
                                help=help_text)
