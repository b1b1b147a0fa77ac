"""Greedy Whisper decoding for evaluation, with the encoder run once and nothing wasted after.

What ``generate(num_beams=1)`` computes for short-form, no-timestamp transcription (the forced
prompt, ``suppress_tokens`` at every step, ``begin_suppress_tokens`` at the first), without its
per-step machinery, and with finished sequences dropped from the batch (and from the KV cache)
as soon as they emit end-of-text, so that one long transcript does not keep a whole batch of
finished ones decoding. On a CPU with 30 s windows the encoder is the floor; this loop keeps
decoding close to it. Used by ``AsrRecipe.transcribe``; tests check it gives ``generate``'s ids.
"""

from __future__ import annotations

import torch


def prompt_ids(generation_config, language: str | None, task: str = "transcribe") -> list[int]:
    """<|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|>, as ``generate`` forces it."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    prompt = [generation_config.decoder_start_token_id]
    if getattr(generation_config, "is_multilingual", True) and getattr(generation_config, "lang_to_id", None):
        if language:
            name = language.strip().strip("<|>").lower()
            code = name if name in LANGUAGES else TO_LANGUAGE_CODE.get(name)
            token = f"<|{code}|>"
            if token not in generation_config.lang_to_id:
                raise ValueError(f"language {language!r} is not one of this model's languages")
            prompt.append(generation_config.lang_to_id[token])
        prompt.append(generation_config.task_to_id[task])
    prompt.append(generation_config.no_timestamps_token_id)
    return prompt


@torch.inference_mode()
def greedy_transcribe_ids(model, features: torch.Tensor | None, prompt: list[int], max_new_tokens: int,
                          encoded: torch.Tensor | None = None) -> list[list[int]]:
    """Generated token ids (prompt excluded, end-of-text excluded) for a batch of log-Mel windows,
    or for the encoder's outputs on them when ``encoded`` is given (a frozen encoder's, cached)."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    whisper = model.get_base_model() if hasattr(model, "get_base_model") else model
    gen = whisper.generation_config
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, int) else gen.eos_token_id[0]
    vocab = whisper.config.vocab_size
    if encoded is None:
        encoded = whisper.model.encoder(features).last_hidden_state
    device = encoded.device
    always = torch.zeros(vocab, dtype=torch.bool, device=device)
    always[[t for t in (gen.suppress_tokens or []) if 0 <= t < vocab]] = True
    first = always.clone()
    first[[t for t in (gen.begin_suppress_tokens or []) if 0 <= t < vocab]] = True

    batch = encoded.shape[0]
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    tokens = torch.tensor([prompt] * batch, dtype=torch.long, device=device)
    alive = torch.arange(batch, device=device)  # original row of each row still decoding
    out: list[list[int]] = [[] for _ in range(batch)]
    for step in range(max_new_tokens):
        hidden = whisper.model.decoder(input_ids=tokens, encoder_hidden_states=encoded, past_key_values=cache,
                                       use_cache=True).last_hidden_state[:, -1]
        logits = whisper.proj_out(hidden).float()
        logits.masked_fill_(first if step == 0 else always, float("-inf"))
        next_tokens = logits.argmax(-1)
        finished = next_tokens == eos
        for row, token in zip(alive.tolist(), next_tokens.tolist()):
            if token != eos:
                out[row].append(token)
        if finished.all():
            break
        if finished.any():
            keep = (~finished).nonzero().squeeze(1)
            alive, next_tokens, encoded = alive[keep], next_tokens[keep], encoded[keep]
            cache.batch_select_indices(keep)
        tokens = next_tokens[:, None]
    return out
