"""What a question asks and which runs it names, read from its words alone (pure).

The intent (status, comparison, failure, next steps, a playbook fact, services) comes from
accent-folded stems, with near-misses of the routing words corrected; stage references
("exp 2", "étape 3", "the second stage") and pipeline names are found in question order.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from agent.playbooks.retrieval import fold, tokens

Intent = Literal["status", "compare", "failure", "next", "playbook", "services"]

# Stems (accents folded) that say what the question asks. Order of precedence: below.
_ASKS: dict[str, tuple[str, ...]] = {
    "services": (r"\b(mlflow|prefect|serveurs?|servers?|services?)\b.*\b(up|down|marche|tourne|running|reachable|"
                 r"joignable|dispo\w*|available|ok|lance|started|demarr\w*)\b",
                 r"\b(is|est-ce que|are)\b.*\b(mlflow|prefect)\b.*\b(up|running|down|ok)\b"),
    "failure": (r"\b(echou\w*|echec\w*|fail\w*|plant\w*|crash\w*|erreurs?|errors?|broke\w*|cass\w*|mort|dead|"
                r"killed|tue|arrete|stopp\w*|died|dies|meurt|logs?|journal|journaux|went wrong|gone wrong|probleme|problem|bloqu\w*|stuck|hang\w*|fige\w*|"
                r"what happened|s est (?:il |elle )?passe|cloche)\b",),
    "next": (r"\b(next|prochaine?s?|ensuite|what now|what should|should i|que dois|que faut|que faire|quoi faire|"
             r"faire maintenant|a faire|do now|recommend\w*|conseil\w*|what do i do|what to do|que je fasse|"
             r"next steps?|la suite|je fais quoi|on fait quoi|what do i do with|what do we do)\b",),
    "compare": (r"\b(compar\w*|baselin\w*|meilleure?s?|mieux|better|worse|pire|amelior\w*|improv\w*|versus|vs|"
                r"gain\w*|regress\w*|par rapport|than|delta|beat|battu|progres\w*|diff\w*|plus bas|lower|higher|"
                r"degrad\w*|perdu|lost|what changed|qu.est.ce qui a change|changed between|chang\w* entre)\b",),
    "status": (r"\b(ou en est|ou en sont|ou on en est|en est ou|en sont ou|on en est ou|where are we|where do we stand|quoi de neuf|what.s new|whats new|recap|where is|where are|status|statut|etat|avancement|progress|"
               r"en cours|how far|how is|how are|comment va|termine|finished|done|fini)\b",),
    "metrics": (r"\b(resultats?|results?|scores?|wer|cer|f1|metri\w*|accuracy|exactitude|combien de temps|how long|"
                r"duree|loss)\b",),
}
_WHY = r"\b(pourquoi|why|pq|pk|pourqoi|porquoi|diagnos\w*|cause)\b"
_STAGE_REF = re.compile(r"\b(?:exp(?:erience|e)?|stage|etape|step|run)\s*[-_#n°o ]?\s*(\d+)\b")
_ORDINALS = {"first": 1, "premiere": 1, "premier": 1, "second": 2, "seconde": 2, "deuxieme": 2, "third": 3,
             "troisieme": 3, "fourth": 4, "quatrieme": 4}
_NUMBERED = re.compile(r"\b(\d+)\s*(?:ere|er|eme|e|st|nd|rd|th)\s+(?:etape|stage|exp\w*)\b")
_ORDINAL_REF = re.compile(r"\b(" + "|".join(_ORDINALS) + r")\s+(?:stage|etape|exp\w*)\b|\b(?:stage|etape|exp\w*)\s+("
                          + "|".join(_ORDINALS) + r")\b")
# Words that say which kind of answer is wanted, not what it is about.
_GENERIC = {"pipeline", "pipelines", "stage", "stages", "etape", "etapes", "exp", "experience", "run", "runs", "job",
            "model", "modele", "training", "entrainement", "faire", "ensuite", "next", "should", "me", "mon", "ma",
            "donne", "gives", "give", "now", "maintenant", "il", "elle", "ca", "cela", "this", "my", "avec", "quand",
            "use", "utiliser", "dois", "je", "faut", "need", "which", "quel", "quelle"}
# Words that mark a question about runs rather than about the playbooks.
_STATE_WORDS = re.compile(r"\b(pipelines?|exp\s*\d|exp\d|etapes?\s*\d|stages?\s*\d|champion|candidat\w*|"
                          r"(?:mon|ma|le|du|au|ce|cet|the|my|this|that|our|notre|dernier|last|latest) (?:run|modele|model|job)s?|"
                          r"(?:run|job)s? (?:de|of|du)|mes runs|my runs)\b")


def _normalise(question: str) -> str:
    """Folded, with near-misses of the routing words corrected (one typo in a long word)."""
    vocabulary = ["compare", "comparer", "baseline", "pourquoi", "pipeline", "echoue", "failed", "meilleur",
                  "ensuite", "prochaine", "status", "statut", "avancement", "progress", "erreur", "error", "better",
                  "worse", "improved", "ameliore", "crashed", "plante", "medical", "general", "where", "stage",
                  "etape", "what", "should"]
    out = []
    for word in re.findall(r"[\w'-]+|[^\w\s]", fold(question)):
        if len(word) >= 5 and word not in vocabulary and word.isalpha():
            close = difflib.get_close_matches(word, vocabulary, n=1, cutoff=0.84)
            word = close[0] if close else word
        out.append(word)
    return " ".join(out).replace(" ' ", "'").replace("l '", "l'")


def detect_intent(question: str) -> Intent:
    q = _normalise(question).replace("'", " ").replace("-", " ")
    has = {k: any(re.search(p, q) for p in pats) for k, pats in _ASKS.items()}
    why = bool(re.search(_WHY, q))
    if has["services"]:
        return "services"
    if _LIST.search(q) and not has["failure"]:
        return "status"
    if has["failure"] and not (has["compare"] and not why and re.search(r"\b(than|que|vs|versus|baseline)\b", q)):
        return "failure"
    if has["next"]:
        return "next"
    if has["compare"]:
        return "compare"
    if why:
        return "failure"
    if has["status"] or has["metrics"]:
        return "status"
    return "playbook"


_CAN_I = re.compile(r"\b(can i|could i|may i|should i|est ce que je peux|puis je|je peux|peut on|on peut|faut il|"
                    r"is it ok|is it safe|ca marche)\b")
_RUNNING = re.compile(r"\b(en cours|running|in progress|currently|tourne|qui tourne|training now)\b")
_LIST = re.compile(r"\b(which|what|quels?|quelles?|list\w*|tous les|all( the)?|liste des)\b.*\bpipelines\b|"
                   r"\bpipelines\b.*\b(exist\w*|connus?|known|there|y a)\b")


def asks_metrics_only(question: str) -> bool:
    """A status question made only of metric words ("which gate metric for PII?") may be a playbook one."""
    q = _normalise(question).replace("'", " ")
    return not any(re.search(p, q) for p in _ASKS["status"]) and any(re.search(p, q) for p in _ASKS["metrics"])


def stage_reference(question: str) -> str | None:
    refs = stage_references(question)
    return refs[0] if refs else None


def stage_references(question: str) -> list[str]:
    """'exp 2', 'étape 3', 'stage-1', 'the second stage' -> ['exp2', ...] in question order."""
    q = fold(question)
    found = [(m.start(), f"exp{m.group(1)}") for m in _STAGE_REF.finditer(q)]
    found += [(m.start(), f"exp{_ORDINALS[m.group(1) or m.group(2)]}") for m in _ORDINAL_REF.finditer(q)]
    found += [(m.start(), f"exp{m.group(1)}") for m in _NUMBERED.finditer(q)]
    # "la 1ere et la 2eme etape": the first ordinal's noun is the second one's.
    for m in re.finditer(r"\b(\d+)\s*(?:ere|er|eme|e|st|nd|rd|th)\s+(?:et|and|ou|or|vs)\s+(?:la |le |the )?(\d+)\s*"
                         r"(?:ere|er|eme|e|st|nd|rd|th)\s+(?:etape|stage|exp\w*)", q):
        found.append((m.start(), f"exp{m.group(1)}"))
    # "the two stages", "les deux étapes": the first and the second.
    for m in re.finditer(r"\b(?:the two|both|les deux|des deux)\s+(?:stages|etapes|exps?|experiences)\b", q):
        found += [(m.start(), "exp1"), (m.start() + 1, "exp2")]
    # "exp1 and 2", "exp 1 et 2": a bare number right after a reference and a conjunction.
    for m in re.finditer(r"\b(?:exp\w*|etape|stage)\s*\d+\s*(?:and|et|vs|versus|,|&|a|to)\s*(\d+)\b", q):
        found.append((m.start(1), f"exp{m.group(1)}"))
    out = []
    for _, ref in sorted(found):
        if ref not in out:
            out.append(ref)
    return out


def pipeline_reference(question: str, known: list[str]) -> str | None:
    q = fold(question)
    for name in sorted(known, key=len, reverse=True):
        if re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", q):
            return name
    return None


def topic_tokens(question: str) -> list[str]:
    """The question's words minus those that only say which kind of answer is wanted."""
    return [t for t in tokens(question) if t not in _GENERIC]


def _spaced(question: str) -> str:
    return fold(question).replace("'", " ").replace("-", " ")


def asks_permission(question: str) -> bool:
    """"Can I ...?", "est-ce que je peux ...?": a playbook rule answers when the topic is one."""
    return bool(_CAN_I.search(_spaced(question)))


def asks_running(question: str) -> bool:
    """"y a-t-il un run en cours ?": about the pipeline that runs."""
    return bool(_RUNNING.search(_spaced(question)))


def asks_list(question: str) -> bool:
    """"which pipelines are there?"."""
    return bool(_LIST.search(fold(question)))


def names_runs(question: str) -> bool:
    """Words that mark a question about runs rather than about the playbooks."""
    return bool(_STATE_WORDS.search(fold(question)))
