"""Every kind of data file a stage reads is checked row by row at validation (issue 13): exit 2, the
file, line (and character), column, the bad value and one fix; no torch import, no traceback."""

from __future__ import annotations

import codecs
import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS
from tests.pipeline.test_spec_errors import run_cli_many

MICRO = yaml.safe_load((CONFIGS / "micro.yaml").read_text())
CURATED = (CONFIGS / "data" / "tiny_cold_start.jsonl").read_text().splitlines()


def stage(spec, name):
    return next(s for s in spec["stages"] if s["name"] == name)


def qa_lines(n=60):
    return [json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) for i in range(n)]


def with_line(lines, i, line):
    out = list(lines)
    out[i] = line
    return out


def curated_file(spec, path):
    stage(spec, "cold_start")["sources"][2]["path"] = path


def exemplars_file(spec, path):
    stage(spec, "cold_start")["sources"][1]["exemplars"] = path


def task_file(spec, path, **settings):
    stage(spec, "evaluate")["task"] = {"source": "jsonl", "path": path, **settings}


def sft_file(spec, path):
    stage(spec, "sft")["data"] = ["rejection_sampling", path]


def pairs_file(spec, path):
    stage(spec, "reward_helpful")["pairs"] = {"file": path, "n": 4, "n_test": 2}


def latin1(lines, i):
    """The lines as UTF-8 bytes, but line ``i`` in Latin-1 with a byte UTF-8 cannot read (0xd7: ×)."""
    raw = [line.encode() for line in lines]
    raw[i] = lines[i].replace("*", "\u00d7", 1).encode("latin-1")
    return b"\n".join(raw) + b"\n"


def sft_lines(n=3):
    return [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(n)]


def pair_lines(n):
    return [json.dumps({"prompt": f"q{i}", "chosen": "good", "rejected": "bad"}) for i in range(n)]


# case -> (how the spec uses the file, the file's name, its contents)
CASES = {
    "sample_file_bad_json_on_line_31": (curated_file, "curated.jsonl", with_line(CURATED, 30, CURATED[30][:-5])),
    "sample_file_without_completion": (curated_file, "curated.jsonl",
                                       with_line(CURATED, 4, CURATED[4].replace('"completion"', '"completoin"'))),
    "sample_file_not_utf8": (curated_file, "curated.jsonl", latin1(CURATED, 9)),
    "sample_file_answer_is_an_object": (curated_file, "curated.jsonl",
                                        with_line(CURATED, 2, json.dumps({"question": "q", "answer": {"x": 1},
                                                                          "completion": "c"}))),
    "sample_file_unknown_verifier": (curated_file, "curated.jsonl",
                                     with_line(CURATED, 6, json.dumps({"question": "q", "answer": "1",
                                                                       "completion": "c", "verifier": "exakt"}))),
    "exemplars_bad_row": (exemplars_file, "shots.jsonl", with_line(CURATED, 3, '{"question": "q"}')),
    "exemplars_missing_relative": (exemplars_file, "no/shots.jsonl", None),
    "task_file_utf16": (task_file, "qa.jsonl", "\n".join(qa_lines()).encode("utf-16")),
    "task_file_latin1_row": (task_file, "qa.jsonl", latin1(qa_lines() + ["{\"question\": \"2*3\", \"answer\": 6}"], 60)),
    "task_file_missing_relative": (task_file, "data/none.jsonl", None),
    "task_file_bad_row": (task_file, "qa.jsonl", with_line(qa_lines(), 1, '{"question": "2+2"}')),
    "sft_file_bad_row": (sft_file, "sft.jsonl", with_line(sft_lines(), 2, '{"prompt": "p", "completion": 7}')),
    "pairs_file_too_few_rows": (pairs_file, "pairs.jsonl", pair_lines(2)),
    "pairs_file_bad_row": (pairs_file, "pairs.jsonl", with_line(pair_lines(5), 0, '["prompt", "chosen"]')),
}


def write(folder: Path, name: str, contents) -> None:
    if contents is None:
        return
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(contents, bytes):
        path.write_bytes(contents)
    else:
        path.write_text("\n".join(contents) + "\n")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[dict, str, Path]]:
    """``r1 validate`` on every case (and ``r1 run`` on the first), in one interpreter; each case in
    a folder of its own, its spec there, relative paths read from it."""
    calls, folders = [], []
    for case, (use, name, contents) in CASES.items():
        folder = tmp_path_factory.mktemp(case)
        write(folder, name, contents)
        (folder / "data").mkdir(exist_ok=True)
        (folder / "data" / "tiny_cold_start.jsonl").write_text("\n".join(CURATED) + "\n")
        spec = copy.deepcopy(MICRO)
        use(spec, name)
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        calls.append(["validate", str(folder / "spec.yaml")])
        folders.append(folder)
    first = folders[0]
    calls.append(["run", str(first / "spec.yaml"), "--out", str(first / "runs")])
    out = run_cli_many(calls)
    found = {case: (*out[i], folders[i]) for i, case in enumerate(CASES)}
    found["run"] = (*out[-1], first)
    return found


def failed(results, case) -> str:
    """The case's stderr, after checking it is exit 2, no torch, one line per problem, one fix each."""
    result, stderr, _ = results[case]
    assert result == {"code": 2, "torch": False}, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].count("fix:") == 1, lines[0]
    return lines[0]


def test_sample_file_bad_row_is_named_by_its_own_line(results):
    line = failed(results, "sample_file_bad_json_on_line_31")
    folder = results["sample_file_bad_json_on_line_31"][2]
    assert line.startswith(f"{folder / 'spec.yaml'}: stage 'cold_start', field 'sources[2].path': "
                           f"{folder / 'curated.jsonl'}, line 31, character ")
    assert "invalid JSON (unterminated string starting here); fix: correct the JSON at that character" in line
    assert "on_bad_rows" not in line  # a sample stage's file has no such setting


def test_sample_file_missing_completion_is_a_problem_not_a_keyerror(results):
    line = failed(results, "sample_file_without_completion")
    assert "curated.jsonl, line 5: column 'completion' is missing (columns here: 'id', 'question', 'answer', " \
           "'completoin'); fix: rename 'completoin' to 'completion'" in line


def test_sample_file_not_utf8_names_line_character_and_encoding(results):
    line = failed(results, "sample_file_not_utf8")
    assert re.search(r"curated\.jsonl, line 10, character \d+: not UTF-8: byte 0xd7 cannot be read; the line "
                     r"looks like Latin-1 \(Windows-1252\)", line), line
    assert "fix: save the file as UTF-8, e.g. iconv -f WINDOWS-1252 -t UTF-8 curated.jsonl" in line


def test_sample_file_value_of_the_wrong_type_is_shown_short(results):
    line = failed(results, "sample_file_answer_is_an_object")
    assert "line 3: column 'answer' must be a string or a number, got object {\"x\": 1}" in line


def test_sample_file_unknown_verifier_fails_validation(results):
    line = failed(results, "sample_file_unknown_verifier")
    assert "line 7: column 'verifier' is \"exakt\", not a known verifier; fix: use one of: exact" in line


def test_exemplars_bad_row(results):
    line = failed(results, "exemplars_bad_row")
    assert "field 'sources[1].exemplars'" in line and "shots.jsonl, line 4: column 'completion' is missing" in line


def test_missing_exemplars_name_the_absolute_path_and_the_spec_folder(results):
    line = failed(results, "exemplars_missing_relative")
    folder = results["exemplars_missing_relative"][2]
    assert (f"field 'sources[1].exemplars': file not found: {folder / 'no' / 'shots.jsonl'} (a relative path "
            f"is read from the spec's folder, {folder}); fix: check the path") in line


def test_task_file_not_utf8_names_the_encoding_and_offers_no_drop(results):
    line = failed(results, "task_file_utf16")
    assert "stage 'evaluate', field 'task'" in line
    assert "qa.jsonl, line 1: the file is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8; " \
           "fix: save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 qa.jsonl" in line
    assert "on_bad_rows" not in line  # dropping rows cannot mend a file's encoding


def test_task_file_row_not_utf8_may_be_dropped(results):
    line = failed(results, "task_file_latin1_row")
    assert "qa.jsonl, line 61, character 16: not UTF-8: byte 0xd7 cannot be read" in line
    assert line.endswith(", or set on_bad_rows: drop to skip such rows")


def test_missing_task_file_says_where_a_relative_path_is_read_from(results):
    line = failed(results, "task_file_missing_relative")
    folder = results["task_file_missing_relative"][2]
    assert f"file not found: {folder / 'data' / 'none.jsonl'} (a relative path is read from the spec's " \
           f"folder, {folder})" in line
    assert "directory you run in" not in line and "on_bad_rows" not in line


def test_task_file_bad_row_has_one_fix(results):
    line = failed(results, "task_file_bad_row")
    assert line.endswith("qa.jsonl, line 2: column 'answer' is missing (columns here: 'question'); fix: add it, "
                         "or set answer_field to the column that holds it, or set on_bad_rows: drop to skip "
                         "such rows")


def test_sft_file_bad_row(results):
    line = failed(results, "sft_file_bad_row")
    assert "stage 'sft', field 'data[1]'" in line and "sft.jsonl, line 3: column 'completion' must be a string" in line


def test_pairs_file_needs_rows_beyond_the_held_out_ones(results):
    line = failed(results, "pairs_file_too_few_rows")
    assert "field 'pairs.file'" in line and "pairs.jsonl: 2 rows, 3 needed (pairs.n_test holds out the first 2" in line
    assert line.endswith("fix: add rows to the file, or lower pairs.n_test")


def test_pairs_file_bad_row(results):
    line = failed(results, "pairs_file_bad_row")
    assert 'line 1: expected a JSON object, got array ["prompt", "chosen"]; fix: write one object per line, ' \
           'like {"prompt": ..., "chosen": ..., "rejected": ...}' in line


def test_run_checks_the_rows_before_anything_heavy(results):
    """``r1 run`` fails on the bad row as validate does, before torch loads or a stage starts."""
    line = failed(results, "run")
    assert "curated.jsonl, line 31" in line
    assert not (results["run"][2] / "runs").exists()


def test_a_utf8_bom_is_read_as_utf8(tmp_path):
    from r1pipeline.tasks.rows import SFT_ROWS, read_jsonl

    path = tmp_path / "bom.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + "\n".join(sft_lines()).encode())
    assert [r["prompt"] for r in read_jsonl(path, SFT_ROWS)] == ["q0", "q1", "q2"]
