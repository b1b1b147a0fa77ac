"""Which local files a stage needs remotely, their digests, and the relocated spec."""

from __future__ import annotations

import csv
import io

import pytest

from core.backends.errors import ShippingError
from core.backends.shipping import RemoteOrigin, local_inputs, relocate, remote_base_model, system_packages


def by_role(inputs):
    return {i.role: i for i in inputs}


def test_csv_manifest_ships_with_every_audio_file_it_references(make_spec, local_data):
    inputs = by_role(local_inputs(make_spec()))
    train = inputs["train"]
    dests = sorted(f.dest for f in train.files)
    assert dests[0] == "audio/_outside/" + dests[0].split("/")[2] + "/x.wav"
    assert dests[1:] == ["audio/clips/0.wav", "audio/clips/1.wav", "train.csv"]
    manifest = next(f for f in train.files if f.dest == "train.csv").content.decode()
    rows = list(csv.DictReader(io.StringIO(manifest)))
    assert [r["audio"] for r in rows][:2] == ["audio/clips/0.wav", "audio/clips/1.wav"]
    assert rows[2]["audio"].startswith("audio/_outside/") and [r["sentence"] for r in rows] == ["bonjour", "au revoir", "merci"]
    assert train.entry == "train.csv"  # the manifest keeps its name: record ids stay the same


def test_digest_is_stable_and_follows_content(make_spec, local_data):
    first = by_role(local_inputs(make_spec()))["train"].digest
    assert by_role(local_inputs(make_spec()))["train"].digest == first
    (local_data / "clips" / "1.wav").write_bytes(b"RIFF changed")
    assert by_role(local_inputs(make_spec()))["train"].digest != first


def test_relocate_rewrites_every_local_path_and_nothing_else(make_spec):
    spec = make_spec(lexicon=True)
    inputs = local_inputs(spec)
    remote = relocate(spec, inputs, lambda i: f"/vol/inputs/{i.digest}")
    roles = by_role(inputs)
    assert remote.stage.train.path == f"/vol/inputs/{roles['train'].digest}/train.csv"
    assert remote.stage.evals[0].data.path == f"/vol/inputs/{roles['eval:test'].digest}/test.csv"
    assert remote.stage.lexicon == f"/vol/inputs/{roles['lexicon'].digest}/lexicon.txt"
    assert remote.pipeline_file is None and remote.key == spec.key and remote.base_model == spec.base_model


def test_hub_and_generated_data_ship_nothing_but_generated_needs_espeak(make_spec):
    spec = make_spec(train={"kind": "generated", "generator": "french_speech", "params": {"pool": "stage", "count": 4}})
    assert [i.role for i in local_inputs(spec)] == ["eval:test"]
    assert system_packages(spec) == ["espeak-ng"]
    hub = make_spec(train={"kind": "hub", "id": "facebook/multilingual_librispeech", "config": "french"})
    assert system_packages(hub) == []


def test_local_base_model_folder_is_shipped_without_checkpoints(make_spec, tmp_path):
    model = tmp_path / "prev" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "checkpoints" / "c-1").mkdir(parents=True)
    (model / "checkpoints" / "c-1" / "big.bin").write_bytes(b"x")
    inputs = by_role(local_inputs(make_spec(base_model=str(model))))
    assert [f.dest for f in inputs["base_model"].files] == ["config.json"]


def test_output_fetched_from_a_backend_is_not_shipped_again(make_spec, tmp_path):
    out = tmp_path / "stage1"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    RemoteOrigin("modal", {"volume": "palier", "path": "runs/fr/00-general-abc"}).write(out)
    origin, rel = remote_base_model(make_spec(base_model=str(out / "model")), "modal")
    assert origin.location["path"] == "runs/fr/00-general-abc" and rel == "model"
    assert remote_base_model(make_spec(base_model=str(out / "model")), "kaggle") is None


def test_missing_files_and_unresolved_stage_refs_are_clear_errors(make_spec, local_data):
    (local_data / "clips" / "0.wav").unlink()
    with pytest.raises(ShippingError, match="0.wav.*audio file listed in train.csv"):
        local_inputs(make_spec())
    (local_data / "clips" / "0.wav").write_bytes(b"RIFF")
    with pytest.raises(ShippingError, match="orchestrator resolves"):
        local_inputs(make_spec(base_model="stage:general"))
