"""Build a tiny Llama-style chat model locally (no hub download): a byte-level BPE tokenizer
trained on given texts, a ChatML chat template, and a ``LlamaForCausalLM`` from a config.

Used by scripts/build_tiny_chat_model.py (the SFT demo's base model, shipped under models/)
and by the tests (a random-weight model with hidden size 16).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from core.stage.random_models import seeded, with_defaults

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


# The demo model's size; the tests pass smaller values.
DEFAULT_SIZE = {"hidden": 128, "layers": 4, "heads": 4, "intermediate": 352, "max_positions": 256}


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0, **size: int) -> LlamaForCausalLM:
    """A random-weight Llama (weights drawn after ``torch.manual_seed(seed)``); ``size``
    overrides any of ``DEFAULT_SIZE``."""
    size = with_defaults(DEFAULT_SIZE, size)
    eos, pad = tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(PAD)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=size["hidden"], intermediate_size=size["intermediate"],
                         num_hidden_layers=size["layers"], num_attention_heads=size["heads"],
                         num_key_value_heads=size["heads"], max_position_embeddings=size["max_positions"],
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos, pad_token_id=pad)
    model = seeded(seed, LlamaForCausalLM, config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, bos_token_id=None, do_sample=False)
    return model
