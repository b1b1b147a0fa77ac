"""Environment facts (presence only, never values) and the redaction used everywhere."""

from __future__ import annotations

import json

from agent.base.facts import EnvFacts, cached_repo_ids, collect_env_facts, config_paths, credential_presence
from agent.base.redact import MASK, redact, redact_obj


def test_credentials_are_presence_only(tmp_path):
    home = tmp_path
    assert credential_presence({}, home) == {"modal": False, "kaggle": False, "huggingface": False, "openai": False}
    env = {"MODAL_TOKEN_ID": "ak-123", "MODAL_TOKEN_SECRET": "as-456", "KAGGLE_API_TOKEN": "KGAT_x", "HF_TOKEN": "hf_x"}
    assert credential_presence(env, home) == {"modal": True, "kaggle": True, "huggingface": True, "openai": False}
    assert credential_presence({"MODAL_TOKEN_ID": "ak-only-id"}, home)["modal"] is False


def test_credential_files_are_found(tmp_path):
    (tmp_path / ".modal.toml").write_text("[default]\n", encoding="utf-8")
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "access_token").write_text("x", encoding="utf-8")
    found = credential_presence({}, tmp_path)
    assert found["modal"] and found["kaggle"]
    (tmp_path / ".kaggle" / "access_token").unlink()
    (tmp_path / ".kaggle" / "kaggle.json").write_text("{}", encoding="utf-8")
    assert credential_presence({}, tmp_path)["kaggle"]
    assert credential_presence({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, tmp_path / "empty")["kaggle"]


def test_hf_cache_scan(tmp_path):
    for name in ("models--openai--whisper-large-v3", "datasets--facebook--multilingual_librispeech", ".locks"):
        (tmp_path / name).mkdir()
    assert cached_repo_ids(tmp_path) == ["facebook/multilingual_librispeech", "openai/whisper-large-v3"]
    assert cached_repo_ids(tmp_path / "missing") == []


def test_collect_env_facts_reads_this_machine(make_config_, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    (tmp_path / "models--openai--whisper-large-v3").mkdir()
    monkeypatch.setenv("HF_TOKEN", "hf_SecretValueThatMustNotAppear1234")
    facts = collect_env_facts(make_config_())
    assert facts.kernel and facts.libraries["transformers"] and facts.libraries["mlflow"]
    assert facts.hf_offline and facts.network is None and facts.hf_cached == ["openai/whisper-large-v3"]
    assert facts.credentials["huggingface"] is True
    assert facts.local_paths == {"openai/whisper-large-v3": False, "data/en_guard.csv": False}
    assert "SecretValue" not in facts.model_dump_json()


def test_config_paths_lists_local_data(make_config_):
    assert config_paths(make_config_()) == ["openai/whisper-large-v3", "data/en_guard.csv"]
    assert config_paths(None) == []


def test_facts_are_injectable():
    facts = EnvFacts(kernel="4.4.0", gpu_name="NVIDIA H200", cuda_available=True)
    assert facts.has_library("transformers") is False and facts.kernel == "4.4.0"


def test_redact_shapes_and_env_values(monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef0123456789abcdef")
    text = ("key sk-proj-AbCdEfGhIjKlMnOpQrSt and hf_AbCdEfGhIjKlMnOpQrStUv12 "
            "modal ak-AbCdEfGhIjKlMnOpQr / as-AbCdEfGhIjKlMnOpQr "
            "kaggle 0123456789abcdef0123456789abcdef url https://user:pa55word@mlflow.example/api "
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload "
            'HF_TOKEN=whatever-value-123 {"api_key": "abcdefgh123"}')
    out = redact(text)
    for secret in ("sk-proj", "hf_AbCd", "ak-AbCd", "as-AbCd", "0123456789abcdef0123456789abcdef", "pa55word",
                   "eyJhbGci", "whatever-value-123", "abcdefgh123"):
        assert secret not in out, secret
    assert out.count(MASK) >= 9


def test_redact_keeps_ordinary_text():
    text = "palier.stage_key=3f2a9c1d0e5b7a68 eos_token_id: 50257 max_new_tokens=255 WER 0.098 run 642ca2514a5e4ffd"
    assert redact(text) == text


def test_redact_obj_walks_structures(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdefghij")
    data = {"a": ["sk-live-0123456789abcdefghij", {"b": "token=abcdefghij"}], "n": 3}
    out = redact_obj(data)
    assert "sk-live" not in json.dumps(out) and out["n"] == 3
