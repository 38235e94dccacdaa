"""flan_jax/gin_registry.py: the reads of gin's private state still work with the installed
gin-config (a release that renames them fails here, not in a user's run)."""

import gin
import gin.config

from flan_jax import gin_registry


@gin.configurable(module="test_gin_registry")
def _shape(width: int = 1, height: int = 2):
    return width, height


def test_configurables_lists_each_registered_function_with_its_parameters():
    found = dict(gin_registry.configurables())
    assert found["test_gin_registry._shape"] == ["width", "height"]


def test_parsed_bindings_merges_scopes_per_selector():
    gin.clear_config()
    try:
        gin.parse_config(["_shape.width = 3", "tall/_shape.height = 9"])
        assert gin_registry.parsed_bindings()["test_gin_registry._shape"] == {
            "width": 3, "height": 9}
    finally:
        gin.clear_config()
    assert "test_gin_registry._shape" not in gin_registry.parsed_bindings()


def test_search_path_first_puts_the_paths_first_once_each(tmp_path):
    before = list(gin.config._LOCATION_PREFIXES)  # noqa: SLF001
    try:
        gin_registry.search_path_first([str(tmp_path), "a"])
        gin_registry.search_path_first([str(tmp_path), "a"])
        prefixes = gin.config._LOCATION_PREFIXES  # noqa: SLF001
        assert prefixes[:2] == [str(tmp_path), "a"] and prefixes.count("a") == 1
        (tmp_path / "x.gin").write_text("_shape.width = 5\n")
        gin.clear_config()
        gin.parse_config_file("x.gin")
        assert _shape() == (5, 2)
    finally:
        gin.clear_config()
        gin.config._LOCATION_PREFIXES[:] = before  # noqa: SLF001
