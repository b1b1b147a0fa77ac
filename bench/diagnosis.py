"""``python -m bench.diagnosis``: the rule-based diagnoser measured on real logs.

Runs every log of ``bench/diagnosis_corpus`` (labels.jsonl) through ``agent.diagnosis.diagnose`` (rules
only, no LLM) and writes ``bench/results/diagnosis.md`` and ``.json``: accuracy per expected kind
on the ``tune`` and ``held_out`` parts, false hangs (a hang kind for a log that is not a hang),
and the confusion of every miss. Pure text: a few seconds, no model, no server.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "diagnosis_corpus"
RESULTS = Path(__file__).parent / "results"
HANG_KINDS = ("kernel_hang", "map_hang")
SPLITS = ("tune", "held_out")
# Batches from this one on were collected after the rules were last frozen (issue 22): every
# log of theirs is scored, whatever its split, and none was ever tuned on. Batch 10 was the
# first post-freeze batch (16/24 at first contact, docs/diagnosis.md), then a tuning batch.
POST_FREEZE_BATCH = 11


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    split: str
    source: str
    log: Path
    log_age_s: float | None = None
    batch: int = 1


@dataclass(frozen=True)
class Outcome:
    case: Case
    predicted: str
    failure_id: str | None

    @property
    def correct(self) -> bool:
        return self.predicted == self.case.kind

    @property
    def false_hang(self) -> bool:
        return self.predicted in HANG_KINDS and self.case.kind not in HANG_KINDS


def load_cases(corpus: Path = CORPUS) -> list[Case]:
    cases = []
    for n, raw in enumerate((corpus / "labels.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        rec = json.loads(raw)
        log = corpus / rec["kind"] / f"{rec['id']}.log"
        if not log.is_file():
            raise FileNotFoundError(f"{corpus / 'labels.jsonl'} line {n}: no log file {log}")
        cases.append(Case(id=rec["id"], kind=rec["kind"], split=rec["split"], source=rec["source"], log=log,
                          log_age_s=rec.get("log_age_s"), batch=rec.get("batch", 1)))
    return cases


def run_cases(cases: list[Case]) -> list[Outcome]:
    from agent.diagnosis.diagnose import diagnose, read_log
    from agent.playbooks.parse import load_playbooks

    book = load_playbooks()
    takes_age = "log_age_s" in inspect.signature(diagnose).parameters
    out = []
    for case in cases:
        kwargs = {"log_age_s": case.log_age_s} if takes_age else {}
        result = diagnose(read_log(case.log), None, playbooks=book, use_llm=False, **kwargs)
        out.append(Outcome(case, result.kind, result.failure_id))
    return out


def summarize(outcomes: list[Outcome]) -> dict:
    per_kind: dict[str, dict[str, list[int]]] = defaultdict(lambda: {s: [0, 0] for s in SPLITS})
    totals = {s: [0, 0] for s in SPLITS}
    confusion: Counter[tuple[str, str, str]] = Counter()
    for o in outcomes:
        cell = per_kind[o.case.kind][o.case.split]
        cell[1] += 1
        totals[o.case.split][1] += 1
        if o.correct:
            cell[0] += 1
            totals[o.case.split][0] += 1
        else:
            confusion[(o.case.kind, o.predicted, o.case.split)] += 1
    healthy = [o for o in outcomes if o.case.kind == "none"]
    batches: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        if o.case.split == "held_out":
            batches[o.case.batch][1] += 1
            batches[o.case.batch][0] += o.correct
    frozen = [o for o in outcomes if o.case.batch >= POST_FREEZE_BATCH]
    return {
        "post_freeze": {"correct": sum(o.correct for o in frozen), "n": len(frozen),
                        "false_hangs": sum(o.false_hang for o in frozen)},
        "held_out_by_batch": {str(b): {"correct": c, "n": n} for b, (c, n) in sorted(batches.items())},
        "totals": {s: {"correct": c, "n": n, "accuracy": round(c / n, 4) if n else None} for s, (c, n) in totals.items()},
        "per_kind": {k: {s: {"correct": c, "n": n} for s, (c, n) in v.items()} for k, v in sorted(per_kind.items())},
        "false_hangs_healthy": sum(o.false_hang for o in healthy),
        "healthy": len(healthy),
        "false_hangs_all": sum(o.false_hang for o in outcomes),
        "misses": [{"id": o.case.id, "split": o.case.split, "expected": o.case.kind, "predicted": o.predicted,
                    "failure_id": o.failure_id, "source": o.case.source} for o in outcomes if not o.correct],
        "confusion": [{"expected": e, "predicted": p, "split": s, "count": n} for (e, p, s), n in sorted(confusion.items())],
    }


def _cell(c: int, n: int) -> str:
    return f"{c}/{n}" if n else "–"


def render(summary: dict, label: str) -> str:
    t = summary["totals"]
    lines = [
        f"# Diagnosis on real logs ({label})",
        "",
        "`python -m bench.diagnosis`: every log of `bench/diagnosis_corpus` through `agent.diagnosis.diagnose` "
        "(rules only). The `held_out` part (sha256(id) first hex digit < 6) is never used to tune rules.",
        "",
        "| part | correct | accuracy |",
        "| --- | --- | --- |",
    ]
    for s in SPLITS:
        acc = t[s]["accuracy"]
        lines.append(f"| {s} | {t[s]['correct']}/{t[s]['n']} | {acc * 100:.1f} % |" if acc is not None else f"| {s} | – | – |")
    by_batch = ", ".join(f"batch {b}: {v['correct']}/{v['n']}" for b, v in summary["held_out_by_batch"].items())
    lines += [
        "",
        f"Held-out by collection batch ({by_batch}). Batch 1 was collected before the rules were "
        "changed; the later ones after, and their held-out logs were only run, never tuned on.",
        "",
        f"Collected after the rules were frozen (batch {POST_FREEZE_BATCH} on, every log, never tuned on): "
        f"{_cell(summary['post_freeze']['correct'], summary['post_freeze']['n'])}"
        + (f" ({summary['post_freeze']['correct'] / summary['post_freeze']['n'] * 100:.1f} %)"
           if summary["post_freeze"]["n"] else "")
        + f", false hangs {summary['post_freeze']['false_hangs']}.",
        "",
        f"False hangs: {summary['false_hangs_healthy']} on {summary['healthy']} healthy runs, "
        f"{summary['false_hangs_all']} on all non-hang logs.",
        "",
        "| expected kind | tune | held_out |",
        "| --- | --- | --- |",
    ]
    for kind, cells in summary["per_kind"].items():
        lines.append(f"| {kind} | {_cell(cells['tune']['correct'], cells['tune']['n'])} | "
                     f"{_cell(cells['held_out']['correct'], cells['held_out']['n'])} |")
    lines += ["", "## Misses", ""]
    if summary["misses"]:
        lines += ["| log | part | expected | diagnosed | source |", "| --- | --- | --- | --- | --- |"]
        for m in summary["misses"]:
            got = m["predicted"] + (f" ({m['failure_id']})" if m["failure_id"] else "")
            lines.append(f"| {m['id']} | {m['split']} | {m['expected']} | {got} | {m['source']} |")
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diagnosis", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="diagnosis", help="results file name under bench/results/")
    parser.add_argument("--label", default="current rules", help="what is measured, for the report title")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    outcomes = run_cases(load_cases())
    summary = summarize(outcomes)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    text = render(summary, args.label)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text(text, encoding="utf-8")
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(text)
    print(f"[{len(outcomes)} logs in {summary['seconds']} s] wrote {RESULTS / args.name}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
