"""What a question is about in the live state: the pipeline, stage(s) and eval set it names
or describes ("le modèle médical" -> the stage whose name, output or primary set is medical)."""

from __future__ import annotations

import re
from typing import Any

from agent.chat import tools
from agent.chat.question import stage_references, topic_tokens
from agent.base.pipeline_state import domain_score, find_stage
from agent.playbooks.parse import PlaybookSet
from agent.playbooks.retrieval import fold, tokens
from agent.base.state import LiveState


def known_pipelines(state: LiveState) -> list[str]:
    names = list(state.pipeline_files())
    if state.mlflow.available:
        try:
            names += [p["pipeline"] for p in state.mlflow.pipelines()]
        except Exception:  # noqa: BLE001 - a broken store is reported by the tool call itself
            pass
    return list(dict.fromkeys(names))


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


def stage_mentions(question: str, state: LiveState) -> tuple[bool, bool]:
    """(names a known stage or output model literally, describes one by its domain words)."""
    if not state.mlflow.available:
        return False, False
    try:
        stages = [s for st in tools.all_statuses(state) for s in st.get("stages", [])]
    except Exception:  # noqa: BLE001 - a broken store is reported by the tool call itself
        return False, False
    return bool(_named_stages(question, stages)), any(domain_score(s, question) >= 3 for s in stages)
