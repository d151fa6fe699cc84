"""Trackers (the spec's ``report_to``): one run per training stage, named ``<pipeline>/<stage>``,
readable by the tools' own readers; names checked before torch; no stage hash changes."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import yaml

from r1pipeline.pipeline.runner import run_pipeline, stage_hashes
from r1pipeline.pipeline.spec import SpecError, validate_raw
from tests.conftest import CONFIGS

MICRO = yaml.safe_load((CONFIGS / "micro.yaml").read_text())
HAS = {name: importlib.util.find_spec(name) is not None for name in ("tensorboard", "wandb")}
# a stage of each kind that trains or scores -> one scalar it must log
LOGGED = {"base": "train/loss", "r1_zero": "train/reward", "sft": "train/loss",
          "reward_helpful": "train/loss", "evaluate": "eval/models/base/pass@1"}


def _stage(name: str, **kw) -> dict:
    return {**next(s for s in MICRO["stages"] if s["name"] == name), **kw}


def short_micro(rows: Path, report_to: list[str]) -> dict:
    """micro.yaml's pretrain, grpo, reward_model and evaluate stages and an SFT on ``rows``,
    a step or two each."""
    return {"name": "trk", "seed": 0, "report_to": report_to, "stages": [
        _stage("base", steps=3, batch_size=4, warmup_steps=1),
        _stage("r1_zero", steps=1, train_prompts=8, generation_batch_size=8, eval_prompts=0),
        {"name": "sft", "kind": "sft", "init": "base", "data": [str(rows)], "epochs": 1, "batch_size": 4},
        _stage("reward_helpful", pairs={"task": {"source": "tiny_general"}, "objective": "helpfulness",
                                        "n": 8, "n_test": 4}, batch_size=4),
        {"name": "evaluate", "kind": "evaluate", "models": ["base"], "task": {"source": "tiny_product", "n_digits": 3},
         "template": "r1_zero_short", "n_prompts": 2, "k": 1, "max_new_tokens": 8, "bootstrap": 10},
    ]}


def sft_rows(folder: Path) -> Path:
    rows = folder / "sft_rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"{i}*2=", "completion": f"<answer>{2 * i}</answer>"}) + "\n"
                            for i in range(8)))
    return rows


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    """The short micro run once, logging to every tracker installed (W&B offline: no network)."""
    report_to = [name for name, ok in HAS.items() if ok]
    if not report_to:
        pytest.skip("neither tensorboard nor wandb is installed (pip install 'r1pipeline[tensorboard,wandb]')")
    tmp = tmp_path_factory.mktemp("trackers")
    spec = validate_raw(short_micro(sft_rows(tmp), report_to), base_dir=CONFIGS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_PROJECT", raising=False)
        run_pipeline(spec, tmp / "run", report=False, log=lambda *a: None)
    return tmp / "run"


@pytest.mark.skipif(not HAS["tensorboard"], reason="tensorboard not installed (pip install 'r1pipeline[tensorboard]')")
@pytest.mark.parametrize("stage", list(LOGGED))
def test_tensorboard_reads_each_stages_scalars(tracked_run, stage):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked_run / stage / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert LOGGED[stage] in tags, (stage, tags)
    values = [e.value for e in acc.Scalars(LOGGED[stage])]
    assert values and all(v == v for v in values)
    if stage == "base":  # every step, with the learning rate, as metrics.jsonl has them
        metrics = [json.loads(line) for line in (tracked_run / "base" / "metrics.jsonl").read_text().splitlines()]
        assert [e.step for e in acc.Scalars("train/loss")] == [m["step"] for m in metrics] == [1, 2, 3]
        assert values == pytest.approx([m["loss"] for m in metrics])
        assert "train/learning_rate" in tags


def wandb_records(stage_dir: Path) -> list:
    """The protobuf records of the stage's one offline W&B run, read back from its .wandb file:
    a LevelDB-style log (a 7-byte header ``:W&B``, 0xBEE1, version; then 32 KiB blocks of
    records, each a CRC, a length, a type: full, or first/middle/last of one split over blocks)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    files = list((stage_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    data = files[0].read_bytes()
    assert data[:4] == b":W&B"
    records, pos, part = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(part)
            records.append(rec)
            part = b""
        elif kind == 0:  # zeroed tail of the last block
            break
    return records


@pytest.mark.skipif(not HAS["wandb"], reason="wandb not installed (pip install 'r1pipeline[wandb]')")
@pytest.mark.parametrize("stage", list(LOGGED))
def test_offline_wandb_run_per_stage_holds_its_scalars(tracked_run, stage):
    records = wandb_records(tracked_run / stage)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.display_name == f"trk/{stage}" and run.run_group == "trk"
    logged: dict[str, list[float]] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            for item in r.history.item:
                key = item.key or "/".join(item.nested_key)
                logged.setdefault(key, []).append(json.loads(item.value_json))
    assert LOGGED[stage] in logged, (stage, sorted(logged))
    assert all(isinstance(v, (int, float)) for v in logged[LOGGED[stage]])


def test_manifest_names_the_trackers_and_no_hash_changes(tracked_run, tmp_path):
    rows = sft_rows(tmp_path)
    plain = validate_raw(short_micro(rows, []), base_dir=CONFIGS)
    tracked = validate_raw(short_micro(rows, ["tensorboard"] if HAS["tensorboard"] else []), base_dir=CONFIGS)
    assert stage_hashes(plain) == stage_hashes(tracked)
    manifest = json.loads((tracked_run / "base" / "manifest.json").read_text())
    assert manifest["report_to"] == [n for n, ok in HAS.items() if ok]


@pytest.mark.parametrize("value, words", [
    (["tensorbord"], "did you mean 'tensorboard'"),
    (["none", "wandb"], "'none' cannot be combined"),
    ([3], "give a list of tracker names"),
])
def test_bad_report_to_is_refused_with_its_fix(tmp_path, value, words):
    with pytest.raises(SpecError) as err:
        validate_raw(short_micro(sft_rows(tmp_path), value), base_dir=CONFIGS)
    assert any(p.field == "report_to" and words in str(p) for p in err.value.problems), err.value


def test_a_tracker_not_installed_names_its_extra(tmp_path, monkeypatch):
    from r1pipeline import trackers

    monkeypatch.setattr(trackers, "missing", lambda name: name == "wandb")
    with pytest.raises(SpecError) as err:
        validate_raw(short_micro(sft_rows(tmp_path), ["wandb"]), base_dir=CONFIGS)
    assert "pip install 'r1pipeline[wandb]'" in str(err.value)


def test_report_to_from_the_command_line_is_a_list_none_is_empty(tmp_path):
    raw = short_micro(sft_rows(tmp_path), [])
    del raw["report_to"]
    assert validate_raw(raw, base_dir=CONFIGS).report_to == []
    assert validate_raw(raw, base_dir=CONFIGS, overrides=["report_to=[none]"]).report_to == []
    if HAS["tensorboard"]:
        spec = validate_raw(raw, base_dir=CONFIGS, overrides=["report_to=[tensorboard]"])
        assert spec.report_to == ["tensorboard"] and "report_to:\n- tensorboard" in spec.to_yaml()
