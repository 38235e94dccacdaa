"""SeqIO registrations: `import tasks` registers every built-in collection.

The offline synthetic suite (collection "synthetic") is always registered; FLAN 2021
(`tasks.flan2021`) is registered when that package is present. Registration builds task objects
only: no dataset is read or generated until a task's dataset is requested. The machinery lives in
`tasks.registry` (see its docstring for the API and the naming scheme).
"""

import importlib
import importlib.util

from tasks import registry, synthetic  # noqa: F401

synthetic.register()

if importlib.util.find_spec("tasks.flan2021") is not None:
    importlib.import_module("tasks.flan2021")
