"""The program a Kaggle kernel runs for a stage: install the runner's dependencies, unpack the
stage's inputs, check the GPUs, then run the stage runner under the supervisor.

The kernel's code file (``kernel.kernel_script``) is only a bootstrap: it carries the
stage's configuration and palier's source archive, unpacks the archive (this module is in it)
and calls ``main``. So the kernel version is an exact snapshot of the code that ran, and this
program is ordinary, importable, tested code. Standard library only: it runs before anything
is installed.

The configuration names Kaggle's own paths (/kaggle/input, /kaggle/working, /tmp/palier);
``KernelLayout`` maps them onto another root, which is how the tests run this program offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KAGGLE_ROOT = "/kaggle"
KAGGLE_SCRATCH = "/tmp/palier"
INPUT_PLACEHOLDER = "@@PALIER_INPUT_{digest}@@"  # in the shipped spec: where input <digest> will be
UPSTREAM_OUTPUT = "upstream-kernel"  # the "digest" of the upstream kernel's output folder in that placeholder
MODULE = "core.backends.kaggle.entry"
# Only palier's offline tests set these, to run the kernel program outside Kaggle.
ROOT_ENV, SCRATCH_ENV, SKIP_INSTALL_ENV = "PALIER_KAGGLE_ROOT", "PALIER_KAGGLE_SCRATCH", "PALIER_SKIP_INSTALL"
INPUT_SEARCH_DEPTH = 4  # Kaggle mounts a dataset at /kaggle/input/<slug> or deeper (datasets/<user>/<slug>)
TORCH_PTX_HELP = "https://github.com/Kaggle/kaggle-cli/issues/1151"


@dataclass(frozen=True)
class KernelLayout:
    root: Path = Path(KAGGLE_ROOT)  # Kaggle's /kaggle: input/ (mounted datasets) and working/ (kept output)
    scratch: Path = Path(KAGGLE_SCRATCH)  # unpacked inputs, caches: not part of the kernel's output
    install: bool = True  # pip/apt installs (the offline tests skip them)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> KernelLayout:
        env = os.environ if environ is None else environ
        return cls(Path(env.get(ROOT_ENV, KAGGLE_ROOT)), Path(env.get(SCRATCH_ENV, KAGGLE_SCRATCH)),
                   env.get(SKIP_INSTALL_ENV) != "1")

    @property
    def out(self) -> Path:
        return self.root / "working" / "out"

    def here(self, text: str) -> str:
        """A path from the configuration (written for Kaggle's layout) in this layout."""
        return text.replace(f"{KAGGLE_ROOT}/", f"{self.root}/").replace(KAGGLE_SCRATCH, str(self.scratch))


def say(message: str) -> None:
    print(f"palier: {message}", flush=True)


def run(command: list[str]) -> None:
    say("$ " + " ".join(command))
    subprocess.run(command, check=True)


def extract(tar: tarfile.TarFile, target: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
    else:  # Python before 3.11.4 has no extraction filters
        tar.extractall(target)


def install(config: dict[str, Any]) -> None:
    """Debian packages, then a special torch build if asked, then the runner's pinned requirements."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if config["system_packages"]:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *config["system_packages"]])
    if config["torch_install"]:
        run([*pip, *config["torch_install"]])
    run([*pip, *config["requirements"]])


def inputs_root(layout: KernelLayout, marker: str) -> Path:
    """The folder of the mounted inputs dataset: the one holding the marker file."""
    for depth in range(1, INPUT_SEARCH_DEPTH + 1):
        for found in (layout.root / "input").glob("*/" * depth + marker):
            return found.parent
    raise SystemExit("palier: the inputs dataset is not mounted (is it still processing on Kaggle?)")


def unpack_inputs(config: dict[str, Any], layout: KernelLayout) -> dict[str, Path]:
    """Input digest -> its folder here: ``<digest>.tar`` unpacked into scratch, or the folder
    Kaggle made by unpacking the archive itself."""
    if not config["inputs"]:
        return {}
    root, places = inputs_root(layout, config["inputs_marker"]), {}
    for digest in config["inputs"]:
        packed, folder = root / f"{digest}.tar", root / digest
        if packed.is_file():
            target = layout.scratch / "inputs" / digest
            with tarfile.open(packed) as tar:
                extract(tar, target)
            places[digest] = target
        elif folder.is_dir():
            places[digest] = folder
        else:
            raise SystemExit(f"palier: input {digest} is missing from {root}")
    return places


def upstream_output(config: dict[str, Any], layout: KernelLayout) -> dict[str, Path]:
    """The upstream stage's kernel output (a kernel source, mounted under /kaggle/input), checked
    to be the run this stage was planned on: its spec.json carries the same stage key."""
    upstream = config.get("upstream")
    if not upstream:
        return {}
    slug = upstream["kernel"].split("/")[-1]
    for depth in range(INPUT_SEARCH_DEPTH):
        for spec_file in (layout.root / "input").glob("*/" * depth + f"{slug}/out/spec.json"):
            key = json.loads(spec_file.read_text(encoding="utf-8")).get("key")
            if key != upstream["key"]:
                raise SystemExit(f"palier: kernel {upstream['kernel']}'s latest output is another run of its stage "
                                 f"(key {key}, expected {upstream['key']}); run the pipeline again so this stage "
                                 "starts from the model it was planned on")
            return {UPSTREAM_OUTPUT: spec_file.parent}
    raise SystemExit(f"palier: the output of kernel {upstream['kernel']} is not mounted under {layout.root / 'input'} "
                     "(it is listed in kernel_sources; is that kernel's last version complete?)")


def write_spec(config: dict[str, Any], places: dict[str, Path], out: Path) -> Path:
    """The stage spec with each input placeholder replaced by where that input is here."""
    spec = config["spec_json"]
    for digest, place in places.items():
        spec = spec.replace(INPUT_PLACEHOLDER.format(digest=digest), str(place))
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(spec, encoding="utf-8")
    return out / "spec.json"


def load_hf_token(secret: str) -> None:
    if not secret:
        return
    try:
        from kaggle_secrets import UserSecretsClient

        os.environ["HF_TOKEN"] = UserSecretsClient().get_secret(secret)
        say(f"Hugging Face token loaded from the Kaggle secret {secret}")
    except Exception as exc:  # no secret attached: public models and data still work
        say(f"no Kaggle secret {secret} attached to this kernel ({type(exc).__name__}); gated hub files will fail")


def probe_gpus() -> dict[str, Any]:
    """The visible GPUs and the CUDA architectures this torch has kernels for."""
    import torch

    count = torch.cuda.device_count()
    devices = []
    for i in range(count):
        major, minor = torch.cuda.get_device_capability(i)
        devices.append({"name": torch.cuda.get_device_name(i), "arch": f"sm_{major}{minor}", "cc": major * 10 + minor})
    return {"count": count, "devices": devices, "archs": torch.cuda.get_arch_list() if count else []}


def unsupported_gpus(probe: dict[str, Any]) -> list[dict[str, Any]]:
    """GPUs this torch has no kernels for (neither their sm_XY nor a compute_XY PTX at or below it)."""
    archs = probe["archs"]
    ptx = [int(a.split("_")[1]) for a in archs if a.startswith("compute_") and a.split("_")[1].isdigit()]
    return [d for d in probe["devices"] if d["arch"] not in archs and not any(p <= d["cc"] for p in ptx)]


def check_gpus(wanted: int, src: Path) -> None:
    """Stop before the runner when the GPUs are missing or this torch cannot use them. The probe
    runs in a child process, so this one never holds a CUDA context while the stage trains."""
    if not wanted:
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    answer = subprocess.run([sys.executable, "-m", MODULE, "--probe-gpus"], capture_output=True, text=True, env=env)
    try:
        probe = json.loads(answer.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"palier: could not query the GPUs with torch: {answer.stderr.strip()[-500:]}") from None
    say(f"visible GPUs: {[d['name'] for d in probe['devices']] or 'none'}; torch kernels for {probe['archs']}")
    if probe["count"] < wanted:
        raise SystemExit(f"palier: {wanted} GPU(s) requested but {probe['count']} visible; "
                         "check machine_shape and your GPU quota")
    missing = unsupported_gpus(probe)
    if missing:
        raise SystemExit(
            f"palier: this torch has no kernels for {missing[0]['name']} ({missing[0]['arch']}; it has {probe['archs']}), "
            f"so the first CUDA operation would fail ({TORCH_PTX_HELP}). "
            "Use backend.gpu: T4, or backend.options.p100_torch with a torch build that supports it."
        )


def supervised_command(config: dict[str, Any], layout: KernelLayout) -> list[str]:
    """The stage runner's command (paths mapped to this layout) under palier's supervisor."""
    program = sys.executable if config["command"][0] == "python" else config["command"][0]
    command = [program, *[layout.here(arg) for arg in config["command"][1:]]]
    return [sys.executable, "-m", "core.backends.supervisor", "--out", str(layout.out),
            "--timeout-s", str(config["timeout_s"]), "--mirror-events",
            *[f"--env={k}={v}" for k, v in config["env"].items()], "--", *command]


def main(config: dict[str, Any], src: Path, layout: KernelLayout | None = None) -> int:
    """Run the stage; returns the stage runner's exit code. ``src``: palier's unpacked source."""
    layout = layout or KernelLayout.from_env()
    layout.scratch.mkdir(parents=True, exist_ok=True)
    if layout.install:
        install(config)
    write_spec(config, {**unpack_inputs(config, layout), **upstream_output(config, layout)}, layout.out)
    load_hf_token(config["hf_secret"])
    check_gpus(config["gpus_required"], src)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
           "HF_HOME": str(layout.scratch / "hf"), "TQDM_MININTERVAL": "10"}
    code = subprocess.call(supervised_command(config, layout), env=env)
    if not config["keep_checkpoints"]:
        shutil.rmtree(layout.out / "checkpoints", ignore_errors=True)  # they count against Kaggle's output limit
    say(f"stage runner exited with code {code}")
    return code


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="palier's Kaggle kernel program (its GPU probe)")
    parser.add_argument("--probe-gpus", action="store_true", help="print the GPUs torch sees, as JSON")
    if parser.parse_args().probe_gpus:
        print(json.dumps(probe_gpus()))
