"""What flan-jax reads of gin's own state that gin-config has no public function for.

gin keeps its registered configurables, its parsed bindings and its file search path in private
module globals. The command scaffold (flan_jax/config.py) needs three reads of them: every
configurable and its parameters (to suggest a close match for a misspelled binding), the parsed
bindings (to find a macro nothing references, and whether a configurable is bound at all), and
the search path (put first, so gin does not log an error for every place it looks in vain).
They are here, in one module, so that a gin release that renames them breaks one file, and
tests/test_gin_registry.py says so at once.
"""

from __future__ import annotations

import inspect
from typing import Iterator

import gin.config


def configurables() -> Iterator[tuple[str, list[str]]]:
    """(selector, its parameter names) of every registered configurable; parameters are empty
    where the signature cannot be read."""
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001
        try:
            params = list(inspect.signature(configurable.wrapped).parameters)
        except (TypeError, ValueError):
            params = []
        yield selector, params


def parsed_bindings() -> dict[str, dict]:
    """The parsed config: selector -> {parameter: value} (scopes dropped, merged)."""
    merged: dict[str, dict] = {}
    for (_, selector), bindings in gin.config._CONFIG.items():  # noqa: SLF001
        merged.setdefault(selector, {}).update(bindings)
    return merged


def search_path_first(paths: list[str]) -> None:
    """Makes `paths`, in order, the first places gin looks for included files."""
    prefixes = gin.config._LOCATION_PREFIXES  # noqa: SLF001
    prefixes[:] = [*paths] + [p for p in prefixes if p not in paths]
