"""FLAN 2021 translation cluster (tasks/flan2021/translation.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("translation", globals())
