"""The CLI's output does not depend on the terminal width or the path length: messages stay on
one line, and tables become one block per row when they would not fit (COLUMNS=60, a real pty)."""

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from rich.console import Console

from core.terminal import print_table
from repo_paths import ROOT

PALIER = str(Path(sys.executable).parent / "palier")


def _in_pty(args: list[str], columns: int, cwd: Path = ROOT) -> str:
    """Run a command on a real terminal ``columns`` wide; its output, ANSI codes included."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, cwd=cwd, env=env, close_fds=True)
    os.close(child)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _plain(text: str) -> list[str]:
    import re

    return [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", line).rstrip("\r") for line in text.split("\n")]


def test_check_on_a_60_column_terminal_prints_one_block_per_finding():
    lines = _plain(_in_pty([PALIER, "check", "pipelines/fr.yaml", "--no-autofix"], 60))
    rules = [line.split("rule:", 1)[1].strip() for line in lines if line.strip().startswith("rule:")]
    assert "backend.modal-credentials" in rules and len(rules) >= 3, "\n".join(lines)
    # Each finding's message is whole on its line (the terminal may fold it; we never cut it).
    message = next(line for line in lines if "message / fix:" in line and "MODAL_TOKEN_ID" in line)
    assert "backend modal" in message and "~/.modal.toml" in message
    assert not any(set(line.strip()) <= set("│┃━─┏┓┗┛┡┩└┘├┤┼╇╋ ") and line.strip() for line in lines), "a table was drawn"


def test_errors_stay_on_one_line_with_a_long_path_and_narrow_columns(tmp_path):
    deep = tmp_path.joinpath(*[f"a-rather-long-folder-name-{i}" for i in range(6)])
    deep.mkdir(parents=True)
    env = {**os.environ, "COLUMNS": "60"}
    folder = subprocess.run([PALIER, "diagnose", str(deep)], capture_output=True, text=True, env=env, timeout=120)
    assert folder.returncode == 2
    assert f"error: {deep}: log file is a folder, expected a file" in folder.stderr.splitlines()

    bad = deep / "bad.yaml"
    bad.write_text("name: x\nfamily: asr\nbase_model: m\nstages: []\nname: y\n", encoding="utf-8")
    shown = _plain(_in_pty([PALIER, "validate", str(bad)], 60))
    assert any(f"✗ {bad}: invalid pipeline" in line for line in shown), "\n".join(shown)
    assert any("line 5: key 'name' appears twice in the same mapping (first on line 1): keep one" in line
               for line in shown), "\n".join(shown)


def _render(width: int, terminal: bool) -> str:
    buffer = io.StringIO()
    out = Console(file=buffer, width=width, force_terminal=terminal, color_system=None, soft_wrap=True)
    rows = [["exp1-general", "general_test", "wer", "0.197", "0.056"],
            ["exp2-medical", "medical_test", "medical_term_accuracy", "0.000", "0.250"]]
    print_table(out, "demo", ("stage", "eval set", "metric", "baseline", "final"), rows)
    return buffer.getvalue()


def test_a_table_is_drawn_only_when_every_cell_fits():
    wide = _render(120, terminal=True)
    assert "┃ stage" in wide and "│ exp2-medical │ medical_test │ medical_term_accuracy │" in wide
    narrow = _render(50, terminal=True)
    assert "┃" not in narrow and "│" not in narrow
    assert "  metric:   medical_term_accuracy" in narrow.splitlines()
    assert narrow.count("stage:") == 2  # one block per row
