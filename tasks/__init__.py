"""SeqIO registrations: `import tasks` registers every built-in collection.

The offline synthetic suite (collection "synthetic") is always registered; FLAN 2021
(`tasks.flan2021`) and Flan 2022 (`tasks.flan2022`, which builds on it) are registered when
their packages are present. Registration builds task objects
only: no dataset is read or generated until a task's dataset is requested.

    tasks.names        the naming scheme of every task and mixture (pure strings)
    tasks.catalogue    what the library reads: task/collection info, lookups, unknown names
    tasks.registry     registration (register_collection), built on
    tasks.validation   spec checks, tasks.sources (raw records), tasks.preprocessors (rendering)
"""

import importlib
import importlib.util

from tasks import catalogue, miniworld, names, registry, synthetic  # noqa: F401

synthetic.register()
miniworld.register()

for _collection in ("tasks.flan2021", "tasks.flan2022"):
    if importlib.util.find_spec(_collection) is not None:
        importlib.import_module(_collection)
