"""Downloaded outputs are checked: an HTTP error page saved as a file must not pass."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from core.backends.errors import RemoteOutputInvalid
from core.backends.outputs import output_problems, validate_outputs

ERROR_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><title>Kaggle: 404 Not Found</title></head><body>Something went wrong</body></html>"""


def complete_outputs(folder):
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    save_file({"w": torch.zeros(2)}, str(folder / "model" / "model.safetensors"))
    (folder / "metrics.json").write_text(json.dumps({"stage": "s"}))
    (folder / "meta.json").write_text(json.dumps({"status": "succeeded"}))
    (folder / "events.jsonl").write_text('{"type":"done"}\n{"type":"hal')  # killed mid-line: tolerated
    return folder


def test_real_outputs_pass(tmp_path):
    assert output_problems(complete_outputs(tmp_path), require_complete=True) == []


@pytest.mark.parametrize("name", ["metrics.json", "model/model.safetensors", "events.jsonl", "model/config.json"])
def test_an_html_error_page_in_place_of_an_output_is_caught(tmp_path, name):
    complete_outputs(tmp_path)
    (tmp_path / name).write_bytes(ERROR_PAGE)
    with pytest.raises(RemoteOutputInvalid, match=f"{name}: is an HTML page"):
        validate_outputs(tmp_path, require_complete=True, where="Kaggle kernel u/k")


def test_truncated_safetensors_and_broken_json_are_caught(tmp_path):
    complete_outputs(tmp_path)
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    (tmp_path / "meta.json").write_text("{not json")
    problems = output_problems(tmp_path, require_complete=True)
    assert any(p.startswith("model/model.safetensors: safetensors header length") for p in problems)
    assert any(p.startswith("meta.json: is not valid JSON") for p in problems)


def test_success_without_model_or_metrics_is_incomplete(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"status": "failed"}))
    problems = output_problems(tmp_path, require_complete=True)
    assert "metrics.json: missing although the job reported success" in problems
    assert any(p.startswith("model/config.json: missing") for p in problems)
    assert output_problems(tmp_path, require_complete=False) == []  # a failed stage's outputs are just logs
