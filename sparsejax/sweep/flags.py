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
import os
import re
import sys
from typing import Any, Callable, Mapping, NoReturn, Sequence

from absl import app, flags, logging

from sparsejax.sweep.store import StoreError

FLAGS = flags.FLAGS
EXIT_USAGE = 2
SWEEP_FLAG_NAMES = ("store", "preset", "dry_run", "num_shards", "shard_index",
                    "population_size", "chunk_steps", "allow_numeric_path_change")


# ----------------------------------------------------------------------------- flags

COMMON_FLAG_NAMES = ("store", "preset", "dry_run")


def define_common_flags(presets: Sequence[str] = (), store_help: str | None = None,
                        dry_run_help: str | None = None, preset_help: str | None = None,
                        flag_values: flags.FlagValues = FLAGS) -> None:
    """Define ``--store``, ``--preset`` and ``--dry_run``, the flags EVERY launcher has, and make
    them key flags of the calling launcher so ``--help`` lists them (idempotent).

    ``presets`` names the launcher's presets in the ``--preset`` help; each preset writes
    under its own ``out/<preset>`` folder by default (:func:`preset_out`).
    """
    if "store" not in flag_values:
        names = ", ".join(presets) if presets else "none defined"
        flags.DEFINE_string("store", None, store_help or "Sweep store file (SQLite); created if missing.",
                            flag_values=flag_values)
        flags.DEFINE_string("preset", None, preset_help or f"Named preset: {names}. It sets the launcher's "
                            "grid (flags given explicitly override it) and the default output folder "
                            "out/<preset>.", flag_values=flag_values)
        flags.DEFINE_boolean("dry_run", False, dry_run_help or "Check the input and print what would run "
                             "(runs, cost); create nothing.", flag_values=flag_values)
    _register_key_flags(COMMON_FLAG_NAMES + SWEEP_FLAG_NAMES, flag_values)


def _register_key_flags(names: Sequence[str], flag_values: flags.FlagValues) -> None:
    """Make the defined flags of ``names`` key flags of the launcher module calling into this
    one (the first frame outside it), so its ``--help`` lists them."""
    if flag_values is not FLAGS:
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    caller = frame.f_globals.get("__name__", "") if frame is not None else ""
    module = sys.argv[0] if caller == "__main__" else caller
    for name in names:
        if name in flag_values:
            flag_values.register_key_flag_for_module(module, flag_values[name])


def preset_out(preset: str | None, default: str = "out") -> str:
    """The default output folder of a preset: ``out/<preset>`` (``default`` without one)."""
    return os.path.join("out", preset) if preset else default


def define_sweep_flags(presets: Sequence[str] = (), flag_values: flags.FlagValues = FLAGS) -> None:
    """Define the flags every sweep launcher shares (idempotent per ``flag_values``)."""
    if "population_size" in flag_values:
        return
    define_common_flags(presets, flag_values=flag_values)
    flags.DEFINE_integer("num_shards", 1, "Split the plan into this many shards (jobs).",
                         flag_values=flag_values)
    flags.DEFINE_integer("shard_index", 0, "Which shard this job trains, 0 <= i < num_shards.",
                         flag_values=flag_values)
    flags.DEFINE_integer("population_size", 1024, "Runs trained together in one program.",
                         flag_values=flag_values)
    flags.DEFINE_integer("chunk_steps", 390, "Steps per jitted chunk (progress granularity).",
                         flag_values=flag_values)
    flags.DEFINE_boolean("allow_numeric_path_change", False, "Resume into a store written on "
                         "another numeric path (backend, kernel, jax/numpy or code version, CPU "
                         "vector ISA); the records written are marked. Without it such a launch "
                         "is refused.", flag_values=flag_values)
    _register_key_flags(SWEEP_FLAG_NAMES, flag_values)


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
    allow_numeric_path_change: bool = False


def check_sweep_args(args: SweepArgs, store_required: bool = True) -> SweepArgs:
    """``args`` if consistent, else ValueError naming the flag and what is allowed.
    ``store_required=False`` for launchers whose store is optional (``experiments.train``)."""
    if args.num_shards < 1:
        raise ValueError(f"--num_shards: must be >= 1, got {args.num_shards}")
    if not 0 <= args.shard_index < args.num_shards:
        raise ValueError(f"--shard_index: must be in [0, {args.num_shards}) for "
                         f"--num_shards={args.num_shards}, got {args.shard_index}")
    if args.population_size < 1:
        raise ValueError(f"--population_size: must be >= 1, got {args.population_size}")
    if args.chunk_steps < 1:
        raise ValueError(f"--chunk_steps: must be >= 1, got {args.chunk_steps}")
    if store_required and not args.dry_run and not args.store:
        raise ValueError("--store: required (a sweep store file), unless --dry_run")
    check_store_path(args.store)
    return args


def sweep_args(flag_values: flags.FlagValues = FLAGS, store_required: bool = True) -> SweepArgs:
    """The shared sweep flags as checked :class:`SweepArgs`."""
    return check_sweep_args(SweepArgs(**{name: flag_values[name].value for name in SWEEP_FLAG_NAMES}),
                            store_required)


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


MAX_LIST = 100_000  # values one list flag may expand to (a..b ranges included)
_ASCII_INT = re.compile(r"[+-]?[0-9]+")
_ASCII_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan|infinity)", re.I)


def _ascii_int(flag_name: str, item: str, what: str) -> int:
    """``int(item)`` for ASCII digits only: Python's int() also reads full-width and other
    Unicode digits (``"４"``), which a shell user never means to type."""
    if not _ASCII_INT.fullmatch(item):
        raise ValueError(f"{_flag(flag_name)}: {item!r} is not an integer; give comma-separated {what}")
    return int(item)


def parse_ints(flag_name: str, text: str | Sequence[Any] | None, min_value: int | None = None,
               max_value: int | None = None) -> list[int]:
    """``"15,16,20..23"`` -> ``[15, 16, 20, 21, 22, 23]`` (``a..b`` is an inclusive range).

    Values outside [min_value, max_value] and lists longer than :data:`MAX_LIST` are errors,
    checked before any range is expanded (``1..10000000`` fails at once instead of hanging).
    """
    what = "integers (a..b for an inclusive range), e.g. 15,16,20..26"
    bounds: list[tuple[int, int]] = []
    for item in _items(flag_name, text, what):
        lo, sep, hi = item.partition("..")
        a = _ascii_int(flag_name, lo.strip() if sep else item, what)
        b = _ascii_int(flag_name, hi.strip(), what) if sep else a
        if b < a:
            raise ValueError(f"{_flag(flag_name)}: empty range {item!r}; give a..b with a <= b")
        bounds.append((a, b))
    low, high = min(a for a, _ in bounds), max(b for _, b in bounds)
    if min_value is not None and low < min_value:
        raise ValueError(f"{_flag(flag_name)}: every value must be >= {min_value}, got {low}")
    if max_value is not None and high > max_value:
        raise ValueError(f"{_flag(flag_name)}: every value must be <= {max_value}, got {high}")
    if sum(b - a + 1 for a, b in bounds) > MAX_LIST:
        raise ValueError(f"{_flag(flag_name)}: more than {MAX_LIST:,} values; give a shorter list")
    return [v for a, b in bounds for v in range(a, b + 1)]


# --data_seed of comb_search and prune_sweep (each launcher defines it, so --help lists it there)
DATA_SEED_HELP = ("shared data order: every run sees the minibatch sequence of this seed (common random numbers "
                  "across runs; part of every run id). Default: each run its own order, as the paper")


def optional_seed(flag_name: str, value: Any) -> int | None:
    """A seed flag that may be unset: None, or an integer >= 0 (ValueError naming the flag)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ValueError(f"{_flag(flag_name)}: must be an integer >= 0, got {value!r}")
    return int(str(value).strip())


def parse_floats(flag_name: str, text: str | Sequence[Any] | None, positive: bool = False) -> list[float]:
    """``"0.05,0.1,0.2"`` -> ``[0.05, 0.1, 0.2]``; finite numbers only (``positive``: > 0)."""
    what = "numbers, e.g. 0.05,0.1,0.2"
    out: list[float] = []
    for item in _items(flag_name, text, what):
        try:
            if not _ASCII_FLOAT.fullmatch(item):
                raise ValueError(item)
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


# ----------------------------------------------------------------------------- paths

def _existing_ancestor(path: str) -> str:
    """The nearest existing folder-or-file at or above ``path`` (absolute)."""
    p = os.path.abspath(path)
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def check_output_dir(flag_name: str, path: str) -> str:
    """``path`` if it is, or can be created as, a writable folder; else ValueError naming the
    flag. Nothing is created."""
    flag = _flag(flag_name)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{flag}: {path} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{flag}: folder {path} is not writable")
        return path
    anc = _existing_ancestor(path)
    if not os.path.isdir(anc):
        raise ValueError(f"{flag}: cannot create {path}: {anc} is not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: cannot create {path}: folder {anc} is not writable")
    return path


def check_output_file(flag_name: str, path: str) -> str:
    """``path`` if a file can be written there (its folder exists or can be created, it is not
    a folder or a device); else ValueError naming the flag. Nothing is created."""
    flag = _flag(flag_name)
    if not path:
        raise ValueError(f"{flag}: required; give a file path")
    if os.path.isdir(path):
        raise ValueError(f"{flag}: {path} is a folder; give a file path")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{flag}: {path} is not a regular file")
    check_output_dir(flag_name, os.path.dirname(os.path.abspath(path)))
    return path


def check_store_path(path: str | None, flag_name: str = "store") -> str | None:
    """A store path that is an existing regular file or a file that can be created (None
    passes); ValueError naming the flag otherwise (``/dev/null``, a folder ...)."""
    if not path:
        return path
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{_flag(flag_name)}: {path} is not a regular file (a sweep store is an SQLite file)")
    return check_output_file(flag_name, path)


def check_init(flag_name: str, init: str) -> str:
    """``"random"`` or a readable init .npz of finite float weights; ValueError naming the flag."""
    if init == "random":
        return init
    from sparsejax import mlp  # jax: only when a file must be read
    try:
        mlp.load_npz(init)
    except ValueError as err:
        raise ValueError(f"{_flag(flag_name)}: {err}") from None
    return init


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


def preset_values(presets: Mapping[str, Mapping[str, Any]], names: Sequence[str],
                  flag_values: flags.FlagValues = FLAGS) -> tuple[SweepArgs, dict[str, Any]]:
    """The checked shared sweep flags and the launcher's own values (``names``: flag names) with
    ``--preset`` overlaid (:func:`apply_preset`); with a preset and no ``--store`` the store is
    ``out/<preset>/store.sqlite``."""
    preset = flag_values["preset"].value
    if preset and flag_values["store"].value is None and preset in presets:
        flag_values["store"].value = os.path.join(preset_out(preset), "store.sqlite")
    args = sweep_args(flag_values)
    values = apply_preset(presets, args.preset, {k: flag_values[k].value for k in names},
                          given=lambda k: explicitly_given(k, flag_values))
    return args, values


def no_arguments(argv: Sequence[str]) -> None:
    """ValueError when a launcher got positional arguments (absl passes them through)."""
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}")


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


HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def _asks_help(argv: Sequence[str]) -> bool:
    return any(a.lstrip("-").split("=")[0] in HELP_FLAGS for a in argv[1:] if a.startswith("-"))


def parse_flags_or_fail(argv: list[str]) -> list[str]:
    """absl flag parsing where a bad flag value is one stderr line and status 2, and ``--help``
    (which absl ends with status 1) exits 0 (for ``app.run``)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        fail(str(err))
    except SystemExit as done:
        if done.code == 1 and _asks_help(argv):
            sys.exit(0)
        raise


def quiet_console(flag_values: flags.FlagValues = FLAGS) -> None:
    """Keep absl's prefixed INFO lines (per-population logs, JAX's "Unable to initialize
    backend 'tpu'") off the console unless the user asked for logs: ``--logtostderr``,
    ``--alsologtostderr`` or an explicit ``--verbosity``/``-v``. Warnings still show."""
    loud = any(name in flag_values and bool(flag_values[name].value)
               for name in ("logtostderr", "alsologtostderr"))
    if not loud and not ("verbosity" in flag_values and flag_values["verbosity"].present):
        logging.set_verbosity(logging.WARNING)


def run(main: Callable[[list[str]], Any]) -> None:
    """``app.run(main)`` with :func:`parse_flags_or_fail`, :func:`quiet_console` and
    :func:`main_wrapper`."""
    wrapped = main_wrapper(main)

    def quiet_main(argv: list[str]) -> Any:
        quiet_console()
        return wrapped(argv)
    app.run(quiet_main, flags_parser=parse_flags_or_fail)
