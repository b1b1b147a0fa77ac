"""Every shipped playbook parses; a malformed block fails with the file and block index."""

from __future__ import annotations

import pytest

from agent.playbooks.models import KINDS
from agent.playbooks.parse import PlaybookError, load_playbooks, parse_playbook
from agent.rules.checks import CHECKS

GOOD_RULE = """
```yaml palier-rule
id: demo.rule
title: Demo
when:
  - {path: stage.training.fp16, op: truthy}
severity: warn
message: "m"
fix: "f"
rationale: "r"
```
"""


def test_every_shipped_playbook_loads(book):
    names = {p.file for p in book.playbooks}
    assert {"playbooks/whisper-fr.md", "playbooks/training-troubleshooting.md", "playbooks/backends.md"} <= names
    assert len(book.rules) >= 25 and len(book.failures) >= 30 and book.next_steps
    for item in [*book.rules, *book.failures, *book.next_steps]:
        assert item.source is not None and item.source.section and item.source.line > 0


def test_known_failures_cover_every_kind(book):
    kinds = {f.kind for f in book.failures}
    # "unknown" as a classifier result needs no entry; every other kind has a playbook entry.
    assert set(KINDS) - {"unknown"} <= kinds


def test_h200_story_is_documented(book):
    section = next(s for s in book.sections if "H200" in s.heading)
    assert "4.4.0" in section.text and "5.5.0" in section.text and "gVisor" in section.text and "H100" in section.text


def test_sections_have_anchors_and_rules_cite_them(book):
    rule = book.rule("whisper.h200-flagged-kernel")
    assert rule.source.cite.startswith("playbooks/whisper-fr.md#h200-bloque")


def test_the_user_written_rules_are_present(book):
    text = " ".join(s.text for s in book.sections)
    for phrase in ("batched=True", "--detach", "processing_class=feature_extractor", "baseline AVANT",
                   "modèle précédent", "Impossible de lire le dataset", "machine_shape", "P100"):
        assert phrase in text, phrase


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("```yaml palier-rule\nid: x\n  bad: [\n```\n", "not valid YAML"),
        ("```yaml palier-rule\n- a\n- b\n```\n", "must be a YAML mapping"),
        ("```yaml palier-rules\nid: x\n```\n", "unknown block tag"),
        ("```yaml palier-rule\nid: x\ntitle: t\nseverity: fatal\nmessage: m\nfix: f\nrationale: r\ncheck: credentials\n```\n",
         "severity"),
        ("```yaml palier-failure\nid: f\ntitle: t\nkind: nope\ndiagnosis: d\nfix: f\nevidence: {any: [x]}\n```\n", "kind"),
        ("```yaml palier-failure\nid: f\ntitle: t\nkind: cuda_oom\ndiagnosis: d\nfix: f\nevidence: {any: ['(unclosed']}\n```\n",
         "bad regex"),
        ("```yaml palier-failure\nid: f\ntitle: t\nkind: unknown\ndiagnosis: d\nfix: f\nevidence: {any: [x]}\n"
         "remedy: {action: halve_batch, safe: true}\n```\n", "cannot carry a remedy"),
        ("```yaml palier-failure\nid: f\ntitle: t\nkind: cuda_oom\ndiagnosis: d\nfix: f\nevidence: {any: [x]}\n"
         "remedy: {action: reboot_gpu, safe: true}\n```\n", "remedy.action"),
        ("```yaml palier-failure\nid: f\ntitle: t\nkind: cuda_oom\ndiagnosis: d\nfix: f\nevidence: {any: [x]}\n"
         "remedy: {action: halve_batch, safe: false}\n```\n", "remedy.safe"),
        ("```yaml palier-rule\nid: x\ntitle: t\nseverity: warn\nmessage: m\nfix: f\nrationale: r\ncheck: no_such_check\n```\n",
         "unknown check"),
        ("```yaml palier-rule\nid: x\ntitle: t\nseverity: warn\nmessage: m\nfix: f\nrationale: r\n```\n", "either 'check'"),
        ("```yaml palier-next\nid: n\nstate: exploded\ntitle: t\nsteps: [a]\n```\n", "state"),
        ("```yaml palier-rule\nid: x\n", "unclosed"),
    ],
)
def test_malformed_block_names_file_and_block(body, needle):
    text = "# T\n\n## S\n\n" + GOOD_RULE + "\n## Other\n\n" + body
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, "playbooks/broken.md", checks=CHECKS)
    message = str(info.value)
    assert message.startswith("playbooks/broken.md:")
    assert needle in message
    if "unclosed" not in needle:
        assert info.value.block_index == 2 and "block #2" in message


def test_duplicate_ids_fail_within_and_across_files(tmp_path):
    with pytest.raises(PlaybookError, match="duplicate id 'demo.rule'"):
        parse_playbook("# T\n" + GOOD_RULE + GOOD_RULE, "playbooks/dup.md")
    (tmp_path / "a.md").write_text("# A\n" + GOOD_RULE, encoding="utf-8")
    (tmp_path / "b.md").write_text("# B\n" + GOOD_RULE, encoding="utf-8")
    with pytest.raises(PlaybookError, match="already defined in"):
        load_playbooks(tmp_path)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PlaybookError, match="playbooks folder not found"):
        load_playbooks(tmp_path / "nope")


def test_plain_fences_and_prose_are_ignored():
    pb = parse_playbook("# Title\n\n## A\n\n```python\nprint('x')\n```\n\ntext\n" + GOOD_RULE, "playbooks/x.md")
    assert pb.title == "Title" and [r.id for r in pb.rules] == ["demo.rule"]
    assert [s.heading for s in pb.sections] == ["Title", "A"]


def test_check_names_are_verified_only_against_the_table_passed_in():
    text = ("# T\n\n## S\n\n```yaml palier-rule\nid: x\ntitle: t\nseverity: warn\nmessage: m\nfix: f\n"
            "rationale: r\ncheck: no_such_check\n```\n")
    assert parse_playbook(text, "playbooks/p.md").rules[0].check == "no_such_check"
    with pytest.raises(PlaybookError, match="unknown check 'no_such_check'"):
        parse_playbook(text, "playbooks/p.md", checks=CHECKS)
