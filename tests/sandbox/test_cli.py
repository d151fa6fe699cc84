"""``r1 sandbox run``: bad limits exit 2 with the option, the value and the fix (issue 13), before
any program runs; good ones still run the program."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from r1pipeline.cli import app


def sandbox(tmp_path, *options: str):
    prog = tmp_path / "prog.py"
    prog.write_text("print(6 * 7)\n")
    return CliRunner().invoke(app, ["sandbox", "run", str(prog), *options])


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "1e300"])
def test_time_limit_that_is_no_positive_finite_number_exits_2(tmp_path, value):
    res = sandbox(tmp_path, "--time-limit", value)
    assert res.exit_code == 2, res.output
    assert "--time-limit" in res.output and "must be a positive number of CPU seconds" in res.output
    assert "fix: e.g. --time-limit 2" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("value", ["-5", "0", str(1 << 40)])
def test_memory_limit_out_of_range_exits_2(tmp_path, value):
    res = sandbox(tmp_path, "--memory-mb", value)
    assert res.exit_code == 2 and f"--memory-mb {value}: must be from 1 to" in res.output


def test_good_limits_run_the_program(tmp_path):
    res = sandbox(tmp_path, "--time-limit", "2", "--memory-mb", "256")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["stdout"].strip() == "42"
