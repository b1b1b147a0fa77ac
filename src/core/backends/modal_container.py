"""The function Modal runs in the container: write the spec, supervise the runner, commit the volume.

Committing every ``commit_every_s`` is what makes events, stage.log and checkpoints visible to the
orchestrator (and to a retry) while the stage runs: a Modal volume shows a container's writes to
others only after ``commit()``.
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
        timeout_s=request["timeout_s"], on_tick=volume.commit, tick_every_s=request["commit_every_s"],
    )
    return {"exit_code": code}
