"""FLAN 2021 reading comprehension cluster (tasks/flan2021/reading_comprehension.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("reading_comprehension", globals())
