"""FLAN 2021 misc cluster (tasks/flan2021/misc.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("misc", globals())
