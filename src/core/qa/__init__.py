"""Training-set generation from a document (``palier generate-training``), pure Python.

``parse_document`` reads markdown or JSON Lines into sections (a name, a definition, key facts);
``generate_training`` turns them into chat examples with one of three methods:

- ``rule-based``: one canonical question per definition and per key fact;
- ``augmented``: every paraphrase template for each of them (several phrasings per fact);
- ``llm-based``: an OpenAI-compatible chat endpoint writes the pairs (``core.qa.llm_generation``).
"""

from core.qa.document import QAPair, Section, parse_document
from core.qa.generate import METHODS, GenerationReport, generate_training, pairs_for

__all__ = ["METHODS", "GenerationReport", "QAPair", "Section", "generate_training", "pairs_for", "parse_document"]
