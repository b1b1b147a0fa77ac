"""SFT through the real stage runner on a tiny Llama (TRL SFTTrainer + LoRA, one step per
stage), then the query / export --to merged|gguf / generate-training / check-dataset commands."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from palier.cli import app
from tiny_families import CHAT_ROWS, DOCUMENT, ScriptedChat, run_pipeline_stages, sft_pipeline, write_jsonl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_chat, families_cache):
    root = tmp_path_factory.mktemp("sft")
    train = write_jsonl(root / "train.jsonl", CHAT_ROWS * 2)
    test = write_jsonl(root / "test.jsonl", CHAT_ROWS)
    pipeline = sft_pipeline(root / "p.yaml", str(tiny_chat), train, test)
    out = root / "runs"
    results = run_pipeline_stages(pipeline, out, families_cache)
    return out, results


@pytest.fixture
def cli():
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)


def test_stage_metrics_and_outputs(sft_run, tiny_chat):
    out, (facts, more) = sft_run
    ev = facts.eval("test")
    for key in ("token_f1", "exact_match", "eval_loss", "mean_token_accuracy"):
        assert key in ev.baseline and key in ev.final
    assert ev.final["eval_loss"] != ev.baseline["eval_loss"]
    assert facts.train["global_step"] == 1 and "train_loss" in facts.train and "mean_token_accuracy" in facts.train
    assert 0 < facts.train["trainable_share"] < 1

    model, adapter = out / "facts" / "model", out / "facts" / "adapter"
    assert (model / "model.safetensors").is_file() and (model / "tokenizer.json").is_file()
    meta = json.loads((model / "palier_sft.json").read_text())
    assert meta["merged"] is True and meta["lora"]["r"] == 2
    assert meta["system_prompt"] == "Tu réponds sur le catalogue."
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 2 and sorted(config["target_modules"]) == ["q_proj", "v_proj"]

    # the LoRA update is merged into the saved weights
    base = load_file(str(tiny_chat / "model.safetensors"))
    merged = load_file(str(model / "model.safetensors"))
    key = next(k for k in merged if k.endswith("q_proj.weight"))
    assert not torch.equal(base[key], merged[key])
    assert torch.equal(base["model.embed_tokens.weight"], merged["model.embed_tokens.weight"])

    rows = [json.loads(line) for line in (out / "facts" / "predictions" / "final_test.jsonl").read_text().splitlines()]
    assert {"question", "reference", "prediction", "exact_match", "token_f1"} <= set(rows[0])

    # stage 2 fine-tunes stage 1's merged output, not the original
    assert more.base_model == str(model)
    assert more.eval("test").baseline["eval_loss"] == pytest.approx(ev.final["eval_loss"], rel=1e-4)


def test_invalid_dataset_fails_the_stage_with_line_numbers(tmp_path, tiny_chat, families_cache):
    from core.formats.jsonl import DatasetError

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CHAT_ROWS[0]) + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n",
                   encoding="utf-8")
    pipeline = sft_pipeline(tmp_path / "p.yaml", str(tiny_chat), bad, bad, stages=1)
    with pytest.raises(DatasetError, match="line 2: the last message is 'user'"):
        run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    meta = json.loads((tmp_path / "runs" / "facts" / "meta.json").read_text())
    assert meta["status"] == "failed" and "line 2" in meta["error"]


def test_query_one_question_and_interactive(sft_run, cli):
    out, _ = sft_run
    result = cli("query", out / "facts" / "model", "Qui héberge ORCHIS ?", "--temperature", "0", "--max-tokens", "3")
    assert result.exit_code == 0 and result.output.endswith("\n")  # a random tiny model may answer nothing
    result = cli("query", out / "facts" / "adapter", "--temperature", "0.7", "--max-tokens", "3",
                 input="Qu'est-ce que ORCHIS ?\n\nexit\n")
    assert result.exit_code == 0 and result.output.count("[ANSWER]") == 1
    result = cli("query", out / "nope", "q")
    assert result.exit_code == 2 and "no such model folder" in result.output


def test_export_merge_and_gguf(sft_run, cli, tmp_path, monkeypatch):
    out, _ = sft_run
    target = tmp_path / "merged"
    result = cli("export", out / "facts" / "adapter", "--to", "merged", "--out", target)
    assert result.exit_code == 0, result.output
    merged = load_file(str(target / "model.safetensors"))
    stage = load_file(str(out / "facts" / "model" / "model.safetensors"))
    assert all(torch.allclose(merged[k], stage[k], atol=1e-6) for k in stage)

    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = cli("export", out / "facts" / "model", "--to", "gguf")
    assert result.exit_code == 2 and "convert_hf_to_gguf.py" in result.output and "LLAMA_CPP_DIR" in result.output

    fake = tmp_path / "llama.cpp"
    fake.mkdir()
    (fake / "convert_hf_to_gguf.py").write_text(
        "import sys\nargs = sys.argv\nopen(args[args.index('--outfile') + 1], 'wb').write(b'GGUF')\n", encoding="utf-8")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(fake))
    result = cli("export", out / "facts" / "model", "--to", "gguf", "--out", tmp_path / "g")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g" / "model-f16.gguf").read_bytes() == b"GGUF"
    assert cli("export", out / "facts" / "model").exit_code == 2


def test_generate_training_and_check_dataset_commands(cli, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(DOCUMENT, encoding="utf-8")
    result = cli("generate-training", doc, "--output", tmp_path / "ds.jsonl", "--method", "augmented", "--split")
    assert result.exit_code == 0, result.output
    for part in ("train", "val", "test"):
        assert f"{part}:" in result.output
    assert (tmp_path / "ds_train.jsonl").is_file()
    result = cli("check-dataset", tmp_path / "ds_train.jsonl")
    assert result.exit_code == 0 and "OK" in result.output and "(messages)" in result.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CHAT_ROWS[0]) + "\n{oops\n" + json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n",
                   encoding="utf-8")
    result = cli("check-dataset", bad)
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in result.output and "line 3: messages[0].role is 'bot'" in result.output

    result = cli("generate-training", doc, "--output", tmp_path / "x.jsonl", "--method", "llm-based")
    assert result.exit_code == 2 and "OPENAI_BASE_URL" in result.output


def test_generate_training_llm_based_cli_against_scripted_server(cli, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(DOCUMENT, encoding="utf-8")
    reply = '[{"question": "Q ?", "answer": "R."}]'
    with ScriptedChat([reply] * 3) as server:
        result = cli("generate-training", doc, "-o", tmp_path / "llm.jsonl", "--method", "llm-based",
                     "--llm-base-url", server.base_url, "--llm-model", "m", "--count", "3")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "llm.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1  # three identical pairs, deduplicated
    assert json.loads(lines[0])["messages"][-1] == {"role": "assistant", "content": "R."}


def test_rerun_resumes_from_checkpoint(tmp_path, tiny_chat, families_cache):
    data = write_jsonl(tmp_path / "d.jsonl", CHAT_ROWS)
    pipeline = sft_pipeline(tmp_path / "p.yaml", str(tiny_chat), data, data, stages=1)
    run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    log = (tmp_path / "runs" / "facts" / "events.jsonl").read_text()
    assert "baseline already measured" in log and "resuming training from checkpoint-1" in log
