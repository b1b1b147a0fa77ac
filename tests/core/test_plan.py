from core.config import parse_pipeline
from core.plan import plan, upstream_of
from tests_helpers import minimal_pipeline


def test_each_stage_starts_from_previous_output_never_the_original():
    specs = plan(parse_pipeline(minimal_pipeline(stages=3)), code_version="v1")
    assert specs[0].base_model == "openai/whisper-tiny" and specs[0].upstream_stage is None
    assert [upstream_of(s.base_model) for s in specs[1:]] == ["s0", "s1"]
    assert [s.upstream_stage for s in specs] == [None, "s0", "s1"]
    assert all(s.base_model != "openai/whisper-tiny" for s in specs[1:])


def test_keys_chain_upstream_changes_downstream():
    base = plan(parse_pipeline(minimal_pipeline(stages=3)), code_version="v1")
    raw = minimal_pipeline(stages=3)
    raw["stages"][0]["training"] = {"learning_rate": 0.5}
    changed = plan(parse_pipeline(raw), code_version="v1")
    assert all(a.key != b.key for a, b in zip(base, changed))  # stage 0 changed -> all downstream keys change
    raw = minimal_pipeline(stages=3)
    raw["stages"][2]["training"] = {"learning_rate": 0.5}
    last_only = plan(parse_pipeline(raw), code_version="v1")
    assert [a.key == b.key for a, b in zip(base, last_only)] == [True, True, False]


def test_keys_depend_on_code_and_data():
    config = parse_pipeline(minimal_pipeline(stages=2))
    a = plan(config, code_version="v1")
    b = plan(config, code_version="v2")
    c = plan(config, code_version="v1", data_digest=lambda src: "other-data")
    assert a[0].key != b[0].key and a[0].key != c[0].key
    assert plan(config, code_version="v1")[1].key == a[1].key  # deterministic


def test_spec_roundtrip(tmp_path):
    spec = plan(parse_pipeline(minimal_pipeline(stages=1)), code_version="v1")[0]
    from core.contracts import StageSpec

    path = spec.write(tmp_path / "spec.json")
    assert StageSpec.read(path) == spec
