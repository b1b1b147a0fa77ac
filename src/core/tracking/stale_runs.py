"""MLflow runs left RUNNING by a process that died: find them, close them as KILLED.

Each palier run records its owner (core.liveness) in tags; a run is closed only when its owner
is known dead (process gone on this host, host rebooted, or no heartbeat from another host for
an hour). The reason and the time are kept as tags, so the chat and `palier summary` say what
happened instead of "running".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core import liveness
from core.tracking import schema as S


@dataclass(frozen=True)
class StaleRun:
    run_id: str
    experiment_id: str
    run_name: str
    kind: str  # pipeline | stage
    reason: str
    flow_run_id: str | None


def owner_tags(owner: liveness.Owner | None = None) -> dict[str, str]:
    owner = owner or liveness.current_owner()
    return {S.TAG_OWNER_HOST: owner.host, S.TAG_OWNER_BOOT: owner.boot_id, S.TAG_OWNER_PID: str(owner.pid),
            S.TAG_OWNER_STARTED: owner.started, S.TAG_HEARTBEAT: str(int(time.time()))}


def owner_from_tags(tags: dict[str, str]) -> liveness.Owner | None:
    if not tags.get(S.TAG_OWNER_HOST) or not tags.get(S.TAG_OWNER_PID, "").isdigit():
        return None
    return liveness.Owner(tags[S.TAG_OWNER_HOST], tags.get(S.TAG_OWNER_BOOT, ""), int(tags[S.TAG_OWNER_PID]),
                          tags.get(S.TAG_OWNER_STARTED, ""))


def last_sign_of_life(run) -> float:
    """Latest of: the run's start, its heartbeat tag, its last logged metric (epoch seconds)."""
    times = [run.info.start_time / 1000.0]
    beat = run.data.tags.get(S.TAG_HEARTBEAT, "")
    if beat.isdigit():
        times.append(float(beat))
    times += [m.timestamp / 1000.0 for m in getattr(run.data, "_metric_objs", [])]
    return max(times)


def stale_reason(run, here: liveness.Owner, now: float, silence_limit_s: float = liveness.SILENCE_LIMIT_S) -> str | None:
    owner = owner_from_tags(run.data.tags)
    same_machine = owner is not None and owner.host == here.host and (
        not owner.boot_id or owner.boot_id == here.boot_id)
    alive = liveness.owner_alive_here(owner) if same_machine else None
    return liveness.death_reason(owner, here, alive, last_sign_of_life(run), now, silence_limit_s)


def find_stale(c, silence_limit_s: float = liveness.SILENCE_LIMIT_S) -> list[StaleRun]:
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    here, now = liveness.current_owner(), time.time()
    found = []
    for i in range(0, len(experiments), 100):  # the tracking API caps the list of experiment ids
        runs = c.search_runs(experiments[i:i + 100], filter_string="attributes.status = 'RUNNING'", max_results=5000)
        for run in runs:
            tags = run.data.tags
            if S.TAG_KIND not in tags:
                continue  # not palier's
            reason = stale_reason(run, here, now, silence_limit_s)
            if reason:
                found.append(StaleRun(run.info.run_id, run.info.experiment_id, run.info.run_name or "",
                                      tags[S.TAG_KIND], reason, tags.get(S.TAG_FLOW_RUN_ID)))
    return found


def close(c, stale: StaleRun) -> None:
    from mlflow.entities import RunTag

    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    c.log_batch(stale.run_id, tags=[RunTag(S.TAG_KILLED_REASON, stale.reason), RunTag(S.TAG_KILLED_AT, when),
                                    RunTag(S.TAG_STATUS, "killed")])
    c.set_terminated(stale.run_id, status="KILLED")


def close_stale_runs(c, silence_limit_s: float = liveness.SILENCE_LIMIT_S) -> list[StaleRun]:
    closed = []
    for stale in find_stale(c, silence_limit_s):
        close(c, stale)
        closed.append(stale)
    return closed


def flow_run_death(c, flow_run_id: str) -> str | None:
    """The reason the process that ran ``flow_run_id`` is known dead, from its MLflow pipeline run."""
    from mlflow.entities import ViewType

    experiments = [e.experiment_id for e in c.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    for i in range(0, len(experiments), 100):
        runs = c.search_runs(experiments[i:i + 100],
                             filter_string=f"tags.`{S.TAG_FLOW_RUN_ID}` = '{flow_run_id}' "
                                           f"and tags.`{S.TAG_KIND}` = 'pipeline'", max_results=1)
        if runs:
            reason = runs[0].data.tags.get(S.TAG_KILLED_REASON)
            if runs[0].info.status == "KILLED" and reason:
                return f"the process running this flow died: {reason} (MLflow run {runs[0].info.run_id} closed as KILLED)"
            return None
    return None
