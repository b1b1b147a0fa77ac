"""core.progress_lines: which progress lines a pipe or a log gets, and what they say."""

from core.progress_lines import ProgressLines, due, elapsed


def test_due_at_first_news_each_quarter_and_after_a_silent_minute():
    assert due(None, None, 0.01, 0.0)
    assert not due(0.0, 0.0, 0.24, 10.0)
    assert due(0.0, 0.0, 0.25, 10.0)
    assert not due(0.25, 10.0, 0.49, 20.0)
    assert due(0.30, 10.0, 0.50, 20.0)
    assert due(0.75, 10.0, 1.0, 11.0)
    assert not due(1.0, 10.0, 1.0, 69.9)
    assert due(0.26, 10.0, 0.27, 70.0)  # no new quarter, but the last line is a minute old


def test_elapsed_reads_as_hours_minutes_seconds():
    assert [elapsed(s) for s in (0, 7.9, 65, 3600 + 62)] == ["0s", "7s", "1m05s", "1h01m02s"]


def _progress(done, total, t):
    return {"type": "progress", "phase": "train", "done": done, "total": total, "t": t}


def test_a_phase_gives_its_start_each_quarter_and_its_end():
    lines = ProgressLines("demo/general")
    printed = lines.feed({"type": "phase", "phase": "train", "status": "start", "t": 100.0})
    for step in range(1, 41):
        printed += lines.feed(_progress(step, 40, 100.0 + step))
    printed += lines.feed({"type": "phase", "phase": "train", "status": "end", "t": 142.0})
    printed += lines.feed({"type": "metric", "step": 40, "metrics": {"loss": 1.0}, "t": 142.0})
    assert printed == ["demo/general train: started",
                       "demo/general train: 10/40 (25%), 10s elapsed",
                       "demo/general train: 20/40 (50%), 20s elapsed",
                       "demo/general train: 30/40 (75%), 30s elapsed",
                       "demo/general train: 40/40 (100%), 40s elapsed",
                       "demo/general train: done 40/40 (100%) in 42s"]


def test_a_slow_phase_prints_at_least_once_a_minute():
    lines = ProgressLines("fr/medical")
    lines.feed({"type": "phase", "phase": "train", "status": "start", "t": 0.0})
    assert lines.feed(_progress(1, 100, 30.0)) == []
    assert lines.feed(_progress(2, 100, 61.0)) == ["fr/medical train: 2/100 (2%), 1m01s elapsed"]
    assert lines.tick(100.0) == []
    assert lines.tick(121.0) == ["fr/medical train: 2/100 (2%), 2m01s elapsed"]
    lines.feed({"type": "phase", "phase": "save", "status": "start", "t": 130.0})
    assert lines.tick(195.0) == ["fr/medical train: 2/100 (2%), 3m15s elapsed", "fr/medical save: 1m05s elapsed"]


def test_progress_without_its_phase_start_still_prints_at_once():
    lines = ProgressLines("demo/general")  # `palier watch` attached while the phase ran
    assert lines.feed(_progress(3, 40, 50.0)) == ["demo/general train: 3/40 (8%), 0s elapsed"]
