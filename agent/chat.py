"""ask(question) -> Answer, from live state (MLflow, Prefect, the pipeline files) and the
playbooks, with sources.

Offline by default: the question is read for its language, what it asks (status, comparison,
failure, next steps, a playbook fact, services) and what it is about (a pipeline; stages by
name, number, output model or domain word — "le modèle médical"; an eval set), then one tool
(agent.tools) computes the data and agent.chat_text writes the answer. With an LLM
configured, the same tools are offered to it through tool calling; a failing LLM falls back
to the offline answer.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent import tools
from agent.chat_text import render
from agent.pipeline_state import domain_score, find_stage
from agent.playbook_answers import answer_fact
from agent.playbooks import PlaybookSet, load_playbooks
from agent.redact import redact, redact_obj
from agent.retrieval import fold, tokens
from agent.state import LiveState

Intent = Literal["status", "compare", "failure", "next", "playbook", "services"]

_FR_MARKERS = {"ou", "est", "en", "quoi", "pourquoi", "comment", "que", "quel", "quelle", "quels", "le", "la", "les",
               "des", "une", "l", "d", "etape", "echoue", "faire", "ensuite", "apres", "sa", "son", "a", "au", "du",
               "je", "dois", "faut", "il", "sur", "pour", "avec", "meilleur", "modele", "mieux", "pire", "marche",
               "tourne", "utiliser", "qu", "ce", "cette", "mon", "ma", "mes", "donne", "entre", "et", "par", "rapport",
               "dernier", "derniere", "plante", "moins", "plus", "quand", "combien", "puis", "ai", "j", "c", "s",
               "peux", "peut", "fait", "sont", "suis", "encore", "bien", "dans", "chez", "mais", "aussi", "comparer", "quoi", "lequel", "laquelle",
               "depuis", "deja", "toujours", "mes", "nos", "vos", "leur", "ces", "sans", "tres", "trop", "fais"}
_EN_MARKERS = {"where", "is", "the", "what", "why", "how", "did", "does", "should", "next", "stage", "failed",
               "compare", "with", "its", "to", "do", "i", "we", "which", "use", "better", "worse", "than", "of",
               "on", "my", "it", "are", "was", "can", "run", "about", "and", "model", "now", "fail", "there", "any",
               "happened", "wrong", "much", "long", "for", "need", "between", "against", "going", "doing", "been"}

# Stems (accents folded) that say what the question asks. Order of precedence: below.
_ASKS: dict[str, tuple[str, ...]] = {
    "services": (r"\b(mlflow|prefect|serveurs?|servers?|services?)\b.*\b(up|down|marche|tourne|running|reachable|"
                 r"joignable|dispo\w*|available|ok|lance|started|demarr\w*)\b",
                 r"\b(is|est-ce que|are)\b.*\b(mlflow|prefect)\b.*\b(up|running|down|ok)\b"),
    "failure": (r"\b(echou\w*|echec\w*|fail\w*|plant\w*|crash\w*|erreurs?|errors?|broke\w*|cass\w*|mort|dead|"
                r"killed|tue|arrete|stopp\w*|went wrong|gone wrong|probleme|problem|bloqu\w*|stuck|hang\w*|fige\w*|"
                r"what happened|s est (?:il |elle )?passe|cloche)\b",),
    "next": (r"\b(next|prochaine?s?|ensuite|what now|what should|should i|que dois|que faut|que faire|quoi faire|"
             r"faire maintenant|a faire|do now|recommend\w*|conseil\w*|what do i do|what to do|que je fasse|"
             r"next steps?|la suite|je fais quoi|on fait quoi|what do i do with|what do we do)\b",),
    "compare": (r"\b(compar\w*|baselin\w*|meilleure?s?|mieux|better|worse|pire|amelior\w*|improv\w*|versus|vs|"
                r"gain\w*|regress\w*|par rapport|than|delta|beat|battu|progres\w*|diff\w*|plus bas|lower|higher|"
                r"degrad\w*|perdu|lost)\b",),
    "status": (r"\b(ou en est|ou en sont|ou on en est|where is|where are|status|statut|etat|avancement|progress|"
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


class Source(BaseModel):
    kind: str
    ref: str
    label: str | None = None


class Answer(BaseModel):
    question: str
    language: Literal["fr", "en"]
    intent: str
    text: str
    sources: list[Source] = Field(default_factory=list)
    source: Literal["offline", "llm"] = "offline"
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return redact(self.model_dump_json(indent=2))


def detect_language(question: str) -> Literal["fr", "en"]:
    if re.search(r"[àâçéèêëîïôùûüœ]", question.lower()):
        return "fr"
    words = re.findall(r"[a-z]+", fold(question))
    fr = sum(w in _FR_MARKERS for w in words)
    en = sum(w in _EN_MARKERS for w in words)
    return "fr" if fr > en else "en"


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


# --- what the question is about ---------------------------------------------------------

def _known_pipelines(state: LiveState) -> list[str]:
    names = list(state.pipeline_files())
    if state.mlflow.available:
        try:
            names += [p["pipeline"] for p in state.mlflow.pipelines()]
        except Exception:  # noqa: BLE001 - a broken store is reported by the tool call itself
            pass
    return list(dict.fromkeys(names))


def topic_tokens(question: str) -> list[str]:
    """The question's words minus those that only say which kind of answer is wanted."""
    return [t for t in tokens(question) if t not in _GENERIC]


def is_playbook_topic(question: str, book: PlaybookSet) -> bool:
    """The question names something the playbooks are about (Kaggle, P100, H200, bf16...)."""
    topic = {t for t in topic_tokens(question) if len(t) > 2}
    vocabulary = {t for s in book.sections for t in tokens(s.heading)}
    vocabulary |= {t for item in [*book.rules, *book.failures] for t in tokens(item.title)}
    return bool(topic & vocabulary)


def _named_stages(question: str, stages: list[dict[str, Any]]) -> list[str]:
    """Stages the question names literally (stage name or output model), in question order."""
    q = fold(question)
    hits = []
    for s in stages:
        for name in (s.get("stage"), s.get("output_name")):
            if not name:
                continue
            m = re.search(rf"(?<![\w-]){re.escape(fold(str(name)))}(?![\w-])", q)
            if m:
                hits.append((m.start(), s["stage"]))
                break
    return [name for _, name in sorted(hits)]


def _eval_set_reference(question: str, stages: list[dict[str, Any]]) -> str | None:
    q = fold(question).replace("-", "_")
    names = {r["eval_set"] for s in stages for r in s.get("metrics", [])} | {n for s in stages for n in s.get("roles", {})}
    names -= {str(s["stage"]) for s in stages}  # "medical" naming a stage is not a set filter
    for name in sorted(names, key=len, reverse=True):
        for form in (name.lower(), name.lower().replace("_", " ")):
            if re.search(rf"(?<![\w]){re.escape(form)}(?![\w])", q.replace("_", " ") if " " in form else q):
                return name
    return None


def resolve_target(question: str, state: LiveState, pipeline: str | None,
                   prefer: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pipeline, stage(s) and eval set a question is about, looked up in the live state.
    No pipeline named: the one whose stages the question names or describes best (the domain
    word "médical" -> the stage whose name, output or primary set is medical), else the most recent."""
    out: dict[str, Any] = {"pipeline": pipeline, "stages": [], "eval_set": None, "by": None}
    refs = stage_references(question)
    try:
        statuses = [tools.pipeline_status(state, pipeline)] if pipeline else tools.all_statuses(state)
    except Exception:  # noqa: BLE001 - the tool call reports a broken store
        return {**out, "stages": refs}
    statuses = [s for s in statuses if s.get("ok") and s.get("stages")]
    if not statuses:
        return {**out, "stages": refs}
    best: tuple[int, int, dict[str, Any], list[str], str] | None = None
    for rank, st in enumerate(statuses):
        named = _named_stages(question, st["stages"])
        if named:
            score, stages, by = 100, named, "name"
        elif refs and all(find_stage(st["stages"], r) for r in refs):
            score, stages, by = 50, [find_stage(st["stages"], r)["stage"] for r in refs], "number"
        else:
            scored = [(domain_score(s, question), i, s) for i, s in enumerate(st["stages"])]
            top = max(scored, key=lambda x: (x[0], x[1]))
            ties = [x for x in scored if x[0] == top[0]]
            if top[0] <= 0 or len(ties) > 1:
                continue
            score, stages, by = top[0], [top[2]["stage"]], "domain"
        score += 1 if st.get("state") in prefer else 0  # "why did exp 2 fail?": the pipeline that failed
        if best is None or score > best[0]:
            best = (score, -rank, st, stages, by)
    if best is None:
        preferred = next((st for st in statuses if st.get("state") in prefer), None) if not pipeline else None
        if preferred is not None:
            return {**out, "pipeline": preferred["pipeline"], "stages": refs, "status": preferred}
        return {**out, "pipeline": pipeline, "stages": refs, "status": statuses[0] if pipeline else None}
    _, _, st, stages, by = best
    return {"pipeline": st["pipeline"], "stages": stages, "eval_set": _eval_set_reference(question, st["stages"]),
            "by": by, "status": st}


def _stage_mentions(question: str, state: LiveState) -> tuple[bool, bool]:
    """(names a known stage or output model literally, describes one by its domain words)."""
    if not state.mlflow.available:
        return False, False
    try:
        stages = [s for st in tools.all_statuses(state) for s in st.get("stages", [])]
    except Exception:  # noqa: BLE001 - a broken store is reported by the tool call itself
        return False, False
    return bool(_named_stages(question, stages)), any(domain_score(s, question) >= 3 for s in stages)


def _safe(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - a broken store must give an answer, not a traceback
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "sources": [], "notes": []}


def answer_offline(question: str, state: LiveState, book: PlaybookSet) -> Answer:
    lang = detect_language(question)
    known = _known_pipelines(state)
    pipeline = pipeline_reference(question, known)
    # A pipeline named "killed" or "errors" says nothing about what is asked.
    asked = re.sub(rf"(?<![\w-]){re.escape(pipeline)}(?![\w-])", " ", fold(question)) if pipeline else question
    intent = detect_intent(asked)
    refs = stage_references(question)
    about_runs = bool(pipeline or refs or _STATE_WORDS.search(fold(question)))
    named, described = _stage_mentions(question, state) if not about_runs else (False, False)
    about_runs = about_runs or named
    convertible = intent in ("failure", "next", "compare") or (intent == "status" and asks_metrics_only(question))
    folded = fold(question).replace("'", " ").replace("-", " ")
    if intent != "failure" and _CAN_I.search(folded) and is_playbook_topic(question, book):
        intent = "playbook"  # "est-ce que je peux lancer fr sur H200 ?": a playbook rule answers
    elif convertible and not about_runs and not described and is_playbook_topic(question, book):
        intent = "playbook"  # "Kaggle me donne un P100, que faire ?" is about Kaggle, not about a run
    elif intent == "playbook" and about_runs:
        intent = "status"  # "le champion de demo c'est lequel ?" asks about runs
    target: dict[str, Any] = {"pipeline": pipeline, "stages": refs, "eval_set": None}
    listing = intent == "status" and bool(_LIST.search(fold(question)))
    if intent in ("status", "compare", "failure", "next") and state.mlflow.available and not listing:
        prefer: tuple[str, ...] = ("failed", "interrupted") if intent in ("failure", "next") else ()
        if intent == "status" and _RUNNING.search(folded):
            prefer = ("running",)  # "y a-t-il un run en cours ?": the pipeline that runs
        target = resolve_target(question, state, pipeline, prefer)
    pipeline, stages = target.get("pipeline"), target.get("stages") or []
    if listing:
        data = _safe(tools.list_pipelines, state)
        intent = "list"
    elif intent == "status":
        data = _safe(tools.pipeline_status, state, pipeline)
        focus = None
        if stages and data.get("stages"):
            from agent.pipeline_state import resolve_stage

            focus = resolve_stage(data["stages"], stages[0])
        if focus:
            data = {**data, "focus": focus}
        elif data.get("ok") and data.get("state") == "no_runs" and data.get("pipeline_file"):
            # A pipeline never run: where it stands is what its preflight says.
            intent, data = "next", _safe(tools.next_steps, state, book, pipeline)
    elif intent == "compare":
        data = _safe(tools.compare_stage, state, pipeline, stages[0] if stages else None,
                     stages[1] if len(stages) > 1 else None, target.get("eval_set"))
    elif intent == "failure":
        data = _safe(tools.explain_failure, state, book, pipeline, stages[0] if stages else None)
        if data.get("ok") and data.get("state") == "no_runs":
            # A problem with a pipeline never run is in its configuration: the preflight says it.
            intent, data = "next", _safe(tools.next_steps, state, book, pipeline)
        if data.get("ok") and not data.get("failed") and data.get("stage") and data.get("state") != "interrupted":
            # "what happened to exp1?" about a stage that did not fail: say where it is.
            intent = "status"
            status = _safe(tools.pipeline_status, state, data["pipeline"])
            data = {**status, "focus": data["stage"]} if status.get("ok") else status
    elif intent == "next":
        data = _safe(tools.next_steps, state, book, pipeline)
    elif intent == "services":
        data = tools.service_status(state)
    else:
        data = answer_fact(book, " ".join(topic_tokens(question)) or question, lang)
    data = redact_obj(data)
    return Answer(question=redact(question), language=lang, intent=intent, text=render(intent, data, lang),
                  sources=[Source(**s) for s in data.get("sources", [])], data=data)


def llm_tools(state: LiveState, book: PlaybookSet) -> list[Any]:
    from agent.llm import Tool

    pipe = {"type": "string", "description": "pipeline name (MLflow experiment palier/<name>); omit for the latest"}
    stage = {"type": "string", "description": "stage name, 'expN' (1-based), output model name or a domain word "
             "('medical'); omit for the latest relevant"}
    return [
        Tool("list_pipelines", "List palier pipelines known to MLflow.", {"type": "object", "properties": {}},
             lambda: tools.list_pipelines(state)),
        Tool("pipeline_status", "Where a pipeline is: latest run, each stage's status, gate, metrics (primary eval "
             "set first), whether a running stage's process is alive, Prefect state.",
             {"type": "object", "properties": {"pipeline": pipe}}, lambda pipeline=None: tools.pipeline_status(state, pipeline)),
        Tool("compare_stage", "A stage's final metrics vs its baseline and the previous stage; with 'other', two "
             "stages side by side. Only quality metrics (kind error/score) are better/worse; timings and counts are not.",
             {"type": "object", "properties": {"pipeline": pipe, "stage": stage, "other": stage,
                                               "eval_set": {"type": "string", "description": "only this eval set"}}},
             lambda pipeline=None, stage=None, other=None, eval_set=None: tools.compare_stage(
                 state, pipeline, stage, other, eval_set)),
        Tool("explain_failure", "Why a pipeline stopped: the failed stage's recorded diagnosis and playbook fix, a "
             "run marked running whose process is gone, the previous run's failure.",
             {"type": "object", "properties": {"pipeline": pipe, "stage": stage}},
             lambda pipeline=None, stage=None: tools.explain_failure(state, book, pipeline, stage)),
        Tool("next_steps", "What to do next, computed from the pipeline's state and its preflight findings.",
             {"type": "object", "properties": {"pipeline": pipe}},
             lambda pipeline=None: tools.next_steps(state, book, pipeline)),
        Tool("playbook_fact", "A playbook fact as a one-sentence answer with its citation (GPU choice, batch sizes, "
             "Kaggle, Modal, library APIs...).",
             {"type": "object", "properties": {"question": {"type": "string"},
                                               "language": {"type": "string", "enum": ["fr", "en"]}},
              "required": ["question"]},
             lambda question, language="en": answer_fact(book, question, language)),
        Tool("search_playbooks", "Search the playbooks (sections, rules, known failures, fixes).",
             {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
             lambda query: tools.search_playbooks(book, query)),
    ]


def _system_prompt(book: PlaybookSet, lang: str) -> str:
    index = "\n".join(f"- {p.title} ({p.file}): " + "; ".join(s.heading for s in p.sections if s.level == 2)
                      for p in book.playbooks)
    language = "French" if lang == "fr" else "English"
    return (
        "You are palier's assistant for progressive fine-tuning pipelines (Prefect + MLflow). "
        "Use the tools to read live state and the playbooks; never invent run ids or metrics. "
        f"Answer in {language}, briefly, and cite sources (run ids, playbook file#section).\n"
        f"Playbooks:\n{index}"
    )


def answer_with_llm(question: str, state: LiveState, book: PlaybookSet) -> Answer:
    from agent import llm

    lang = detect_language(question)
    text, results = llm.chat_with_tools(_system_prompt(book, lang), question, llm_tools(state, book))
    sources: list[Source] = []
    for r in results:
        for s in r["output"].get("sources", []) if isinstance(r.get("output"), dict) else []:
            src = Source(**s)
            if src not in sources:
                sources.append(src)
    return Answer(question=redact(question), language=lang, intent="llm", text=redact(text), sources=sources,
                  source="llm", data={"tool_calls": results})


def ask(question: str, *, state: LiveState | None = None, playbooks: PlaybookSet | None = None,
        use_llm: bool | None = None) -> Answer:
    """Answer a question. ``use_llm``: None = when configured; False = offline only."""
    state = state or LiveState.from_env()
    book = playbooks or load_playbooks()
    from agent import llm

    with state.mlflow.snapshot():
        if use_llm is not False and llm.configured():
            try:
                return answer_with_llm(question, state, book)
            except llm.LLMError as exc:
                fallback = answer_offline(question, state, book)
                note = f"(LLM unavailable, offline answer: {redact(str(exc))})"
                return fallback.model_copy(update={"text": f"{fallback.text}\n{note}"})
        return answer_offline(question, state, book)
