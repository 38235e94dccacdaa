"""FLAN 2021 summarization cluster (tasks/flan2021/summarization.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("summarization", globals())
