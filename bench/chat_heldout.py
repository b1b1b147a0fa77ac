"""``python -m bench.chat_heldout``: the chat on questions written the way users write them (short,
vague, French and English, typos, pronouns, follow-ups in ``palier chat``), over a state with
look-alike pipelines (bench/chat_lookalike.py). Two sets, both frozen once written:

- ``LOOKALIKE``: written before any change to the chat's behaviour (its first-contact score is
  in docs/chat.md), then used to measure the fixes;
- ``LAST``: written after the fixes, never tuned on.

A conversation is a tuple of turns asked in one chat session; each turn is scored alone, with
bench.chat.score (language, every ``must`` regex, no ``must_not``). Writes
bench/results/chat_heldout.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.chat import NO_PLACEHOLDER, RESULTS, Q, score

NO_CRASH = r"Traceback|KeyError|Error:"
NOT_KILLED = r"no metrics|pas de m[eé]triques|aucune m[eé]trique"
WORST = r"tachycardie[\s\S]*taxi cardie"

LOOKALIKE: list[Q | tuple[Q, ...]] = [
    # --- results: the finished demo, not its killed copy (which is more recent)
    Q("le modèle médical est meilleur que sa baseline ?", "fr", [r"exp2-medical", r"0\.622", r"0\.309"], [NOT_KILLED],
      "results"),
    Q("is the medical model better than baseline", "en", [r"exp2-medical", r"0\.622", r"0\.309"], [NOT_KILLED],
      "results"),
    Q("exp2 vs baseline on medical", "en", [r"exp2-medical", r"0\.309"], [NOT_KILLED], "results"),
    Q("le medical a t il progresser", "fr", [r"exp2-medical", r"0\.309"], [NOT_KILLED], "results"),
    Q("what changed between the two stages on the medical set?", "en",
      [r"exp1-general", r"exp2-medical", r"0\.622", r"0\.309"], [NOT_KILLED], "results"),
    Q("exp1 ou exp2, lequel est meilleur sur medical_test ?", "fr", [r"exp1-general", r"exp2-medical", r"0\.309"],
      [NOT_KILLED], "results"),
    Q("did exp2 get worse on general_test?", "en", [r"exp2-medical", r"0\.254", r"0\.281"], [NOT_KILLED], "results"),
    Q("quel est le WER du modele medical", "fr", [r"0\.309"], [NOT_KILLED], "results"),
    Q("medical term accuracy of the champion?", "en", [r"0\.71"], [NOT_KILLED], "results"),
    # --- worst utterances (the predictions artifact)
    Q("pires transcriptions du modèle médical ?", "fr", [WORST], [], "worst"),
    Q("show me the worst predictions of exp2", "en", [WORST], [], "worst"),
    Q("quelles phrases le modele medical rate le plus", "fr", [r"tachycardie|amoxicilline"], [], "worst"),
    Q("worst utterances on medical_test", "en", [r"taxi cardie"], [], "worst"),
    # --- durations
    Q("combien de temps a pris l'entraînement du modèle médical ?", "fr", [r"312|5 min"], [], "duration"),
    Q("how long did exp2 train?", "en", [r"312|5 min"], [NOT_KILLED], "duration"),
    Q("how long was the evaluation of exp1-general", "en", [r"18\.5"], [], "duration"),
    Q("durée de exp1 ?", "fr", [r"312|18\.5"], [], "duration"),
    # --- the gate's decision
    Q("pourquoi la gate a promu exp2 ?", "fr", [r"champion", r"0\.309", r"general_test"], [], "gate"),
    Q("why was exp2-medical promoted?", "en", [r"champion", r"0\.309", r"general_test"], [], "gate"),
    Q("why did the gate refuse french in pii-demo?", "en", [r"french", r"0\.655", r"0\.641"], [], "gate"),
    Q("pourquoi french a été rejeté ?", "fr", [r"french", r"0\.641"], [], "gate"),
    # --- a killed stage: what survived, what a rerun does, the real paths
    Q("pourquoi demo-copie est bloqué ?", "fr",
      [r"exp2-medical", r"tu[eé]|killed|interrompu", r"checkpoint-100", r"runs/demo-copie/exp2-medical-\w+/stage\.log"],
      [r"<[a-z._ -]+>", NO_PLACEHOLDER], "killed"),
    Q("why is demo-copie stuck?", "en", [r"exp2-medical", r"killed", r"checkpoint-100", r"resume"],
      [r"<[a-z._ -]+>", NO_PLACEHOLDER], "killed"),
    Q("what happened to the copy's exp2?", "en", [r"demo-copie", r"killed", r"\b100\b"], [], "killed"),
    Q("demo-copie a crashé, je relance comment ?", "fr", [r"palier run|relan", r"checkpoint-100|repren"],
      [NO_PLACEHOLDER], "killed"),
    Q("logs of the killed stage?", "en", [r"runs/demo-copie/exp2-medical-\w+/stage\.log", r"events\.jsonl"],
      [r"<[a-z._ -]+>"], "killed"),
    # --- a run the preflight blocked (the report is on the parent run)
    Q("pourquoi demo-lexique a échoué ?", "fr", [r"preflight", r"medical_fr_v2\.txt"], [r"aucune etape|no failed stage"],
      "preflight"),
    Q("why did demo-lexique fail", "en", [r"preflight", r"medical_fr_v2\.txt"], [r"no failed stage"], "preflight"),
    Q("demo-lexique blocked?? why", "en", [r"lexicon", r"medical_fr_v2\.txt"], [], "preflight"),
    Q("comment réparer demo-lexique ?", "fr", [r"medical_fr_v2\.txt", r"lexi"], [NO_PLACEHOLDER], "preflight"),
    # --- a pipeline never run
    Q("où en est demo-neuf ?", "fr", [r"demo-neuf", r"jamais|aucun run|pas encore"], [], "never-run"),
    Q("has demo-neuf run?", "en", [r"demo-neuf", r"never|no run"], [], "never-run"),
    # --- the best model for a domain (registry aliases and primary metrics, across pipelines)
    Q("quel est le meilleur modèle pour le médical ?", "fr", [r"demo-whisper-fr-medical", r"champion", r"0\.309"], [],
      "best"),
    Q("best model for medical dictation so far?", "en", [r"demo-whisper-fr-medical", r"champion"], [r"lexicon"], "best"),
    Q("best PII model?", "en", [r"pii-demo-english", r"0\.934"], [], "best"),
    Q("c'est quoi le champion ?", "fr", [r"demo-whisper-fr-medical", r"pii-demo-english"], [], "best"),
    Q("what's the best model so far", "en", [r"demo-whisper-fr-medical|pii-demo-english", r"champion"], [r"lexicon"],
      "best"),
    # --- guard sets across pipelines
    Q("des régressions sur les jeux de garde ?", "fr", [r"general_test", r"0\.281", r"exp2-medical"], [NO_CRASH], "guard"),
    Q("any guard set regressions across pipelines?", "en", [r"general_test", r"0\.281"], [NO_CRASH], "guard"),
    Q("guard sets ok?", "en", [r"general_test"], [NO_CRASH], "guard"),
    # --- playbook topics that had no rule, and an honest "nothing found"
    Q("l'évaluation est trop lente, comment accélérer ?", "fr", [r"ct2|ctranslate2", r"eval_sample",
                                                               r"generation_max_length"], [r"eval_steps"], "playbook"),
    Q("eval is super slow", "en", [r"ct2|ctranslate2", r"eval_sample"], [r"eval_steps"], "playbook"),
    Q("quelle taille de modele whisper choisir ?", "fr", [r"small|medium|large", r"playbooks/"], [], "playbook"),
    Q("which whisper size should I pick for French medical?", "en", [r"large|medium|small", r"playbooks/"], [],
      "playbook"),
    Q("j'ai 50 euros, quel GPU ?", "fr", [r"t4|l4|a10|a100|h100", r"playbooks/"], [], "playbook"),
    Q("which GPU for a small budget?", "en", [r"t4|l4", r"playbooks/"], [], "playbook"),
    Q("comment configurer kubernetes ?", "fr", [r"rien trouv|aucun"], [r"playbooks/[\w-]+\.md#"], "playbook"),
    Q("how do I bake a cake", "en", [r"nothing|no playbook"], [r"playbooks/[\w-]+\.md#"], "playbook"),
    Q("bf16 on T4?", "en", [r"fp16"], [], "playbook"),
    Q("quel GPU sur Modal pour large-v3 ?", "fr", [r"h100"], [], "playbook"),
    # --- vague questions about the state
    Q("ça en est où ?", "fr", [r"demo-copie", r"tu[eé]|killed|interrompu"], [], "vague"),
    Q("status?", "en", [r"demo-copie"], [], "vague"),
    Q("quels pipelines j'ai ?", "fr", [r"demo-copie", r"demo-lexique", r"demo-neuf", r"pii-demo"], [], "vague"),
    # --- follow-ups in one `palier chat` session
    (Q("où en est l'exp2 de demo ?", "fr", [r"\bdemo\b", r"exp2-medical", r"champion"], [], "follow-up"),
     Q("et sa baseline sur le jeu général ?", "fr", [r"exp2-medical", r"general_test", r"0\.254"],
       [r"demo-copie|pii", NOT_KILLED], "follow-up"),
     Q("and on the medical set?", "en", [r"medical_test", r"0\.622", r"0\.309"], [NOT_KILLED], "follow-up")),
    (Q("why is demo-copie stuck?", "en", [r"exp2-medical", r"killed"], [], "follow-up"),
     Q("and the other one?", "en", [r"\bdemo\b", r"exp2-medical", r"champion"], [r"killed"], "follow-up")),
    (Q("is the medical model better than its baseline?", "en", [r"exp2-medical", r"0\.309"], [NOT_KILLED],
       "follow-up"),
     Q("and on the guard set?", "en", [r"general_test", r"0\.254", r"0\.281"], [NOT_KILLED], "follow-up"),
     Q("why was it promoted?", "en", [r"exp2-medical", r"champion"], [], "follow-up")),
    (Q("pii-demo french ?", "fr", [r"french", r"rejected|rejet"], [], "follow-up"),
     Q("pourquoi ?", "fr", [r"0\.655", r"0\.641"], [], "follow-up")),
    (Q("wer de exp1 sur demo ?", "fr", [r"exp1-general", r"0\.254"], [], "follow-up"),
     Q("et exp2 ?", "fr", [r"exp2-medical", r"0\.309|0\.281"], [NOT_KILLED], "follow-up"),
     Q("combien de temps ?", "fr", [r"312|5 min"], [], "follow-up")),
    (Q("demo-lexique ?", "fr", [r"preflight", r"medical_fr_v2\.txt"], [], "follow-up"),
     Q("how do I fix it?", "en", [r"medical_fr_v2\.txt", r"lexicon"], [NO_PLACEHOLDER], "follow-up")),
]

# Written after the fixes, at once, and scored once: never tuned on.
LAST: list[Q | tuple[Q, ...]] = [
    Q("has the medical model improved vs. where it started?", "en", [r"exp2-medical", r"0\.622", r"0\.309"], [NOT_KILLED],
      "results"),
    Q("le modèle médical, il donne quoi sur le jeu médical ?", "fr", [r"0\.309"], [NOT_KILLED], "results"),
    Q("cer of exp2 on medical_test", "en", [r"0\.142"], [NOT_KILLED], "results"),
    Q("exp2 a-t-il perdu sur le français général ?", "fr", [r"general_test", r"0\.281"], [NOT_KILLED], "results"),
    Q("which utterances does the medical model get most wrong?", "en", [r"tachycardie"], [], "worst"),
    Q("montre les erreurs de transcription de exp2", "fr", [r"tachycardie|amoxicilline"], [], "worst"),
    Q("how much time did the medical stage take to train?", "en", [r"312|5\.2 min"], [], "duration"),
    Q("temps d'entraînement de exp1 de demo ?", "fr", [r"312|5\.2 min"], [], "duration"),
    Q("la gate a accepté exp2, pourquoi ?", "fr", [r"champion", r"0\.309"], [], "gate"),
    Q("what made the gate reject the French PII stage?", "en", [r"french", r"0\.641"], [], "gate"),
    Q("the copy of demo died, what's left?", "en", [r"checkpoint-100"], [NO_PLACEHOLDER], "killed"),
    Q("où sont les logs de demo-copie ?", "fr", [r"runs/demo-copie/exp2-medical-\w+/stage\.log"], [r"<[a-z._ -]+>"],
      "killed"),
    Q("si je relance demo-copie, ça reprend où ?", "fr", [r"checkpoint-100|pas 100"], [NO_PLACEHOLDER], "killed"),
    Q("what's wrong with demo-lexique?", "en", [r"medical_fr_v2\.txt"], [], "preflight"),
    Q("demo-lexique n'a pas démarré, pourquoi ?", "fr", [r"preflight|lexique", r"medical_fr_v2\.txt"], [], "preflight"),
    Q("did demo-neuf ever run?", "en", [r"demo-neuf", r"never|no run"], [], "never-run"),
    Q("top model for PII?", "en", [r"pii-demo-english"], [], "best"),
    Q("quel modèle utiliser en prod pour la dictée médicale ?", "fr", [r"demo-whisper-fr-medical"], [], "best"),
    Q("did anything break its guard set?", "en", [r"general_test"], [NO_CRASH], "guard"),
    Q("les jeux de garde tiennent ?", "fr", [r"general_test"], [NO_CRASH], "guard"),
    Q("my evaluation takes forever, any tips?", "en", [r"ct2|ctranslate2|eval_sample"], [], "playbook"),
    Q("small vs medium vs large whisper, lequel prendre ?", "fr", [r"small|medium|large", r"playbooks/"], [],
      "playbook"),
    Q("cheapest GPU to fine-tune whisper small?", "en", [r"t4|l4"], [], "playbook"),
    Q("how do I deploy on AWS SageMaker?", "en", [r"nothing|no playbook"], [r"playbooks/[\w-]+\.md#"], "playbook"),
    Q("quoi de neuf ?", "fr", [r"demo-copie"], [], "vague"),
    Q("list my pipelines", "en", [r"demo-copie", r"demo-lexique", r"demo-neuf", r"pii-demo"], [], "vague"),
    (Q("how is exp1 of demo doing?", "en", [r"exp1-general", r"0\.254"], [], "follow-up"),
     Q("and exp2?", "en", [r"exp2-medical"], [NOT_KILLED], "follow-up"),
     Q("its worst utterances?", "en", [r"tachycardie"], [], "follow-up")),
    (Q("pourquoi demo-lexique a échoué ?", "fr", [r"medical_fr_v2\.txt"], [], "follow-up"),
     Q("et demo-copie ?", "fr", [r"exp2-medical", r"killed|tu[eé]|interrompu"], [], "follow-up")),
    (Q("is pii-demo done?", "en", [r"pii-demo", r"english|french"], [], "follow-up"),
     Q("why was french rejected?", "en", [r"0\.641"], [], "follow-up")),
]


# Written after the fixes the set above prompted (LAST: 23/33 at its first run), at once, scored once.
FINAL: list[Q | tuple[Q, ...]] = [
    Q("est-ce que l'exp2 a fait mieux que le modèle de départ ?", "fr", [r"exp2-medical", r"0\.309"], [NOT_KILLED],
      "results"),
    Q("what's the final WER of the medical model on medical_test?", "en", [r"0\.309"], [NOT_KILLED], "results"),
    Q("exp1 vs exp2 on general_test in demo", "en", [r"0\.254", r"0\.281"], [], "results"),
    Q("le modèle général a baissé le WER de combien ?", "fr", [r"exp1-general", r"0\.412", r"0\.254"], [NOT_KILLED],
      "results"),
    Q("worst examples of the medical model", "en", [r"tachycardie"], [], "worst"),
    Q("quelles sont les pires sorties de exp2 ?", "fr", [r"tachycardie|amoxicilline"], [], "worst"),
    Q("how long did the general stage of demo take?", "en", [r"312|5\.2 min"], [], "duration"),
    Q("durée de l'évaluation de exp2 ?", "fr", [r"18\.5|8\.41"], [], "duration"),
    Q("why did exp2 become champion?", "en", [r"champion", r"0\.309"], [], "gate"),
    Q("french a été refusé par la gate ?", "fr", [r"french", r"rejected|refus|rejet"], [], "gate"),
    Q("demo-copie is dead, can I resume it?", "en", [r"checkpoint-100"], [NO_PLACEHOLDER], "killed"),
    Q("qu'est-il arrivé à exp2 dans demo-copie ?", "fr", [r"killed|tu[eé]|interrompu", r"\b100\b"], [], "killed"),
    Q("where is the stage.log of the killed run?", "en", [r"runs/demo-copie/exp2-medical-\w+/stage\.log"],
      [r"<[a-z._ -]+>"], "killed"),
    Q("demo-lexique won't start", "en", [r"medical_fr_v2\.txt"], [], "preflight"),
    Q("quel est le problème avec demo-lexique ?", "fr", [r"medical_fr_v2\.txt"], [], "preflight"),
    Q("is demo-neuf running?", "en", [r"demo-neuf", r"never|no run|not"], [], "never-run"),
    Q("best model for anonymising PII?", "en", [r"pii-demo-english"], [], "best"),
    Q("le meilleur modèle de transcription ?", "fr", [r"demo-whisper-fr-medical"], [], "best"),
    Q("did any stage regress on a guard set?", "en", [r"general_test"], [NO_CRASH], "guard"),
    Q("régression sur la garde ?", "fr", [r"general_test"], [NO_CRASH], "guard"),
    Q("how to make evaluation faster?", "en", [r"ct2|ctranslate2|eval_sample"], [], "playbook"),
    Q("quel GPU pas cher pour fine-tuner ?", "fr", [r"t4|l4"], [], "playbook"),
    Q("which whisper model size for a small GPU?", "en", [r"small|medium"], [], "playbook"),
    Q("comment faire une pizza ?", "fr", [r"rien trouv"], [r"playbooks/[\w-]+\.md#"], "playbook"),
    Q("what pipelines do I have", "en", [r"demo-copie", r"pii-demo"], [], "vague"),
    (Q("où en est demo ?", "fr", [r"exp1-general", r"exp2-medical"], [r"killed"], "follow-up"),
     Q("et exp2 sur le jeu général ?", "fr", [r"general_test", r"0\.281"], [NOT_KILLED], "follow-up"),
     Q("pourquoi ?", "fr", [r"champion|general_test"], [], "follow-up")),
    (Q("why did demo-copie fail?", "en", [r"killed"], [], "follow-up"),
     Q("what about demo-lexique?", "en", [r"medical_fr_v2\.txt"], [], "follow-up")),
]


def turns(items: list[Q | tuple[Q, ...]]) -> int:
    return sum(len(i) if isinstance(i, tuple) else 1 for i in items)


def _session(state, book):  # noqa: ANN001, ANN202
    """One chat session: the session object when the chat has one, else independent questions."""
    try:
        from agent.chat.session import ChatSession
    except ImportError:
        from agent.chat.respond import ask

        return lambda q: ask(q, state=state, playbooks=book, use_llm=False)
    session = ChatSession(state=state, playbooks=book, use_llm=False)
    return session.ask


def _run_set(name: str, items: list[Q | tuple[Q, ...]], state, book) -> list[dict]:  # noqa: ANN001
    rows = []
    for item in items:
        ask = _session(state, book)
        for q in item if isinstance(item, tuple) else (item,):
            started = time.perf_counter()
            try:
                answer = ask(q.question)
                text, lang, intent = answer.text, answer.language, answer.intent
            except Exception as exc:  # noqa: BLE001 - a crash is a failed answer, counted as such
                text, lang, intent = f"CRASH {type(exc).__name__}: {exc}", "?", "crash"
            problems = score(q, text, lang)
            rows.append({"set": name, "question": q.question, "lang": q.lang, "kind": q.topic, "intent": intent,
                         "passed": not problems, "problems": problems, "answer": text,
                         "seconds": time.perf_counter() - started, "follow_up": isinstance(item, tuple)})
    return rows


def evaluate(sets: tuple[str, ...] = ("lookalike", "last", "final")) -> dict:
    from agent.base.state import LiveState, MlflowState, PrefectState
    from agent.rules import load_checked_playbooks
    from bench.chat_lookalike import build

    chosen = {"lookalike": LOOKALIKE, "last": LAST, "final": FINAL}
    saved = os.environ.get("PALIER_HOME")
    with tempfile.TemporaryDirectory(prefix="palier-chat-ho-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        os.environ["PALIER_HOME"] = str(Path(tmp) / "home")
        try:
            fx = build(Path(tmp) / "state")
            book = load_checked_playbooks()
            state = LiveState(MlflowState(fx.uri), PrefectState(None), fx.pipelines_dir)
            rows = [r for s in sets for r in _run_set(s, chosen[s], state, book)]
        finally:
            if saved is None:
                os.environ.pop("PALIER_HOME", None)
            else:
                os.environ["PALIER_HOME"] = saved
    return {"rows": rows, "sets": {s: _summary([r for r in rows if r["set"] == s]) for s in sets}}


def _summary(rows: list[dict]) -> dict:
    kinds: dict[str, list[bool]] = {}
    for r in rows:
        kinds.setdefault(r["kind"], []).append(r["passed"])
    times = sorted(r["seconds"] for r in rows) or [0.0]
    return {"questions": len(rows), "passed": sum(r["passed"] for r in rows),
            "score": sum(r["passed"] for r in rows) / max(1, len(rows)),
            "kinds": {k: [sum(v), len(v)] for k, v in kinds.items()},
            "max_s": times[-1], "median_s": times[len(times) // 2]}


def report(result: dict) -> str:
    lines = ["# Chat on unseen questions over look-alike pipelines (`python -m bench.chat_heldout`)", "",
             f"load at start: {result.get('load', '?')}", ""]
    for name, s in result["sets"].items():
        lines += [f"## {name}: {s['passed']}/{s['questions']} = {s['score']:.0%} "
                  f"(median {s['median_s']:.2f} s, max {s['max_s']:.2f} s per answer)", "",
                  "| kind | passed |", "|---|---|"]
        lines += [f"| {k} | {p}/{n} |" for k, (p, n) in s["kinds"].items()]
        lines.append("")
    lines += ["## Answers", ""]
    for r in result["rows"]:
        mark = "PASS" if r["passed"] else "FAIL " + "; ".join(r["problems"])
        lines += [f"### {r['question']}", f"*{r['set']}, {r['kind']}, {r['intent']} — {mark}*", "", "```",
                  r["answer"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_heldout", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="chat_heldout", help="file name of the results (without suffix)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result = evaluate() | {"load": load}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(report(result), encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    if not args.quiet:
        for r in result["rows"]:
            if not r["passed"]:
                print(f"FAIL [{r['kind']}] {r['question']}: {'; '.join(r['problems'])}\n{r['answer']}\n", file=sys.stderr)
    for name, s in result["sets"].items():
        kinds = ", ".join(f"{k} {p}/{n}" for k, (p, n) in s["kinds"].items())
        print(f"{name}: {s['passed']}/{s['questions']} = {s['score']:.0%} ({kinds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
