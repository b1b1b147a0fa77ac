"""Relaying a remote job's events and log into the local folder the orchestrator tails."""

from __future__ import annotations

from core.backends.relay import RelayState, StreamRouter, append_remote_tail, merge_final_events
from core.events import EventTail


def test_append_only_whole_event_lines_and_remember_the_offset(tmp_path):
    local, state = tmp_path / "events.jsonl", RelayState(tmp_path, {"events": 0})
    append_remote_tail(local, b'{"a":1}\n{"b":', state, "events", whole_lines=True)
    assert local.read_bytes() == b'{"a":1}\n' and state.get("events") == 8
    append_remote_tail(local, b'{"a":1}\n{"b":2}\n', state, "events", whole_lines=True)
    assert local.read_bytes() == b'{"a":1}\n{"b":2}\n'
    # a restarted orchestrator reads the saved offset and does not duplicate
    again = RelayState(tmp_path)
    assert append_remote_tail(local, b'{"a":1}\n{"b":2}\n', again, "events", whole_lines=True) == 0


def test_relay_starts_after_what_a_previous_attempt_wrote(tmp_path):
    old = b'{"old":1}\n'
    state = RelayState(tmp_path, {"events": len(old)})  # remote size when this attempt was submitted
    append_remote_tail(tmp_path / "e.jsonl", old + b'{"new":1}\n', state, "events", whole_lines=True)
    assert (tmp_path / "e.jsonl").read_bytes() == b'{"new":1}\n'


def test_final_merge_keeps_what_a_tailer_already_read(tmp_path):
    local = tmp_path / "events.jsonl"
    local.write_bytes(b'{"x":1}\n')
    tail = EventTail(local)
    assert len(tail.read_new()) == 1
    merge_final_events(local, b'{"x":1}\n{"x":2}\n')
    assert [e["x"] for e in tail.read_new()] == [2]
    # a live relay that lost or reordered lines: append only what is missing
    merge_final_events(local, b'{"x":0}\n{"x":1}\n{"x":2}\n')
    assert [e["x"] for e in tail.read_new()] == [0]


def test_stream_router_splits_events_from_log_across_arbitrary_chunks(tmp_path):
    state = RelayState(tmp_path)
    router = StreamRouter(tmp_path, state)
    for chunk in ["step 1\nPALIER_EVENT {\"ty", "pe\": \"metric\"}\nstep", " 2\n"]:
        router.feed(chunk)
    assert (tmp_path / "events.jsonl").read_text() == '{"type": "metric"}\n'
    assert (tmp_path / "stage.log").read_text() == "step 1\nstep 2\n"
    # the service replays the stream from its start after a reconnect
    replay = StreamRouter(tmp_path, RelayState(tmp_path))
    for chunk in ["step 1\nPALIER_EVENT {\"ty", "pe\": \"metric\"}\nstep", " 2\n", "PALIER_EVENT {\"n\": 2}\n"]:
        replay.feed(chunk)
    assert (tmp_path / "events.jsonl").read_text() == '{"type": "metric"}\n{"n": 2}\n'
