"""`palier mcp`: palier's agent tools over the Model Context Protocol (official ``mcp`` SDK), so
any assistant (Claude Code, Cursor, the MLflow UI's Assistant through Claude Code) can read
pipelines, stages, gates, diagnoses and playbooks, and ask for guarded actions.

The interface layer, like the CLI: every tool calls the agent's own functions, reads a fresh
state of MLflow and Prefect, and passes its whole answer (and any error message) through the
redaction `palier ask` uses. Bad arguments become tool errors (``is_error``), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import TextResource
from mcp.types import ToolAnnotations
from pydantic import Field

# The agent's functions, in one place.
from agent.chat import actions, tools
from agent.diagnosis.diagnose import diagnose as classify_log
from agent.diagnosis.file_inputs import InputFileError, read_run_log
from agent.playbooks.parse import PlaybookSet, default_playbooks_dir
from agent.rules import load_checked_playbooks
from agent.base.redact import redact, redact_obj
from agent.base.state import LiveState

INSTRUCTIONS = (
    "palier runs progressive fine-tuning pipelines (stage 1 -> stage 2 -> ..., each stage starting from the "
    "previous stage's model) as Prefect flows tracked in MLflow, with a gate that promotes a stage's model to the "
    "registry alias 'champion' or leaves it 'candidate'. Start with list_pipelines; every answer cites its sources "
    "(MLflow runs, Prefect flow runs, playbook sections). run_pipeline refuses when the preflight blocks; "
    "move_alias changes nothing unless confirm is true: ask the user first."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

PipelineRef = Annotated[str, Field(description="pipeline name (as in list_pipelines) or pipeline YAML path")]
OptionalPipeline = Annotated[str | None, Field(description="pipeline name; default: the most recent one")]
StageRef = Annotated[str | None, Field(description="stage name, number ('2', 'exp2') or domain word ('medical')")]
EvalSet = Annotated[str | None, Field(description="eval set name (e.g. medical_test); default: all / the primary set")]


def _message(exc: BaseException) -> str:
    known = (actions.ActionError, InputFileError, LookupError, ValueError)
    return str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"


def answer(compute: Callable[[LiveState], dict[str, Any]]) -> dict[str, Any]:
    """Run one tool on a fresh, consistent view of the services; its answer redacted, its
    failure (an ``error`` answer or an exception) a redacted tool error."""
    state = LiveState.from_env()
    try:
        with state.mlflow.snapshot():
            result = compute(state)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure reaches the assistant as one sentence
        raise ToolError(redact(_message(exc))) from None
    if result.get("ok") is False and result.get("error"):
        notes = [n for n in result.get("notes") or [] if n not in result["error"]]
        raise ToolError(redact("; ".join([result["error"], *notes])))
    return redact_obj(result)


def _read_tools(server: MCPServer, book: PlaybookSet) -> None:
    @server.tool(annotations=READ_ONLY)
    def list_pipelines() -> dict[str, Any]:
        """Every pipeline palier knows (MLflow experiments palier/<name> and pipeline files) with its
        state: running, succeeded, failed, interrupted (process gone), gate_rejected, candidate, partial,
        no_runs; and how many stages ran out of those planned."""
        return answer(tools.list_pipelines)

    @server.tool(annotations=READ_ONLY)
    def pipeline_status(pipeline: OptionalPipeline = None) -> dict[str, Any]:
        """A pipeline's latest run: each stage's status, gate verdict, baseline/final metrics (primary eval set
        first), whether a running stage's process is alive, the Prefect flow run, earlier runs."""
        return answer(lambda state: tools.pipeline_status(state, pipeline))

    @server.tool(annotations=READ_ONLY)
    def compare_stages(pipeline: OptionalPipeline = None, stage: StageRef = None,
                       other_stage: StageRef = None, eval_set: EvalSet = None) -> dict[str, Any]:
        """A stage against its own baseline and the previous stage (delta, delta_prev); with other_stage, two
        stages side by side (final vs final on the sets they share). Only quality metrics get better/worse."""
        def compare(state: LiveState) -> dict[str, Any]:
            status = tools.pipeline_status(state, pipeline)
            for ref in (stage, other_stage):
                if ref and status.get("ok"):
                    _, why = tools.stage_or_error(status, ref)
                    if why:
                        return {"ok": False, "error": why}
            return tools.compare_stage(state, pipeline, stage, other_stage, eval_set)

        return answer(compare)

    @server.tool(annotations=READ_ONLY)
    def worst_predictions(pipeline: OptionalPipeline = None, stage: StageRef = None, eval_set: EvalSet = None,
                          phase: Annotated[str, Field(pattern="^(baseline|final)$")] = "final",
                          k: Annotated[int, Field(ge=1, le=50)] = 5) -> dict[str, Any]:
        """A stage's worst utterances/examples on an eval set: reference, prediction, per-item error."""
        return answer(lambda state: tools.worst_predictions(state, pipeline, stage, eval_set, phase, k))

    @server.tool(annotations=READ_ONLY)
    def champion(model: Annotated[str, Field(description="registered model name (a stage's output_name)")]
                 ) -> dict[str, Any]:
        """The champion of a registered model: its version, the stage run that trained it and its primary-set
        metrics; all versions and aliases."""
        return answer(lambda state: tools.champion(state, model))

    _diagnosis_tools(server, book)


def _diagnosis_tools(server: MCPServer, book: PlaybookSet) -> None:
    @server.tool(annotations=READ_ONLY)
    def diagnose(pipeline: OptionalPipeline = None, stage: StageRef = None,
                 log_path: Annotated[str | None, Field(description="a stage.log or events.jsonl on this machine")] = None,
                 events_path: Annotated[str | None, Field(description="events.jsonl beside log_path")] = None
                 ) -> dict[str, Any]:
        """Why a run failed, stalled or was killed. With log_path: classify that log with the playbooks'
        known failures. Otherwise the pipeline's (failed) stage: the diagnosis the flow recorded, the remedy
        applied, the playbook's fix, and the rules' verdict on the stage's log."""
        if log_path:
            return answer(lambda _state: _diagnose_log(book, log_path, events_path))
        return answer(lambda state: tools.diagnose_stage(state, book, pipeline, stage))

    @server.tool(annotations=READ_ONLY)
    def preflight(pipeline: PipelineRef) -> dict[str, Any]:
        """The playbook rules (credentials, data paths, lexicons, GPU, config pitfalls) on every stage of a
        pipeline file against this machine, as `palier check`: ok false when a rule blocks the launch."""
        return answer(lambda state: actions.preflight_report(state, book, pipeline))

    @server.tool(annotations=READ_ONLY)
    def search_playbooks(query: Annotated[str, Field(min_length=1, max_length=2000)],
                         k: Annotated[int, Field(ge=1, le=10)] = 3) -> dict[str, Any]:
        """The team's playbook sections about a topic, with the rules and known failures they define."""
        return answer(lambda _state: tools.search_playbooks(book, query, k))

    @server.tool(annotations=READ_ONLY)
    def services_status() -> dict[str, Any]:
        """Are MLflow and Prefect configured and answering (and the `palier up` processes alive)?"""
        return answer(_services)


def _diagnose_log(book: PlaybookSet, log_path: str, events_path: str | None) -> dict[str, Any]:
    run_log = read_run_log(Path(log_path), Path(events_path) if events_path else None)
    result = classify_log(run_log.text, run_log.heartbeat, playbooks=book, use_llm=False, log_age_s=run_log.age_s)
    sources = [{"kind": "log_file", "ref": log_path, "label": None}]
    if result.section:
        sources.append({"kind": "playbook", "ref": result.section, "label": result.failure_id})
    return {"ok": True, "log_path": log_path, "diagnosis": result.model_dump(mode="json"), "sources": sources,
            "notes": []}


def _services(state: LiveState) -> dict[str, Any]:
    from core.paths import home

    result = tools.service_status(state)
    if (home() / "services.json").is_file():  # started by `palier up` from here
        from palier.services import status

        result["palier_up"] = status()
    return result


def _action_tools(server: MCPServer, book: PlaybookSet) -> None:
    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False))
    def run_pipeline(pipeline: PipelineRef,
                     stage: Annotated[str | None, Field(description="run only this stage (its upstream stage's "
                                                                        "output must exist)")] = None
                     ) -> dict[str, Any]:
        """Start a pipeline (or one stage) through its Prefect deployment; also resumes a failed or killed run
        (finished stages are reused). The preflight runs first: when it blocks, nothing starts and the answer
        is its report."""
        return answer(lambda state: actions.run_pipeline(state, book, pipeline, stage))

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True))
    def move_alias(model: str, alias: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$")], version: str,
                   confirm: Annotated[bool, Field(description="must be true to change anything; ask the user")] = False
                   ) -> dict[str, Any]:
        """Point a registered model's alias (champion, candidate, ...) at a version. Without confirm: true
        nothing changes and the answer says what would."""
        return answer(lambda state: actions.move_alias(state, model, alias, version, confirm))


def _playbook_resources(server: MCPServer) -> None:
    """Each playbook file as a resource ``playbook://<file stem>`` (Markdown, redacted)."""
    for path in sorted(default_playbooks_dir().glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
        server.add_resource(TextResource(uri=f"playbook://{path.stem}", name=path.stem, title=title,
                                         description=f"palier playbook {path.name}: {title}",
                                         mime_type="text/markdown", text=redact(text)))


def build_server(book: PlaybookSet | None = None) -> MCPServer:
    """The MCP server with palier's tools and playbooks (loaded once: a malformed playbook fails here)."""
    from palier import __version__

    book = book or load_checked_playbooks()
    server = MCPServer("palier", title="palier", instructions=INSTRUCTIONS, version=__version__,
                       log_level="WARNING")
    _read_tools(server, book)
    _action_tools(server, book)
    _playbook_resources(server)
    return server
