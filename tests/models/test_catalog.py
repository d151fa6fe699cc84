"""Model references: known names, local directories, the cache, and what validation can afford."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from r1pipeline.models import catalog
from r1pipeline.models.catalog import ModelNotFound, check_model_ref, list_models, resolve_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R1_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def hf_dir(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return path


def test_local_directory_resolves_to_itself(tmp_path):
    d = hf_dir(tmp_path / "my-model")
    assert resolve_model(str(d)) == d
    assert check_model_ref(str(d)) is None


def test_unknown_name_error_names_value_and_known_names(cache):
    with pytest.raises(ModelNotFound) as e:
        resolve_model("smollm3-9b")
    assert str(e.value) == (
        "unknown model 'smollm3-9b': not a known name (smollm2-135m-instruct) nor a directory "
        "with a config.json. Give one of the names, or the path of a save_pretrained directory "
        "(`r1 models list` shows what is available)")
    assert isinstance(e.value, ValueError)


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in check_model_ref(str(tmp_path / "empty"))
    with pytest.raises(ModelNotFound, match="has no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_tiny_is_explained_not_resolved():
    assert "pretrain stage" in check_model_ref("tiny")


def test_known_name_passes_validation_even_when_not_cached(cache):
    assert check_model_ref("smollm2-135m-instruct") is None
    with pytest.raises(ModelNotFound, match="r1 models pull smollm2-135m-instruct"):
        resolve_model("smollm2-135m-instruct", pull=False)


def test_cached_known_name_resolves_to_cache_without_pulling(cache, monkeypatch):
    d = hf_dir(catalog.model_dir("smollm2-135m-instruct"))
    (d / catalog.SOURCE_FILE).write_text("{}")
    def boom(**_):
        raise AssertionError("pulled although cached")

    entry = catalog.KNOWN["smollm2-135m-instruct"]
    monkeypatch.setitem(catalog.KNOWN, entry.name, dataclasses.replace(entry, pull=boom))
    assert resolve_model("smollm2-135m-instruct") == d


def test_check_model_ref_imports_neither_torch_nor_transformers():
    code = ("import sys\n"
            "from r1pipeline.models.catalog import check_model_ref\n"
            "assert check_model_ref('smollm2-135m-instruct') is None\n"
            "assert check_model_ref('nope') is not None\n"
            "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_models_shows_tiny_known_cached_and_given_paths(cache, tmp_path):
    hf_dir(cache / "models" / "my-sft")
    local = hf_dir(tmp_path / "local")
    rows = {r["name"]: r for r in list_models([str(local), str(tmp_path / "missing")])}
    assert rows["tiny"]["cached"] is None
    assert rows["smollm2-135m-instruct"]["cached"] is False
    assert rows["my-sft"] == {"name": "my-sft", "source": "cache", "cached": True,
                              "path": str(cache / "models" / "my-sft")}
    assert rows[str(local)]["cached"] is True
    assert rows[str(tmp_path / "missing")]["cached"] is False


def test_publish_replaces_atomically_and_workspace_cleans_up(cache):
    target = catalog.model_dir("m")
    with catalog.workspace(target) as work:
        hf_dir(work / "model")
        catalog.publish(work / "model", target)
    with catalog.workspace(target) as work:
        hf_dir(work / "model")
        (work / "model" / "new").write_text("2")
        catalog.publish(work / "model", target)
    with pytest.raises(RuntimeError):
        with catalog.workspace(target) as work:
            raise RuntimeError("killed halfway")
    assert (target / "new").read_text() == "2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]
