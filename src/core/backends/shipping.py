"""What a remote machine needs from the user's disk, and the spec rewritten to find it there.

A stage names local things in four places: its training data, its eval sets' data, its lexicon
and (for stage 2+, or a local checkpoint) its base model. Hub datasets, hub models and generated
data need nothing shipped. Each local thing becomes a ``LocalInput``: the files to send, and a
content digest that names its folder remotely, so unchanged data is uploaded once and reused
across stages and reruns. ``relocate`` returns the spec with those paths replaced by remote ones.

A CSV manifest is shipped with the audio files it references (paths in it may point anywhere);
its copy is rewritten so every audio path is relative to the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.contracts import StageSpec
from core.backends.errors import ShippingError

REMOTE_ORIGIN_FILE = ".palier-remote.json"
from core.model_refs import STAGE_PREFIX as STAGE_OUTPUT_PREFIX


@dataclass(frozen=True)
class PayloadFile:
    dest: str  # posix path inside the input's folder
    source: Path | None = None
    content: bytes | None = None

    def size(self) -> int:
        return len(self.content) if self.content is not None else self.source.stat().st_size  # type: ignore[union-attr]

    def open(self) -> io.BufferedIOBase:
        return io.BytesIO(self.content) if self.content is not None else self.source.open("rb")  # type: ignore[union-attr,return-value]


@dataclass(frozen=True)
class LocalInput:
    role: str  # "train", "eval:<name>", "lexicon", "base_model"
    local_path: Path
    entry: str  # what replaces the spec's path, relative to the input's folder ("" = the folder)
    files: tuple[PayloadFile, ...]
    digest: str

    @property
    def size(self) -> int:
        return sum(f.size() for f in self.files)


@dataclass(frozen=True)
class RemoteOrigin:
    """Written by ``fetch`` into an output folder: where the same files already are remotely, so a
    later stage that starts from this output does not upload the model again."""

    backend: str
    location: dict[str, Any]

    def write(self, out_dir: Path) -> None:
        (out_dir / REMOTE_ORIGIN_FILE).write_text(json.dumps({"backend": self.backend, **self.location}), encoding="utf-8")

    @classmethod
    def find(cls, path: Path) -> tuple[RemoteOrigin, str] | None:
        """The origin recorded in ``path`` or a parent output folder, with ``path`` relative to it."""
        for folder in [path, *path.parents][:4]:
            marker = folder / REMOTE_ORIGIN_FILE
            if marker.is_file():
                data = json.loads(marker.read_text(encoding="utf-8"))
                backend = data.pop("backend")
                return cls(backend, data), path.relative_to(folder).as_posix()
        return None


def base_dir(spec: StageSpec) -> Path:
    """Relative paths in a pipeline file are relative to that file (core.stage.sources)."""
    return Path(spec.pipeline_file).resolve().parent if spec.pipeline_file else Path.cwd()


def resolve(path: str, spec: StageSpec) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else base_dir(spec) / p


def local_base_model(spec: StageSpec) -> Path | None:
    if spec.base_model.startswith(STAGE_OUTPUT_PREFIX):
        raise ShippingError(
            f"stage {spec.name}: base_model is still {spec.base_model!r}; the orchestrator resolves it to the "
            "upstream stage's output folder before submitting"
        )
    candidate = resolve(spec.base_model, spec)
    return candidate if candidate.exists() else None  # otherwise a hub id, as the runner treats it


def path_fields(spec: StageSpec) -> Iterator[tuple[str, Any]]:
    """(role, data source or path string) for every place a stage may name a local path."""
    yield "train", spec.stage.train
    for eval_set in spec.stage.evals:
        yield f"eval:{eval_set.name}", eval_set.data
    lexicon = getattr(spec.stage, "lexicon", None)  # ASR stages only
    if lexicon:
        yield "lexicon", lexicon


def local_inputs(spec: StageSpec, problems: list[str] | None = None) -> list[LocalInput]:
    """Every local input of the stage. With ``problems`` (the dry run), an input that cannot be
    shipped is described there and left out instead of raising, so the rest can still be shown."""
    inputs = []
    for role, source in path_fields(spec):
        try:
            item = _input_of(spec, role, source)
        except ShippingError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
            continue
        if item is not None:
            inputs.append(item)
    model = local_base_model(spec)
    if model is not None:
        inputs.append(_folder_input("base_model", model) if model.is_dir() else _file_input("base_model", model))
    return inputs


def _input_of(spec: StageSpec, role: str, source: Any) -> LocalInput | None:
    if isinstance(source, str):
        return _file_input(role, resolve(source, spec))
    kind = source.kind
    if kind in ("hub", "generated"):
        return None
    path = resolve(source.path, spec)
    if kind == "csv":
        return _csv_input(role, path, source.audio_column)
    if kind == "folder":
        return _folder_input(role, path)
    if kind == "jsonl":
        return _file_input(role, path)
    # a new data source kind must say here how it ships
    raise ShippingError(f"stage {spec.name}: data source kind {kind!r} cannot be shipped to a remote machine yet")


def system_packages(spec: StageSpec) -> list[str]:
    """Debian packages the runner needs for this spec (generated demo speech is spoken by espeak-ng)."""
    sources = [s for _, s in path_fields(spec) if not isinstance(s, str)]
    return ["espeak-ng"] if any(s.kind == "generated" for s in sources) else []


def relocate(spec: StageSpec, inputs: list[LocalInput], remote_dir: Callable[[LocalInput], str]) -> StageSpec:
    """The spec with every shipped path replaced by ``remote_dir(input)/entry`` (absolute, posix)."""
    data = spec.model_dump(mode="json")
    for item in inputs:
        remote = str(PurePosixPath(remote_dir(item)) / item.entry) if item.entry else remote_dir(item)
        _set_role_path(data, item.role, remote)
    data["pipeline_file"] = None  # every path is now absolute; nothing is relative to the user's file
    return StageSpec.model_validate(data)


def remote_base_model(spec: StageSpec, backend: str) -> tuple[RemoteOrigin, str] | None:
    """When the base model is an output this backend already holds, where it is remotely."""
    model = local_base_model(spec)
    if model is None:
        return None
    found = RemoteOrigin.find(model.resolve())
    return found if found and found[0].backend == backend else None


def _set_role_path(data: dict[str, Any], role: str, remote: str) -> None:
    stage = data["stage"]
    if role == "train":
        stage["train"]["path"] = remote
    elif role.startswith("eval:"):
        name = role.split(":", 1)[1]
        next(e for e in stage["evals"] if e["name"] == name)["data"]["path"] = remote
    elif role == "lexicon":
        stage["lexicon"] = remote
    elif role == "base_model":
        data["base_model"] = remote
    else:
        raise ValueError(f"unknown input role {role!r}")


def _require(path: Path, role: str, what: str) -> None:
    if not path.exists():
        raise ShippingError(f"{path}: {what} not found ({role}); check the path in the pipeline file")


def _file_input(role: str, path: Path) -> LocalInput:
    _require(path, role, "file")
    files = (PayloadFile(path.name, source=path),)
    return LocalInput(role, path, path.name, files, _digest(files))


def _folder_input(role: str, path: Path) -> LocalInput:
    _require(path, role, "folder")
    files = tuple(
        PayloadFile(p.relative_to(path).as_posix(), source=p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and not _hidden(p.relative_to(path)) and "checkpoints" not in p.relative_to(path).parts
    )
    if not files:
        raise ShippingError(f"{path}: folder is empty ({role})")
    return LocalInput(role, path, "", files, _digest(files))


def _csv_input(role: str, path: Path, audio_column: str) -> LocalInput:
    _require(path, role, "CSV manifest")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fieldnames = list(reader.fieldnames or [])
        rows = list(reader)
    if audio_column not in fieldnames:
        raise ShippingError(f"{path}: no column {audio_column!r} (found {fieldnames}); cannot find the audio to ship")
    audio: dict[str, PayloadFile] = {}
    for row in rows:
        ref = row[audio_column] or ""
        if not ref:
            continue
        local = Path(os.path.expanduser(ref))
        local = local if local.is_absolute() else path.parent / local
        _require(local, role, f"audio file listed in {path.name}")
        try:
            dest = "audio/" + local.resolve().relative_to(path.parent.resolve()).as_posix()
        except ValueError:  # outside the manifest's folder: keep files apart by their folder's hash
            dest = f"audio/_outside/{hashlib.sha256(str(local.parent.resolve()).encode()).hexdigest()[:10]}/{local.name}"
        audio.setdefault(dest, PayloadFile(dest, source=local))
        row[audio_column] = dest
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    manifest = PayloadFile(path.name, content=out.getvalue().encode("utf-8"))
    files = (manifest, *audio.values())
    return LocalInput(role, path, path.name, files, _digest(files))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _digest(files: tuple[PayloadFile, ...]) -> str:
    outer = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.dest):
        inner = hashlib.sha256()
        with item.open() as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(f"{item.dest}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()[:20]
