"""SFT demo data: chat examples generated from a catalogue document, and the
fictional catalogue the demo's base model was pre-trained on.

``sft_catalogue`` (a ``kind: generated`` recipe) reads a markdown/JSONL document, generates
question/answer chat examples (rule-based, augmented or llm-based) and keeps one part of the
seeded ~80/10/10 split (``core.formats.messages.split_part``). The shipped demo documents are
data/catalogue/catalogue_facts.md (8 applications) and catalogue_extended.md (the same 8 + 8).

``pretraining_sections`` invents a disjoint catalogue (other names, people and purposes, same
kind of hosting and technologies) so that the base model (scripts/build_tiny_chat_model.py)
knows the question/answer format but none of the demo's facts.
"""

from __future__ import annotations

import random
from pathlib import Path

from core.formats.messages import split_examples, write_messages
from core.qa import Section, generate_training, parse_document

HOSTS = ["datacenter de Lille", "datacenter de Rennes", "cloud interne Nuage-Est", "prestataire Hexaplan",
         "datacenter de Nantes", "cloud public Azur-Ouest"]
TECHNOLOGIES = ["Java et PostgreSQL", "Python et Django", "PHP et MySQL", ".NET et SQL Server", "Go et Redis",
                "Node.js et MongoDB", "Java et Oracle", "Python et PostGIS", "Ruby et PostgreSQL", "Kotlin et MariaDB"]
FIRST = ["Alice", "Bruno", "Chloé", "David", "Emma", "Fabien", "Gaëlle", "Henri", "Isabelle", "Jérôme", "Karine",
         "Laurent", "Maëlle", "Nicolas", "Océane", "Patrick", "Rachel", "Samuel", "Tiphaine", "Victor", "Yasmine", "Zoé"]
LAST = ["Arnaud", "Bertin", "Chevalier", "Delmas", "Esnault", "Fabre", "Guérin", "Hamon", "Jacob", "Klein",
        "Leroux", "Marty", "Noël", "Olivier", "Pichon", "Quéré", "Rolland", "Schmitt", "Tessier", "Vidal"]
KINDS = ["l'application", "l'outil", "le portail", "le service", "la plateforme", "le logiciel"]
PURPOSES = ["de gestion des stocks de fournitures", "de réservation des salles de réunion", "de suivi des courriers entrants",
            "de gestion des véhicules de service", "de publication des offres d'emploi", "de suivi des marchés publics",
            "de gestion des badges d'accès", "de recensement des équipements informatiques", "de suivi des visites médicales",
            "de gestion des astreintes", "d'inscription aux concours internes", "de suivi des déchets collectés",
            "de gestion des prêts de matériel", "de paiement des amendes", "de suivi de la consommation d'énergie",
            "de gestion des bourses étudiantes", "de déclaration des accidents du travail", "de réservation des navettes",
            "de suivi des plaintes des usagers", "de gestion des archives papier", "de traduction des documents officiels",
            "de gestion des parkings", "de suivi des subventions culturelles", "de prise de rendez-vous en ligne"]
SYLLABLES = ["ka", "lo", "mi", "ra", "te", "vu", "sa", "no", "pe", "di", "zo", "fa", "gu", "be", "lin", "tor", "mar",
             "sel", "dor", "pix", "ven", "cal", "bro", "nix"]


def pretraining_sections(count: int = 60, seed: int = 7, exclude: set[str] | None = None) -> list[Section]:
    rng = random.Random(seed)
    exclude = {n.upper() for n in (exclude or set())}
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).upper()
        if name not in names and name not in exclude and 4 <= len(name) <= 9:
            names.append(name)
    sections = []
    for name in names:
        definition = f"{name} est {rng.choice(KINDS)} {rng.choice(PURPOSES)}."
        facts = [("Responsable", f"{rng.choice(FIRST)} {rng.choice(LAST)}"), ("Hébergement", rng.choice(HOSTS)),
                 ("Technologie", rng.choice(TECHNOLOGIES)), ("Mise en service", str(rng.randint(2000, 2025)))]
        sections.append(Section(name=name, definition=definition, facts=facts))
    return sections


def sft_catalogue(
    out: Path,
    document: str,
    part: str = "train",
    method: str = "augmented",
    count: int = 0,
    seed: int = 42,
    language: str = "fr",
    system: str = "",
    llm_base_url: str = "",
    llm_model: str = "",
    document_sha256: str = "",  # noqa: ARG001 - part of the cache key: a changed document regenerates
) -> Path:
    """Write ``examples.jsonl`` (messages) for one part (train / val / test / all) of the split."""
    if part not in ("train", "val", "test", "all"):
        raise ValueError(f"part must be train, val, test or all, got {part!r}")
    title, sections = parse_document(document)
    llm = None
    if method == "llm-based":
        from core.qa.llm_generation import generation_client

        llm = generation_client(llm_base_url or None, llm_model or None)
    examples, report = generate_training(sections, method, count or None, seed, language,
                                         system=system or None, llm=llm)
    chosen = examples if part == "all" else split_examples(examples, seed)[part]
    if not chosen:
        raise ValueError(f"{document}: the {part} part is empty ({report.kept} examples in all): "
                         f"use method augmented or a larger count")
    out.mkdir(parents=True, exist_ok=True)
    return write_messages(out / "examples.jsonl", chosen)
