"""Progress output of long jobs when stderr is not a terminal (logs, CI, a pod's output)."""

from flan_jax import progress


def test_a_plain_line_at_most_every_interval_and_at_the_end(monkeypatch, capsys):
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: clock[0])
    line = progress.ProgressLine("infer rank", total=100, initial=10, every=30.0)
    line.update(20)  # no time has passed: nothing yet
    assert capsys.readouterr().err == ""
    clock[0] += 31
    line.update(10)  # 30 examples in 31 s since the start
    err = capsys.readouterr().err.splitlines()
    assert err == ["infer rank: 40/100 examples (40%), 1.0/s, ETA 1m02s"]
    clock[0] += 5
    line.update(5)  # within 30 s of the last line: quiet
    assert capsys.readouterr().err == ""
    line.close()
    assert capsys.readouterr().err.splitlines() == [
        "infer rank: 45/100 examples (45%), 1.0/s, ETA 0m56s"]


def test_other_processes_print_nothing(capsys):
    line = progress.ProgressLine("eval", total=5, enabled=False, every=0.0)
    line.update(5)
    line.close()
    assert capsys.readouterr().err == ""
