"""The marker guard (tests/support/speed_markers.py) catches a test that uses a model or server
fixture, directly or through another fixture, without its speed marker, and nothing else."""

import pytest

from speed_markers import MODEL_FIXTURES, SERVER_FIXTURES, marker_problems


class Collected:
    """What the guard reads from a collected test: its id, fixture closure and markers."""

    def __init__(self, fixtures: list[str], marks: list[str]):
        self.nodeid, self.fixturenames = f"t[{','.join(fixtures)}|{','.join(marks)}]", fixtures
        self.marks = [getattr(pytest.mark, name) for name in marks]

    def iter_markers(self):
        return (decorator.mark for decorator in self.marks)


def test_the_fixtures_every_folder_sees_are_registered():
    # The others register when their conftest or test module is imported, before the guard runs.
    assert "tiny_whisper" in MODEL_FIXTURES and "services" in SERVER_FIXTURES


@pytest.mark.parametrize("fixtures,marks,problem", [
    (["tmp_path"], [], None),
    (["tiny_whisper"], ["integration"], None),
    (["tiny_whisper"], ["e2e"], None),  # end-to-end tests run models too
    (["services", "tiny_whisper"], ["e2e"], None),
    (["tiny_whisper"], [], "not marked integration"),
    (["tiny_run", "services"], [], "not marked e2e"),  # the closure holds the server fixture
    (["services"], ["integration"], "not marked e2e"),
])
def test_a_missing_marker_is_reported_by_test_and_fixture(fixtures, marks, problem):
    found = marker_problems([Collected(fixtures, marks)])
    if problem is None:
        assert found == []
    else:
        [line] = found
        assert problem in line and line.startswith("t[") and f"'{fixtures[-1]}'" in line
