"""The Kaggle kernel's program (core.backends.kaggle.entry) run offline, against a folder laid
out like a kernel's /kaggle/input (the mounted inputs dataset) and /kaggle/working."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from core.backends.kaggle.backend import plan_kernel
from core.backends.kaggle.entry import (
    INPUT_PLACEHOLDER,
    KernelLayout,
    check_gpus,
    main,
    supervised_command,
    unpack_inputs,
    unsupported_gpus,
    upstream_output,
)
from core.backends.supervisor import EVENT_PREFIX, EXIT_FILE

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def layout(tmp_path) -> KernelLayout:
    (tmp_path / "kaggle" / "working").mkdir(parents=True)
    return KernelLayout(tmp_path / "kaggle", tmp_path / "scratch", install=False)


def mount_inputs(layout: KernelLayout, inputs, marker: str, packed: bool) -> Path:
    """The inputs dataset as Kaggle mounts it (nested under input/datasets/<user>/<slug>): each
    input as ``<digest>.tar``, or as the folder Kaggle makes when it unpacks an archive itself."""
    root = layout.root / "input" / "datasets" / "alice" / "palier-fr-general-inputs"
    root.mkdir(parents=True)
    (root / marker).write_text("{}", encoding="utf-8")
    for item in inputs:
        folder = root / item.digest
        for payload in item.files:
            (folder / payload.dest).parent.mkdir(parents=True, exist_ok=True)
            with payload.open() as fh:
                (folder / payload.dest).write_bytes(fh.read())
        if packed:
            with tarfile.open(root / f"{item.digest}.tar", "w") as tar:
                tar.add(folder, arcname=".")
            for path in sorted(folder.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            folder.rmdir()
    return root


def test_the_layout_maps_kaggle_paths_and_reads_the_offline_overrides(tmp_path):
    assert KernelLayout.from_env({}) == KernelLayout(Path("/kaggle"), Path("/tmp/palier"), install=True)
    mapped = KernelLayout.from_env({"PALIER_KAGGLE_ROOT": str(tmp_path / "k"), "PALIER_KAGGLE_SCRATCH": str(tmp_path / "s"),
                                    "PALIER_SKIP_INSTALL": "1"})
    assert mapped.install is False and mapped.out == tmp_path / "k" / "working" / "out"
    assert mapped.here("/kaggle/working/out/spec.json") == f"{tmp_path}/k/working/out/spec.json"
    assert mapped.here("/tmp/palier/cache") == f"{tmp_path}/s/cache"


@pytest.mark.parametrize("packed", [True, False], ids=["tar", "unpacked-by-kaggle"])
def test_inputs_are_found_in_a_nested_mount_and_unpacked(make_spec, layout, packed):
    _, inputs, _, config, _ = plan_kernel(make_spec(backend={"kind": "kaggle", "device": "cpu"}, lexicon=True), "alice")
    root = mount_inputs(layout, inputs, config["inputs_marker"], packed)
    places = unpack_inputs(config, layout)
    assert set(places) == set(config["inputs"])
    lexicon = next(i for i in inputs if i.role == "lexicon")
    expected = layout.scratch / "inputs" / lexicon.digest if packed else root / lexicon.digest
    assert places[lexicon.digest] == expected
    assert (expected / "lexicon.txt").read_text(encoding="utf-8") == "tachycardie\n"


def test_a_missing_mount_or_input_stops_with_what_is_missing(make_spec, layout):
    _, inputs, _, config, _ = plan_kernel(make_spec(backend={"kind": "kaggle", "device": "cpu"}), "alice")
    with pytest.raises(SystemExit, match="inputs dataset is not mounted"):
        unpack_inputs(config, layout)
    root = mount_inputs(layout, inputs[:1], config["inputs_marker"], packed=True)
    with pytest.raises(SystemExit, match=f"input {inputs[1].digest} is missing from {root}"):
        unpack_inputs(config, layout)


def test_main_runs_the_stage_runner_under_the_supervisor(make_spec, layout, child_env, monkeypatch, capfd):
    for name, value in child_env.items():
        monkeypatch.setenv(name, value)
    spec = make_spec(backend={"kind": "kaggle", "device": "cpu", "options": {"hf_secret": ""}}, lexicon=True)
    _, inputs, _, config, _ = plan_kernel(spec, "alice", runner_module="stub_stage")
    mount_inputs(layout, inputs, config["inputs_marker"], packed=True)
    assert main(config, SRC, layout) == 0
    out = layout.out
    assert (out / EXIT_FILE).read_text().strip() == "0" and (out / "metrics.json").is_file()
    shipped = (out / "spec.json").read_text(encoding="utf-8")
    assert "@@PALIER_INPUT_" not in shipped
    lexicon = next(i for i in inputs if i.role == "lexicon")
    assert json.loads(shipped)["stage"]["lexicon"] == str(layout.scratch / "inputs" / lexicon.digest / "lexicon.txt")
    assert not (out / "checkpoints").exists()  # they would count against Kaggle's output limit
    printed = capfd.readouterr().out
    assert EVENT_PREFIX in printed and "palier: stage runner exited with code 0" in printed  # Kaggle's live log


def test_the_runner_command_is_mapped_to_the_layout_and_supervised(make_spec, layout):
    _, _, _, config, _ = plan_kernel(make_spec(backend={"kind": "kaggle", "device": "cpu"}), "alice")
    command = supervised_command(config, layout)
    assert command[1:5] == ["-m", "core.backends.supervisor", "--out", str(layout.out)]
    runner = command[command.index("--") + 1:]
    assert runner[1:3] == ["-m", "core.stage"]
    assert runner[runner.index("--spec") + 1] == str(layout.out / "spec.json")
    assert runner[runner.index("--cache-dir") + 1] == str(layout.scratch / "cache")
    assert INPUT_PLACEHOLDER.format(digest="x") == "@@PALIER_INPUT_x@@"


def test_a_gpu_stage_stops_when_torch_sees_fewer_gpus_than_asked():
    check_gpus(0, SRC)  # a CPU stage asks nothing
    with pytest.raises(SystemExit, match=r"99 GPU\(s\) requested but \d+ visible"):
        check_gpus(99, SRC)  # the real probe, in a child process with this machine's torch


def test_the_kernel_refuses_a_gpu_its_torch_has_no_kernels_for():
    cu128 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # kaggle-cli#1151's arch list
    p100 = {"name": "Tesla P100-PCIE-16GB", "arch": "sm_60", "cc": 60}
    t4 = {"name": "Tesla T4", "arch": "sm_75", "cc": 75}
    assert unsupported_gpus({"devices": [p100], "archs": cu128}) == [p100]
    assert unsupported_gpus({"devices": [t4, t4], "archs": cu128}) == []
    assert unsupported_gpus({"devices": [p100], "archs": ["sm_50", "sm_60", "sm_70"]}) == []
    assert unsupported_gpus({"devices": [p100], "archs": ["sm_70", "compute_50"]}) == []  # PTX JIT-compiles upward


def test_the_upstream_kernel_output_is_found_and_must_be_the_planned_run(layout):
    config = {"upstream": {"kernel": "alice/palier-fr-general", "key": "k1"}}
    assert upstream_output({"upstream": None}, layout) == {}
    with pytest.raises(SystemExit, match="output of kernel alice/palier-fr-general is not mounted"):
        upstream_output(config, layout)
    out = layout.root / "input" / "notebooks" / "alice" / "palier-fr-general" / "out"
    out.mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps({"key": "k1"}), encoding="utf-8")
    assert upstream_output(config, layout) == {"upstream-kernel": out}
    (out / "spec.json").write_text(json.dumps({"key": "k2"}), encoding="utf-8")  # the kernel was pushed again since
    with pytest.raises(SystemExit, match=r"latest output is another run of its stage \(key k2, expected k1\)"):
        upstream_output(config, layout)
