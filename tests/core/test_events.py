import json

from core.events import EventLog, EventTail


def test_tail_reads_only_complete_new_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    tail = EventTail(path)
    assert tail.read_new() == []
    log.metric(1, {"loss": 2.0})
    log.set_phase("train")
    got = tail.read_new()
    assert [e["type"] for e in got] == ["metric", "phase"] and got[0]["metrics"] == {"loss": 2.0}
    with path.open("a") as fh:
        fh.write('{"type": "log", "message": "half')  # a writer mid-line
    assert tail.read_new() == []
    with path.open("a") as fh:
        fh.write(' done"}\n')
    assert tail.read_new()[0]["message"] == "half done"
    log.close()


def test_heartbeat_thread_beats(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.set_phase("train")
    log.start_heartbeat(every_s=0.05)
    import time

    time.sleep(0.3)
    log.close()
    beats = [json.loads(line) for line in path.read_text().splitlines() if '"heartbeat"' in line]
    assert len(beats) >= 3 and all(b["phase"] == "train" for b in beats[1:])


def test_an_event_after_a_torn_line_starts_a_line_of_its_own(tmp_path):
    from core.events import EventLog, read_all

    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1, "type": "phase", "phase": "train", "status": "start"}\n{"t": 2, "type": "err', encoding="utf-8")
    EventLog(path).emit("heartbeat", phase="start")  # a rerun after a full disk cut the last line short
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"t": 2, "type": "err' and json.loads(lines[2])["type"] == "heartbeat"
    assert [e["type"] for e in read_all(path)] == ["phase", "heartbeat"]
