"""Dataset formats read by the token_cls and sft families (pure: JSON in, typed examples out).

Every reader validates the whole file and raises ``DatasetError`` listing each bad line with its
number and the reason, instead of a bare "cannot read the dataset".
"""

from core.formats.jsonl import DatasetError, read_jsonl, write_jsonl

__all__ = ["DatasetError", "read_jsonl", "write_jsonl"]
