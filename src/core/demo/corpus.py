"""French sentence corpora for the offline demo (pure: no I/O).

Sentences are built from small phrase lists so that thousands of distinct, grammatical
utterances can be produced deterministically. Splits are disjoint by construction: a
sentence's pool is decided by a hash of its text, so the base model's pre-training data,
the general-French stage and the held-out sets never share a sentence.
"""

from __future__ import annotations

import hashlib
import itertools
import random

SUBJECTS = [
    "le boulanger", "ma voisine", "le professeur", "notre équipe", "un enfant", "la directrice",
    "mon frère", "ta cousine", "le facteur", "une infirmière", "le maire", "la musicienne",
    "un vieil homme", "la jeune fille", "mon oncle", "la pharmacienne", "le chauffeur",
    "notre grand-mère", "un étudiant", "la vendeuse",
]
VERBS = [
    "prépare", "regarde", "achète", "a trouvé", "cherche", "attend", "répare", "dessine",
    "raconte", "lit", "porte", "ouvre", "range", "nettoie", "apporte", "choisit", "vend",
    "a oublié", "montre", "garde",
]
OBJECTS = [
    "une lettre", "le journal", "un vieux vélo", "la porte du jardin", "une tarte aux pommes",
    "le train de sept heures", "un bouquet de fleurs", "la voiture rouge", "un livre ancien",
    "les clés de la maison", "une grande valise", "le panier de légumes", "un cadeau", "la carte",
    "un parapluie bleu", "le piano", "une chaise en bois", "la recette du gâteau",
    "un petit chien", "le tableau",
]
COMPLEMENTS = [
    "ce matin", "dans la cuisine", "avant le dîner", "près de la gare", "sous la pluie",
    "avec beaucoup de patience", "tous les jours", "depuis hier", "au bord de la mer",
    "pendant les vacances", "à la bibliothèque", "sans rien dire", "devant l'école",
    "chaque dimanche", "en silence", "au marché", "dans le salon", "après le travail",
    "à la campagne", "très tôt",
]

# Medical vocabulary of dictated reports: terms the base model has
# never heard. Each condition carries its indefinite and definite noun phrases so that the
# templates stay grammatical (gender, elision). The lexicon used for medical-term accuracy is
# MEDICAL_TERMS.
CONDITIONS = {
    "thyroïdite": ("une thyroïdite", "la thyroïdite"),
    "hypothyroïdie": ("une hypothyroïdie", "l'hypothyroïdie"),
    "tachycardie": ("une tachycardie", "la tachycardie"),
    "bradycardie": ("une bradycardie", "la bradycardie"),
    "pneumopathie": ("une pneumopathie", "la pneumopathie"),
    "hépatite": ("une hépatite", "l'hépatite"),
    "appendicite": ("une appendicite", "l'appendicite"),
    "cholécystite": ("une cholécystite", "la cholécystite"),
    "pancréatite": ("une pancréatite", "la pancréatite"),
    "fibrose": ("une fibrose", "la fibrose"),
    "hypertension": ("une hypertension", "l'hypertension"),
    "embolie": ("une embolie", "l'embolie"),
    "arythmie": ("une arythmie", "l'arythmie"),
    "anémie": ("une anémie", "l'anémie"),
    "bronchite": ("une bronchite", "la bronchite"),
    "scoliose": ("une scoliose", "la scoliose"),
    "migraine": ("une migraine", "la migraine"),
    "angine": ("une angine", "l'angine"),
    "diabète": ("un diabète", "le diabète"),
    "hyperglycémie": ("une hyperglycémie", "l'hyperglycémie"),
}
TREATMENTS = {
    "amoxicilline": ("de l'amoxicilline", "l'amoxicilline"),
    "paracétamol": ("du paracétamol", "le paracétamol"),
    "héparine": ("de l'héparine", "l'héparine"),
    "insuline": ("de l'insuline", "l'insuline"),
    "anticoagulant": ("un anticoagulant", "l'anticoagulant"),
}
EXAMS = {
    "échographie": ("une échographie", "l'échographie"),
    "électrocardiogramme": ("un électrocardiogramme", "l'électrocardiogramme"),
    "biopsie": ("une biopsie", "la biopsie"),
    "radiographie": ("une radiographie", "la radiographie"),
    "créatinine": ("un dosage de créatinine", "la créatinine"),
}
MEDICAL_TERMS = [*CONDITIONS, *TREATMENTS, *EXAMS]

CONDITION_TEMPLATES = [
    "le patient présente {indef} depuis hier",
    "le bilan confirme {indef} chez cette patiente",
    "on note {indef} au contrôle du matin",
    "le médecin suspecte {indef} ce soir",
    "la patiente signale {indef} depuis trois jours",
    "le dossier mentionne {indef} connue",
    "il faut surveiller {defi} chaque semaine",
    "le rapport décrit {indef} sans gravité",
    "nous traitons {defi} depuis lundi",
    "elle consulte pour {indef} récente",
    "le scanner évoque {indef} probable",
    "on écarte {indef} après examen",
    "{defi} reste stable ce mois",
    "le compte rendu confirme {defi}",
]
TREATMENT_TEMPLATES = [
    "le patient reçoit {indef} matin et soir",
    "on poursuit {defi} pendant une semaine",
    "la patiente tolère bien {defi}",
    "le médecin arrête {defi} ce matin",
    "nous ajoutons {indef} au traitement",
    "il prend {indef} depuis une semaine",
]
EXAM_TEMPLATES = [
    "nous demandons {indef} en urgence",
    "le résultat de {defi} arrive demain",
    "le médecin a prescrit {indef} hier",
    "on refait {indef} la semaine prochaine",
    "on prévoit {defi} lundi",
    "le service programme {indef} demain",
]


def _bucket(text: str, buckets: int) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % buckets


GENERAL_POOLS = {"pretrain": range(0, 6), "stage": range(6, 8), "test": range(8, 9)}
MEDICAL_POOLS = {"stage": (0, 1, 2), "test": (3,)}


def general_pool_size(pool: str) -> int:
    """How many distinct sentences ``general_sentences`` can draw from ``pool``."""
    wanted = GENERAL_POOLS[pool]
    return sum(1 for words in itertools.product(SUBJECTS, VERBS, OBJECTS, COMPLEMENTS)
               if _bucket(" ".join(words), 9) in wanted)


def general_sentences(pool: str, count: int, seed: int = 0) -> list[str]:
    """Distinct general-French sentences from one of the disjoint pools.

    Pools: ``pretrain`` (the shipped base model), ``stage`` (the general-French demo stage),
    ``test`` (held-out evaluation).
    """
    if pool not in GENERAL_POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {sorted(GENERAL_POOLS)}")
    wanted = GENERAL_POOLS[pool]
    rng = random.Random(f"general:{pool}:{seed}")
    combos = list(itertools.product(SUBJECTS, VERBS, OBJECTS, COMPLEMENTS))
    rng.shuffle(combos)
    out: list[str] = []
    for subject, verb, obj, complement in combos:
        sentence = f"{subject} {verb} {obj} {complement}"
        if _bucket(sentence, 9) in wanted:
            out.append(sentence)
            if len(out) == count:
                return out
    raise ValueError(f"pool {pool!r} holds fewer than {count} sentences")


def medical_sentences(pool: str, count: int, seed: int = 0) -> list[str]:
    """Medical-dictation sentences; ``pool`` is ``stage`` or ``test`` (disjoint)."""
    if pool not in MEDICAL_POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected 'stage' or 'test'")
    rng = random.Random(f"medical:{pool}:{seed}")
    chosen = _medical_pool(pool)
    rng.shuffle(chosen)
    if len(chosen) < count:
        # Repetition is fine for training data (different voices say it); never for tests.
        if pool == "test":
            raise ValueError(f"medical test pool holds {len(chosen)} sentences, asked {count}")
        chosen = [chosen[i % len(chosen)] for i in range(count)]
    return chosen[:count]


def medical_pool_size(pool: str) -> int:
    return len(_medical_pool(pool))


def _medical_pool(pool: str) -> list[str]:
    return [s for s in _medical_candidates() if _bucket(s, 4) in MEDICAL_POOLS[pool]]


def _medical_candidates() -> list[str]:
    candidates: list[str] = []
    for phrases, templates in (
        (CONDITIONS, CONDITION_TEMPLATES),
        (TREATMENTS, TREATMENT_TEMPLATES),
        (EXAMS, EXAM_TEMPLATES),
    ):
        for indef, defi in phrases.values():
            candidates.extend(t.format(indef=indef, defi=defi) for t in templates)
    return candidates


def dictation_sentences(count: int, seed: int = 0) -> list[str]:
    """Distinct medical-dictation sentences from every pool (a dictation folder is split 80/20
    by the reader, not by pool)."""
    candidates = _medical_candidates()
    if count > len(candidates):  # also refused at load time by the generator's schema
        raise ValueError(f"the dictation corpus holds {len(candidates)} distinct sentences, asked {count}")
    rng = random.Random(f"dictation:{seed}")
    rng.shuffle(candidates)
    return candidates[:count]


def dictation_pool_size() -> int:
    return len(_medical_candidates())


def as_report(sentence: str) -> str:
    """A written report's form of a spoken sentence: capital first letter, final full stop."""
    return sentence[:1].upper() + sentence[1:] + "."
