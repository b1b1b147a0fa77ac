"""Build a tiny Llama-style chat model locally (no hub download): a byte-level BPE tokenizer
trained on given texts, a ChatML chat template, and a ``LlamaForCausalLM`` from a config.

Used by scripts/build_tiny_chat_model.py (the SFT demo's base model, shipped under models/)
and by the tests (a random-weight model with hidden size 16).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
SPECIALS = [EOT, IM_START, IM_END, PAD]

# ChatML. The prompt rendered with add_generation_prompt=True is a token prefix of the prompt
# followed by the answer, which is what TRL's completion-only loss needs; <|im_end|> ends each
# turn and is the eos token, so a trained model stops after its answer.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD, bos_token=None, unk_token=None,
        additional_special_tokens=[EOT, IM_START],
    )
    wrapped.chat_template = CHATML_TEMPLATE
    wrapped.model_max_length = 512
    wrapped.padding_side = "right"
    return wrapped


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    intermediate: int = 352,
    max_positions: int = 256,
    seed: int = 0,
) -> LlamaForCausalLM:
    import torch

    torch.manual_seed(seed)
    eos, pad = tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(PAD)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, bos_token_id=None, do_sample=False)
    return model
