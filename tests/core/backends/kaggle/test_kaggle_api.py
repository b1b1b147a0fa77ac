"""The installed kaggle 2.2.4 client over a fake HTTP transport (kaggle_http_fake): what palier
makes of the answers Kaggle really gives — 403 for a private dataset that does not exist, a
status call that names no version and may describe the previous session right after a push,
rate limits and outages. Not exercised: the real service's timing and its exact texts."""

from __future__ import annotations

import json
import time

import pytest
import requests
from kaggle_http_fake import FakeKaggleHTTP

from core.backends.errors import CredentialsMissing, ServiceUnavailable
from core.backends.kaggle.backend import KaggleBackend
from core.backends.kaggle.client import KaggleClient
from core.contracts import JobHandle

KERNEL = "alice/palier-fr-general"


@pytest.fixture
def http(monkeypatch, no_credentials):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "legacy-key-for-tests")  # the legacy key needs no network to authenticate
    fake = FakeKaggleHTTP()
    monkeypatch.setattr(requests.Session, "send", lambda session, request, **kw: fake.send(session, request, **kw))
    return fake


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def test_a_missing_private_dataset_answers_403_and_reads_as_absent(http):
    client = KaggleClient()
    denied = {"code": 403, "message": "Permission 'datasets.get' was denied"}
    http.answer("ListDatasetFiles", (403, denied), (404, {"code": 404, "message": "Not found"}),
                (200, {"datasetFiles": [{"name": "palier-inputs-abc.json"}, {"name": "d1.tar"}]}))
    assert client.dataset_files("alice/palier-fr-general-inputs") is None  # -> created, not a crash
    assert client.dataset_files("alice/palier-fr-general-inputs") is None
    assert client.dataset_files("alice/palier-fr-general-inputs") == {"palier-inputs-abc.json", "d1.tar"}
    assert http.sent("ListDatasetFiles")[0] == {"ownerSlug": "alice", "datasetSlug": "palier-fr-general-inputs",
                                                "pageToken": "", "pageSize": 200}


def test_rate_limits_and_outages_are_transient_a_rejected_key_is_not(http):
    client = KaggleClient()
    http.answer("ListDatasetFiles", (429, {"code": 429, "message": "Too many requests"}),
                (503, {"code": 503, "message": "Service unavailable"}),
                (401, {"code": 401, "message": "Unauthenticated"}))
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            client.dataset_files("alice/palier-fr-general-inputs")
    with pytest.raises(CredentialsMissing, match="access_token"):
        client.dataset_files("alice/palier-fr-general-inputs")
    http.answer("GetKernelSessionStatus", (429, {"code": 429, "message": "Too many requests"}))
    with pytest.raises(ServiceUnavailable, match="429"):
        KaggleBackend(transport=client).poll(handle(version=3))


def handle(version: int, pushed_at: float | None = None) -> JobHandle:
    return JobHandle(backend="kaggle", job_id=KERNEL, out_dir="/nonexistent", submitted_at=pushed_at or time.time(),
                     details={"version": version, "url": f"https://www.kaggle.com/code/{KERNEL}"})


def test_a_status_right_after_a_push_is_believed_only_for_the_pushed_version(http, tmp_path):
    pushed = time.time()
    job = handle(version=7, pushed_at=pushed).model_copy(update={"out_dir": str(tmp_path)})
    backend = KaggleBackend(transport=KaggleClient())
    before_push = iso(pushed - 3600)
    http.answer("GetKernelSessionStatus", (200, {"status": "COMPLETE"}), (200, {"status": "COMPLETE"}),
                (200, {"status": "QUEUED"}), (200, {"status": "RUNNING"}), (200, {"status": "COMPLETE"}))
    http.answer("GetKernel", (200, {"metadata": {"currentVersionNumber": 6, "lastRunTime": before_push}}),
                (200, {"metadata": {"currentVersionNumber": 7, "lastRunTime": before_push}}),
                (200, {"metadata": {"currentVersionNumber": 7, "lastRunTime": iso(pushed + 5)}}))
    first = backend.poll(job)  # the previous version's COMPLETE, version 7 not registered yet
    assert first.state == "pending" and "version 7" in first.message
    second = backend.poll(job)  # version 7 registered, but the COMPLETE is still the old session's
    assert second.state == "pending" and "previous session" in second.message
    assert [backend.poll(job).state for _ in range(2)] == ["pending", "running"]
    assert backend.poll(job).state == "succeeded"
    assert http.sent("GetKernel")[0] == {"userName": "alice", "kernelSlug": "palier-fr-general"}
    assert len(http.sent("GetKernel")) == 3  # asked only when a status could be stale, not at every poll
    backend.cancel(job)  # stops the log relay thread started while running


def test_a_newer_version_supersedes_a_recorded_job(http):
    backend = KaggleBackend(transport=KaggleClient())
    http.answer("GetKernelSessionStatus", (200, {"status": "RUNNING"}), (200, {"status": "COMPLETE"}))
    http.answer("GetKernel", (200, {"metadata": {"currentVersionNumber": 8}}),
                (200, {"metadata": {"currentVersionNumber": 8}}))
    assert not backend.reattach(handle(version=7))  # another push since: not this job's session
    status = backend.poll(handle(version=7))
    assert status.state == "failed" and "version 8" in status.message


def test_a_push_names_the_upstream_kernel_as_a_source_and_a_refused_source_is_an_error(http, tmp_path):
    from core.backends.errors import BackendError
    from core.backends.kaggle.kernel import CODE_FILE, KaggleSettings, kernel_metadata

    metadata = kernel_metadata("alice", "palier-fr-medical", "NvidiaTeslaT4", ["alice/palier-fr-medical-inputs"],
                               KaggleSettings(), [KERNEL])
    (tmp_path / "kernel-metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    (tmp_path / CODE_FILE).write_text("print('stage')\n", encoding="utf-8")
    url = "https://www.kaggle.com/code/alice/palier-fr-medical"
    http.answer("SaveKernel", (200, {"versionNumber": 2, "url": url}),
                (200, {"versionNumber": 3, "url": url, "invalidKernelSources": [KERNEL]}))
    client = KaggleClient()
    assert client.push_kernel(tmp_path, 3600).version == 2
    sent = http.sent("SaveKernel")[0]
    assert sent["kernelDataSources"] == [KERNEL] and sent["datasetDataSources"] == ["alice/palier-fr-medical-inputs"]
    with pytest.raises(BackendError, match=f"not valid kernel sources: \\['{KERNEL}'\\]"):
        client.push_kernel(tmp_path, 3600)
