"""Put this folder first on PYTHONPATH to run Python as on an accelerator image: TensorFlow,
TFDS, seqio and t5 cannot be imported (any attempt raises ModuleNotFoundError)."""

import importlib.abc
import sys

BLOCKED = ("tensorflow", "tensorflow_datasets", "tensorflow_text", "seqio", "t5")


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: no TensorFlow here)",
                                      name=name)
        return None


sys.meta_path.insert(0, _Blocked())
