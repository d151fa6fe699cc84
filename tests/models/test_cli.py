"""``r1 models list`` and ``r1 models pull``."""

from __future__ import annotations

from typer.testing import CliRunner

from r1pipeline.models.cli import app


def test_list_shows_tiny_and_smollm2(tmp_path, monkeypatch):
    monkeypatch.setenv("R1_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "tiny" in result.output and "smollm2-135m-instruct" in result.output


def test_pull_of_unknown_name_fails_with_the_known_names(tmp_path, monkeypatch):
    monkeypatch.setenv("R1_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["pull", "gpt-17"])
    assert result.exit_code == 2
    assert "unknown model 'gpt-17'" in result.output and "smollm2-135m-instruct" in result.output
