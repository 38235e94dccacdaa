"""flan-jax: FLAN-style instruction tuning and evaluation in JAX/Flax."""

import pathlib

__version__ = "0.1.0"

# The repository's gin/ folder, put on gin's search path by `flan_jax.config`.
GIN_DIR = pathlib.Path(__file__).resolve().parent.parent / "gin"
