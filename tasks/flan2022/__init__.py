"""The Flan 2022 collection (Longpre et al. 2023, "The Flan Collection"; the data of Flan-T5).

`flan2022_submix` mixes five submixtures: Flan 2021 0.40, T0-SF 0.32, NIv2 0.20, CoT 0.05,
Dialog 0.03 (`mixing.SUBMIXTURES`). Each dataset is rendered in its submixture's template
styles (`styles`: zs_opt, zs_noopt, fs_opt, fs_noopt, cot, fs_cot) as one task per style,
`flan2022_{dataset}_{style}`, at rate min(cap, the release's example count).

How a submixture registers its tasks: a module of this package, named in its
`mixing.SUBMIXTURES[sub].modules`, exposes `ENTRIES: list[mixing.Entry]`, each a
`DatasetSpec` (collection "flan2022", any source `tasks.spec` knows, its templates), the
release's example counts (zero-shot, few-shot) and whether it is input-inverted. Nothing else is
edited: importing this package loads every existing module and registers the collection.
`flan2022_submix` is not built while any submixture is empty (asking for it says which).
T0-SF (`t0.py`) and NIv2 (`niv2.py`) read files (`downloads.py`, `readers.py`); the held-out
benchmarks MMLU and BBH (`heldout.py`: `mmlu_5shot`, `bbh_3shot`, `bbh_cot_3shot`) are
evaluation tasks outside every training mixture.

Per submixture: `flan2022_{sub}_submix` (styles mixed equally) over
`flan2022_{sub}_submix_{style}`. Data: `flan-jax data prepare flan2022_{sub}_submix` fetches
what one submixture reads (TFDS datasets, the CoT files); `flan-jax data cache` builds any one
of them on its own. Differences from the release: DEVIATIONS.md.

Vocabulary: FLAN 2021's (`flan2021.flan_vocabulary.spm_path`); after binding it in gin later
than `import tasks`, call `register(replace=True)` here too.
"""

from __future__ import annotations

from tasks.flan2021.common import flan_vocabulary
from tasks.flan2022 import heldout, mixing


def register(vocabulary=None, replace: bool = False):
    """Registers the collection and its held-out benchmarks; returns its CollectionInfo."""
    vocabulary = vocabulary if vocabulary is not None else flan_vocabulary()
    groups = {name: mixing.load_entries(sub) for name, sub in mixing.SUBMIXTURES.items()}
    info = mixing.register(groups, vocabulary, replace=replace)
    heldout.register(vocabulary)  # after: replacing the collection forgets its tasks
    return info


INFO = register()
