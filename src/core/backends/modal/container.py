"""The function Modal runs in the container: write the spec, supervise the runner, commit the volume.

Committing every ``commit_every_s`` is what makes events, stage.log and checkpoints visible to the
orchestrator (and to a retry) while the stage runs: a Modal volume shows a container's writes to
others only after ``commit()``. The runner and the supervisor keep no file of the output folder
open between writes, so the reload that follows each commit is not blocked by them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_stage_in_container(request: dict[str, Any]) -> dict[str, Any]:
    import modal

    from core.backends.supervisor import supervise

    volume = modal.Volume.from_name(request["volume"])
    out = Path(request["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(request["spec_json"], encoding="utf-8")
    code = supervise(
        request["command"], out, request["env"],
        timeout_s=request["timeout_s"], on_tick=lambda: commit(volume), tick_every_s=request["commit_every_s"],
    )
    return {"exit_code": code}


def commit(volume) -> str:
    """Publish the container's writes. ``Volume.commit()`` sends the commit, then reloads the
    volume; the reload fails while a file on it is open (a checkpoint being written, a download
    in the hub cache). The commit itself has gone through by then, so that failure is reported,
    not raised: the events and the log are published either way."""
    try:
        volume.commit()
    except RuntimeError as exc:
        if "open files" not in str(exc):
            raise
        message = f"palier: volume committed; Modal could not reload it ({exc}); the next commit retries"
        print(message, flush=True)
        return message
    return "committed"
