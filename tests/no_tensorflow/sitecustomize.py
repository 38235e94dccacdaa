"""Put this folder first on PYTHONPATH to run Python as on an accelerator image: TensorFlow,
TFDS, seqio and t5 look absent (`importlib.util.find_spec` finds nothing; importing raises
ModuleNotFoundError), as they would if they were not installed."""

import importlib.abc
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets", "tensorflow_text", "seqio", "t5")


class _Hiding(importlib.abc.MetaPathFinder):
    """Wraps a finder so that it finds none of the BLOCKED packages."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED or not hasattr(self._finder, "find_spec"):
            return None
        return self._finder.find_spec(name, path, target)

    def invalidate_caches(self):
        if hasattr(self._finder, "invalidate_caches"):
            self._finder.invalidate_caches()


sys.meta_path[:] = [_Hiding(f) for f in sys.meta_path]
