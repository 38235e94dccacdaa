"""FLAN 2021 coreference cluster (tasks/flan2021/coreference.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("coreference", globals())
