"""Shared absl flags and command-line helpers for sweep launchers.

A launcher calls :func:`define_sweep_flags` at import, parses its own list flags with
:func:`parse_ints` / :func:`parse_floats` / :func:`parse_strs`, overlays a preset with
:func:`apply_preset`, and starts with :func:`run` (``app.run`` with the error handling below).

Bad input never prints a traceback and never writes a file: every check raises ValueError with
one line that names the flag (``--lrs: ...``) and says what is allowed; :func:`main_wrapper`
turns it into that line on stderr and exit status 2 (:func:`fail`). Launchers must therefore
validate everything (flags, the whole plan, the store file) before creating anything.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any, Callable, Mapping, NoReturn, Sequence

from absl import app, flags, logging

from sparsejax.sweep.store import StoreError

FLAGS = flags.FLAGS
EXIT_USAGE = 2
SWEEP_FLAG_NAMES = ("store", "preset", "dry_run", "num_shards", "shard_index",
                    "population_size", "chunk_steps")


# ----------------------------------------------------------------------------- flags

def define_sweep_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Define the flags every sweep launcher shares (idempotent per ``flag_values``)."""
    if "population_size" in flag_values:
        return
    flags.DEFINE_string("store", None, "Sweep store file (SQLite); created if missing.",
                        flag_values=flag_values)
    flags.DEFINE_string("preset", None, "Named preset of the launcher's grid; flags given "
                        "explicitly override it.", flag_values=flag_values)
    flags.DEFINE_boolean("dry_run", False, "Print run counts and cost; create nothing.",
                         flag_values=flag_values)
    flags.DEFINE_integer("num_shards", 1, "Split the plan into this many shards (jobs).",
                         flag_values=flag_values)
    flags.DEFINE_integer("shard_index", 0, "Which shard this job trains, 0 <= i < num_shards.",
                         flag_values=flag_values)
    flags.DEFINE_integer("population_size", 1024, "Runs trained together in one program.",
                         flag_values=flag_values)
    flags.DEFINE_integer("chunk_steps", 390, "Steps per jitted chunk (progress granularity).",
                         flag_values=flag_values)


@dataclasses.dataclass(frozen=True)
class SweepArgs:
    """The checked values of the shared sweep flags."""
    store: str | None
    preset: str | None
    dry_run: bool
    num_shards: int
    shard_index: int
    population_size: int
    chunk_steps: int


def check_sweep_args(args: SweepArgs) -> SweepArgs:
    """``args`` if consistent, else ValueError naming the flag and what is allowed."""
    if args.num_shards < 1:
        raise ValueError(f"--num_shards: must be >= 1, got {args.num_shards}")
    if not 0 <= args.shard_index < args.num_shards:
        raise ValueError(f"--shard_index: must be in [0, {args.num_shards}) for "
                         f"--num_shards={args.num_shards}, got {args.shard_index}")
    if args.population_size < 1:
        raise ValueError(f"--population_size: must be >= 1, got {args.population_size}")
    if args.chunk_steps < 1:
        raise ValueError(f"--chunk_steps: must be >= 1, got {args.chunk_steps}")
    if not args.dry_run and not args.store:
        raise ValueError("--store: required (a sweep store file), unless --dry_run")
    return args


def sweep_args(flag_values: flags.FlagValues = FLAGS) -> SweepArgs:
    """The shared sweep flags as checked :class:`SweepArgs`."""
    return check_sweep_args(SweepArgs(**{name: flag_values[name].value for name in SWEEP_FLAG_NAMES}))


# ----------------------------------------------------------------------------- list parsing

def _flag(flag_name: str) -> str:
    return flag_name if flag_name.startswith("--") else f"--{flag_name}"


def _items(flag_name: str, text: str | Sequence[Any] | None, what: str) -> list[str]:
    """Comma-separated items (a list from ``DEFINE_list`` is accepted as is); none is an error."""
    if text is None:
        raise ValueError(f"{_flag(flag_name)}: required; give comma-separated {what}")
    parts = [str(p).strip() for p in (text.split(",") if isinstance(text, str) else text)]
    if not parts or any(p == "" for p in parts):
        raise ValueError(f"{_flag(flag_name)}: empty item in {text!r}; give comma-separated {what}")
    return parts


def parse_ints(flag_name: str, text: str | Sequence[Any] | None, min_value: int | None = None) -> list[int]:
    """``"15,16,20..23"`` -> ``[15, 16, 20, 21, 22, 23]`` (``a..b`` is an inclusive range)."""
    what = "integers (a..b for an inclusive range), e.g. 15,16,20..26"
    out: list[int] = []
    for item in _items(flag_name, text, what):
        lo, sep, hi = item.partition("..")
        try:
            values = range(int(lo), int(hi) + 1) if sep else [int(item)]
        except ValueError:
            raise ValueError(f"{_flag(flag_name)}: {item!r} is not an integer; give comma-separated "
                             f"{what}") from None
        if sep and not values:
            raise ValueError(f"{_flag(flag_name)}: empty range {item!r}; give a..b with a <= b")
        out.extend(values)
    if min_value is not None and min(out) < min_value:
        raise ValueError(f"{_flag(flag_name)}: every value must be >= {min_value}, got {min(out)}")
    return out


def parse_floats(flag_name: str, text: str | Sequence[Any] | None, positive: bool = False) -> list[float]:
    """``"0.05,0.1,0.2"`` -> ``[0.05, 0.1, 0.2]``; finite numbers only (``positive``: > 0)."""
    what = "numbers, e.g. 0.05,0.1,0.2"
    out: list[float] = []
    for item in _items(flag_name, text, what):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"{_flag(flag_name)}: {item!r} is not a number; give comma-separated "
                             f"{what}") from None
        if not math.isfinite(value):
            raise ValueError(f"{_flag(flag_name)}: {item!r} is not finite; give comma-separated {what}")
        if positive and value <= 0:
            raise ValueError(f"{_flag(flag_name)}: every value must be > 0, got {item}")
        out.append(value)
    return out


def parse_strs(flag_name: str, text: str | Sequence[Any] | None, allowed: Sequence[str] | None = None) -> list[str]:
    """``"gmp,snip"`` -> ``["gmp", "snip"]``, each checked against ``allowed`` when given."""
    what = f"values from: {', '.join(allowed)}" if allowed is not None else "names"
    out = _items(flag_name, text, what)
    if allowed is not None:
        for item in out:
            if item not in allowed:
                raise ValueError(f"{_flag(flag_name)}: unknown {item!r}; allowed: {', '.join(allowed)}")
    return out


# ----------------------------------------------------------------------------- presets

def explicitly_given(name: str, flag_values: flags.FlagValues = FLAGS) -> bool:
    """Whether flag ``name`` was given on the command line (not just its default)."""
    return name in flag_values and bool(flag_values[name].present)


def apply_preset(presets: Mapping[str, Mapping[str, Any]], name: str | None,
                 overrides: Mapping[str, Any],
                 given: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Settings: ``overrides`` (flag values by flag name), with preset ``name`` overlaid, and
    the flags given explicitly on the command line overlaid again.

    So a preset replaces flag defaults, and an explicit flag beats the preset. ``given(key)``
    says whether a key was explicit (default: ``FLAGS[key].present``). ``name`` None or ""
    means no preset. An unknown preset raises ValueError("--preset: ...").
    """
    given = given or explicitly_given
    if not name:
        return dict(overrides)
    if name not in presets:
        raise ValueError(f"--preset: unknown {name!r}; allowed: {', '.join(presets) or 'none defined'}")
    out = {**dict(overrides), **dict(presets[name])}
    out.update({key: value for key, value in overrides.items() if given(key)})
    return out


# ----------------------------------------------------------------------------- errors

def fail(msg: str) -> NoReturn:
    """Print ``error: <msg>`` as ONE line on stderr and exit with status 2."""
    line = " ".join(str(msg).split()) or "invalid arguments"
    print(f"error: {line}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


USAGE_ERRORS = (ValueError, StoreError, app.UsageError, flags.Error)


def main_wrapper(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """``main`` with bad-input exceptions turned into :func:`fail` (no traceback, status 2).

    The traceback stays available at absl verbosity 1 (``-v=1``) for debugging.
    """
    def wrapped(argv: list[str]) -> Any:
        try:
            return main(argv)
        except USAGE_ERRORS as err:
            logging.debug("usage error", exc_info=True)
            fail(str(err))
    wrapped.__name__ = getattr(main, "__name__", "main")
    wrapped.__doc__ = main.__doc__
    return wrapped


def parse_flags_or_fail(argv: list[str]) -> list[str]:
    """absl flag parsing where a bad flag value is one stderr line and status 2 (for ``app.run``)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        fail(str(err))


def run(main: Callable[[list[str]], Any]) -> None:
    """``app.run(main)`` with :func:`parse_flags_or_fail` and :func:`main_wrapper`."""
    app.run(main_wrapper(main), flags_parser=parse_flags_or_fail)
