"""FLAN 2021 reading comprehension with commonsense cluster (tasks/flan2021/rc_commonsense.py), on TFDS mock data."""

from tests.tasks import flan_checks as fc

fc.cluster_tests("rc_commonsense", globals())
