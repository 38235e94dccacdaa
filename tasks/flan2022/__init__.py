"""The Flan 2022 collection (google-research/FLAN `flan/v2`).

Part 2 (this package's file-backed sources): T0-SF and NIv2 training submixtures, the MMLU and
BBH held-out benchmarks; see `tasks.flan2022.file_tasks` and DEVIATIONS.md.
"""

from tasks.flan2022 import file_tasks

file_tasks.register()
