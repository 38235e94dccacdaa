"""Gin loading for every command: search paths, t5x-style flags, readable errors, and the one
command scaffold (`run_command`).

Flags: `--gin_file=FILE` (repeatable; looked up in the current directory, then
`--gin_search_paths`, then the repository's gin/ folder; an `include` inside a file likewise) and
`--gin.SELECTOR=VALUE` bindings, e.g. `--gin.TRAIN_STEPS=100` or
`--gin.build_optimizer.name='"adamw"'`.

This module imports none of its callers and nothing from `tasks/`: each gin file imports the
modules it configures (as in t5x), so parsing `models/t5_small.gin` imports the model config and
nothing else, and a file that imports `tasks` needs TensorFlow only when it is parsed. What can
only be decided from the whole config (the task registry, needed only when the run reads the
seqio source) the command hands over as `imports`, run before gin is locked.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import logging
import os
import pathlib
import re
import sys
from typing import Any, Callable, Sequence

import gin

from flan_jax import GIN_DIR, paths


class GinConfigError(Exception):
    """A bad gin file or binding, explained for the user."""


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gin_file", action="append", default=[],
                        help="gin file (repeatable); searched in ., --gin_search_paths and gin/")
    parser.add_argument("--gin_search_paths", action="append", default=[],
                        help="extra folder(s) to look for gin files and includes")


def split_gin_bindings(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--gin.X=V` (or `--gin.X V`) from other arguments; returns (bindings, rest)."""
    bindings, rest, i = [], [], 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--gin."):
            key_value = arg[len("--gin."):]
            if "=" in key_value:
                key, value = key_value.split("=", 1)
            elif i + 1 < len(argv):
                key, value = key_value, argv[i + 1]
                i += 1
            else:
                raise GinConfigError(f"{arg} needs a value: --gin.{key_value}=VALUE")
            bindings.append(f"{key} = {value}")
        else:
            rest.append(arg)
        i += 1
    return bindings, rest


# `scope/module.Configurable.parameter = ...` at the start of a gin line: (configurable, parameter)
_BOUND_SELECTOR = re.compile(r"^\s*(?:[\w.]+/)*([\w.]+)\.(\w+)\s*=", re.MULTILINE)


def _known_selectors(files: Sequence[str] = ()) -> list[str]:
    """Short names of the configurables that the repository's gin files and `files` bind, each
    with its `name.parameter` pairs. (gin has no public list of what is registered; what the gin
    files bind is what a user spells in a binding.)"""
    texts = [f.read_text() for f in sorted(GIN_DIR.rglob("*.gin"))]
    texts += [pathlib.Path(f).read_text() for f in files if os.path.isfile(f)]
    shorts = {m.group(1).split(".")[-1] for text in texts for m in _BOUND_SELECTOR.finditer(text)}
    names = []
    for short in sorted(shorts):
        try:
            params = list(inspect.signature(gin.get_configurable(short)).parameters)
        except (ValueError, TypeError):  # not registered (an unparsed file's), or no signature
            continue
        names += [short] + [f"{short}.{p}" for p in params]
    return names


def _explain(error: Exception, files: Sequence[str] = ()) -> str:
    message = str(error)
    match = re.search(r"No configurable matching '([^']+)'", message) or re.search(
        r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", message)
    hint = ""
    if match:
        wanted = ".".join(g for g in match.groups() if g)
        close = difflib.get_close_matches(wanted, _known_selectors(files), n=3, cutoff=0.6)
        if close:
            hint = f"\n  Did you mean: {', '.join(close)}?"
    return f"{message}{hint}"


def _explain_binding(bindings: Sequence[str]) -> str | None:
    """The first binding whose value gin cannot read, with the quoting that works in a shell
    (a string needs gin's quotes inside the shell's: --gin.MODEL_DIR="'/path'")."""
    for binding in bindings:
        try:
            list(gin.config_parser.ConfigParser(
                binding, gin.config.ParserDelegate(skip_unknown=True)))
        except (SyntaxError, ValueError):
            key, _, value = binding.partition("=")
            key, value = key.strip(), value.strip()
            quoted = value.strip("'\"")
            return (f"--gin.{key}={value} is not a gin value. Quote a string for gin inside the "
                    f"shell's quotes: --gin.{key}=\"'{quoted}'\".")
    return None


def _open_url(name: str):
    return paths.as_path(name).open("r")


def _readable_url(name: str) -> bool:
    return paths.is_url(name) and paths.as_path(name).exists()


# The --gin_search_paths of the command being parsed (set by `parse_gin`), for the `include`s
# that gin resolves itself.
_search_paths: list[str] = []


def _find_gin_file(name: str, search_paths: Sequence[str]) -> str | None:
    """A relative gin file name looked up in the current directory, then `search_paths`, then the
    repository's gin/ folder (an absolute one as it is); None where none has it."""
    for folder in [os.getcwd(), *search_paths, str(GIN_DIR)]:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _on_search_path(name: str) -> str | None:
    return None if paths.is_url(name) else _find_gin_file(name, _search_paths)


def _open_on_search_path(name: str):
    return open(_on_search_path(name))


# gin opens local files itself (relative ones from the current directory); a gin file on a bucket
# (gs://.../model.gin) goes through epath, and a relative one elsewhere is found on the search path.
gin.config.register_file_reader(_open_url, _readable_url)
gin.config.register_file_reader(_open_on_search_path,
                                lambda name: _on_search_path(name) is not None)


def _not_a_package_miss(record: logging.LogRecord) -> bool:
    return not (record.module == "resource_reader" and str(record.msg).startswith("Path not found"))


@contextlib.contextmanager
def _quiet_package_lookups():
    """gin's own reader (gin.resource_reader, tried before ours) takes `models/t5_tiny.gin` for
    a file in a Python package `models` and logs an error when there is none: while gin parses,
    those lines are dropped (the file is then found on the search path)."""
    root = logging.getLogger()
    root.addFilter(_not_a_package_miss)
    try:
        yield
    finally:
        root.removeFilter(_not_a_package_miss)


def resolve_gin_file(name: str, search_paths: Sequence[str] = ()) -> str:
    if paths.is_url(name):
        try:
            found = _readable_url(name)
        except Exception as e:  # noqa: BLE001 - no credentials, no such bucket, ...
            raise GinConfigError(f"gin file {name!r} cannot be read: {type(e).__name__}: "
                                 f"{e}") from None
        if not found:
            raise GinConfigError(f"gin file {name!r} not found.")
        return name
    found = _find_gin_file(name, search_paths)
    if found:
        return found
    available = sorted(str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob("*.gin"))
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise GinConfigError(f"gin file {name!r} not found in ., {', '.join(search_paths) or '-'} or "
                         f"{GIN_DIR}.{hint}")


# `imports(files, bindings)`: imports what a config needs before its bindings parse.
Imports = Callable[[Sequence[str], Sequence[str]], None]


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str] = (),
              search_paths: Sequence[str] = (), finalize: bool = True,
              imports: Imports | None = None) -> None:
    """Clears gin, then parses files and bindings, with errors that name the file and suggest
    close matches. `imports` (e.g. `flan_jax.data.import_tasks_if_read`) is called with the
    resolved files and the bindings first."""
    gin.clear_config()
    _search_paths[:] = search_paths
    files = [resolve_gin_file(f, search_paths) for f in gin_files]
    try:
        if imports is not None:
            imports(files, bindings)
        with _quiet_package_lookups():
            gin.parse_config_files_and_bindings(files, list(bindings), finalize_config=False,
                                                skip_unknown=False)
    except ImportError as e:
        raise GinConfigError(explain_import(e)) from None
    except (ValueError, KeyError, SyntaxError, IOError) as e:
        raise GinConfigError(_explain_binding(bindings) or _explain(e, files)) from None
    _check_macros_are_used(bindings)
    if finalize:
        gin.finalize()


def peek(files: Sequence[str], bindings: Sequence[str], query: Callable[[], Any],
         default: Any = None) -> Any:
    """`query()` asked of a lenient parse of `files` and `bindings` (unknown configurables
    skipped), or `default` when they do not parse; gin is cleared afterwards. For an `imports`
    hook that must know the config before the real parse."""
    try:
        with _quiet_package_lookups():
            gin.parse_config_files_and_bindings(files, list(bindings), finalize_config=False,
                                                skip_unknown=True)
        answer = query()
    except Exception:  # noqa: BLE001 - the real parse reports the error
        answer = default
    gin.clear_config()
    return answer


def bound_or(parameter: str, default):
    """The value bound to `parameter` (through macros), else `default`."""
    try:
        value = gin.query_parameter(parameter)
        while isinstance(value, gin.config.ConfigurableReference) and \
                value.selector == "gin.macro":
            value = gin.query_parameter(f"%{value.scoped_selector.rsplit('/', 1)[0]}")
        return value
    except ValueError:
        return default


def _check_macros_are_used(bindings: Sequence[str]) -> None:
    """A macro bound in a binding (`--gin.X=V`) that nothing references is a typo
    (`--gin.TRAIN_STEPZ=5` would otherwise train with the default and exit 0): refuse it,
    suggesting the macros that are used. (Macros set in files are not checked: a hardware
    file's COMPUTE_DTYPE is legitimately unused by a command that builds no model from gin.)"""
    defined = {b.split("=", 1)[0].strip() for b in bindings if "=" in b}
    defined = {name for name in defined if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)}
    used = set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)", gin.config_str()))
    unused = sorted(defined - used)
    if unused:
        name = unused[0]
        close = difflib.get_close_matches(name, sorted(used), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else (
            f" Macros in use: {', '.join(sorted(used))}." if used else "")
        raise GinConfigError(f"the gin macro {name} is bound but nothing uses it.{hint}")


# Packages that only the `data` extra installs (tasks and the seqio input pipeline).
DATA_EXTRA = ("tensorflow", "tensorflow_datasets", "tensorflow_text", "seqio", "t5")


def explain_import(error: ImportError) -> str:
    named = re.search(r"No module named '([^']+)'", str(error))
    missing = (error.name or (named.group(1) if named else "")).split(".")[0]
    if missing in DATA_EXTRA:
        return (f"a gin file imports a module that needs {missing}, which is not installed: "
                "tasks, `data prepare` and `eval` need the `data` extra (`pip install "
                "'flan-jax[data]'`, or `make install`).")
    return f"a gin file's import failed: {error}"


def parse_command(prog: str, argv: Sequence[str], default_files: Sequence[str] = (),
                  description: str | None = None, require_files: bool = False,
                  add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                  parse: bool = True, imports: Imports | None = None) -> argparse.Namespace:
    """The flags of a gin-configured command: parses `argv` (`--gin_file`, `--gin.X=V`,
    `--gin_search_paths` and whatever `add_arguments` adds), then (with `parse`) the gin config,
    calling `imports` before gin is locked (see `parse_gin`).

    Returns the argparse namespace with `gin_bindings` added. Raises GinConfigError for a bad
    file or binding; argparse exits itself on bad flags and `--help`."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_gin_flags(parser)
    if add_arguments is not None:
        add_arguments(parser)
    bindings, rest = split_gin_bindings(argv)
    args = parser.parse_args(rest)
    files = list(args.gin_file) or list(default_files)
    if require_files and not args.gin_file:
        parser.error("give at least one --gin_file (e.g. --gin_file=runs/demo.gin)")
    if parse:
        parse_gin(files, bindings, args.gin_search_paths, imports=imports)
    args.gin_bindings = bindings
    return args


def run_command(prog: str, argv: Sequence[str], run: Callable[[argparse.Namespace], Any],
                check: Callable[[argparse.Namespace], None] | None = None,
                distributed: bool = True, user_errors: tuple = (),
                **parse_args) -> int:
    """The scaffold every gin-configured command shares: parse the flags and the gin config
    (`parse_command(prog, argv, **parse_args)`, then `check(args)`, which may raise
    GinConfigError), print a bad config in one line (exit 2), initialise multi-host JAX (with
    `distributed`), then `run(args)` (its return value, or 0, is the exit status). A UserError,
    KeyError (an unknown name), MeshError or one of `user_errors` is printed in one line, exit 2;
    a TrainingError (the run stopped, e.g. a NaN loss) in one line, exit 1."""
    from flan_jax import partitioning
    from flan_jax.errors import TrainingError, UserError, message

    try:
        args = parse_command(prog, argv, **parse_args)
        if check is not None:
            check(args)
    except GinConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    try:
        if distributed:
            partitioning.initialize_distributed()
        return int(run(args) or 0)
    except TrainingError as e:
        print(f"{prog}: {message(e)}", file=sys.stderr)
        return 1
    except (UserError, KeyError, partitioning.MeshError, *user_errors) as e:
        print(f"{prog}: {message(e)}", file=sys.stderr)
        return 2


def is_bound(configurable: str) -> bool:
    """Whether the parsed config binds any parameter of `configurable` (its short name)."""
    try:
        return bool(gin.get_bindings(configurable, resolve_references=False))
    except ValueError:  # not registered (the module that defines it is not imported)
        return False
