"""The look-alike state (bench/chat_lookalike.py), built once per session for the chat tests:
a finished demo, its killed copy (more recent), a preflight-blocked copy, a never-run copy, pii-demo."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def lookalike(tmp_path_factory):
    import os

    from agent.base.state import LiveState, MlflowState, PrefectState
    from bench.chat_lookalike import build

    saved = os.environ.get("PALIER_HOME")
    root = tmp_path_factory.mktemp("chat-lookalike")
    os.environ["PALIER_HOME"] = str(root / "home")  # stage folders (logs, checkpoints) live here
    fx = build(root / "state")
    yield LiveState(MlflowState(fx.uri), PrefectState(None), fx.pipelines_dir)
    if saved is None:
        os.environ.pop("PALIER_HOME", None)
    else:
        os.environ["PALIER_HOME"] = saved
