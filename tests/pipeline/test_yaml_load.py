"""The spec's YAML reader (pipeline/yaml_load.py): what it refuses, where it says it is, and that
it reads good YAML exactly as PyYAML's safe_load does."""

from __future__ import annotations

import pytest
import yaml

from r1pipeline.pipeline.yaml_load import MAX_ALIASED, YamlProblem, decode, load_yaml


def refused(text: str) -> YamlProblem:
    with pytest.raises(YamlProblem) as e:
        load_yaml(text)
    return e.value


def test_good_yaml_reads_as_safe_load_reads_it():
    text = ("a: &t {source: tiny_product, n_digits: 3}\nb: *t\nc: {<<: *t, n_digits: 4}\nd: [1, 2.5, -3, 1e-5, "
            "'x', null, true, 0x1f]\ne: |\n  two\n  lines\n")
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["c"] == {"source": "tiny_product", "n_digits": 4}  # a merge key is no duplicate


def test_a_duplicate_key_names_both_lines():
    e = refused("seed: 0\nname: x\nseed: 1\n")
    assert (e.line, e.column) == (3, 1) and "key 'seed' appears twice" in e.message and "lines 1 and 3" in e.message


def test_a_duplicate_key_on_one_line_names_both_columns():
    assert "line 1, columns 2 and 8" in refused("{a: 1, a: 2}").message


@pytest.mark.parametrize("text, says", [("on: 1", "reads as the boolean true"), ("1: x", "reads as the number 1"),
                                        ("null: x", "reads as null"), ("? [1]\n: 2", "a list or mapping"),
                                        ("'': x", "an empty key")])
def test_a_key_that_is_not_text_is_refused(text, says):
    assert says in refused(text).message


def test_an_alias_bomb_is_refused_at_the_alias_that_passes_the_budget():
    text = "".join([f"a0: &a0 [{', '.join(['x'] * 10)}]\n"] +
                   [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)])
    e = refused(text)
    assert "alias bomb" in e.message and f"{MAX_ALIASED:,}" in e.message and e.line == 4


def test_an_alias_inside_its_own_value_is_a_cycle():
    assert "a cycle" in refused("a: &a [1, *a]").message


def test_deep_nesting_is_refused_without_recursing():
    e = refused("a: " + "[" * 100_000)
    assert "nested deeper than 64 levels" in e.message and e.line == 1


@pytest.mark.parametrize("text", ["a: " + "9" * 5000, "a: 9223372036854775808", "a: -9223372036854775809",
                                  "a: 0x" + "f" * 17, "a: 1:2:3:4:5:6:7:8:9:10:11:12"])
def test_integers_past_64_bits_are_refused(text):
    assert "too large" in refused(text).message


@pytest.mark.parametrize("text", ["a: .inf", "a: -.inf", "a: .nan", "a: .NaN", "a: 1.0e+400", "a: !!float 1e400"])
def test_non_finite_floats_are_refused(text):
    e = refused(text)
    assert "not a finite number" in e.message and (e.line, e.column) == (1, 4)


def test_1e400_is_text_to_yaml_and_left_to_the_spec_checks():
    """YAML 1.1 reads 1e400 (no dot) as a string; pipeline/values.py names it once pydantic made it inf."""
    assert load_yaml("a: 1e400") == {"a": "1e400"}


@pytest.mark.parametrize("text, says", [("a: 2024-02-30", "cannot be read as a YAML timestamp"),
                                        ("a: !!int abc", "cannot be read as a YAML int"),
                                        ("a: !!python/object:os.system x", "could not determine a constructor")])
def test_values_yaml_cannot_build_are_named(text, says):
    e = refused(text)
    assert says in e.message and e.line == 1


@pytest.mark.parametrize("text, syntax", [("a: [1,", True), ("a: 1\n---\nb: 2", True), ("a: b\x01", True),
                                          ("a:\n\tb: 1", True), ("a: {a: 1, a: 2}", False)])
def test_syntax_errors_are_marked_so_that_set_may_take_the_text(text, syntax):
    assert refused(text).syntax is syntax


def test_utf16_and_utf32_are_named_with_or_without_a_byte_order_mark():
    for data, name in [("a: 1\n".encode("utf-16"), "UTF-16"), ("a: 1\n".encode("utf-16-le"), "UTF-16"),
                       ("a: 1\n".encode("utf-32"), "UTF-32"), ("a: 1\n".encode("utf-32-le"), "UTF-32")]:
        with pytest.raises(YamlProblem) as e:
            decode(data, "s.yaml")
        assert name in e.value.message and e.value.fix.endswith(f"iconv -f {name} -t UTF-8 s.yaml > s.utf8.yaml")


def test_a_latin1_byte_names_the_byte_offset_line_and_column():
    data = "name: x\ndescription: caf\u00e9 au lait\n".encode("latin-1")
    at = data.index(b"\xe9")
    with pytest.raises(YamlProblem) as e:
        decode(data, "spec.yaml")
    assert (e.value.offset, e.value.line, e.value.column) == (at, 2, 17)
    assert "byte 0xe9" in e.value.message and "Latin-1" in e.value.message and "café au lait" in e.value.message
    assert e.value.place == f"line 2, column 17 (byte {at})"


def test_a_utf8_byte_order_mark_is_fine():
    assert load_yaml(decode(b"\xef\xbb\xbfa: 1\n")) == {"a": 1}


def test_text_with_an_unpaired_surrogate_is_refused():
    e = refused('a: "caf\\ud800"')
    assert "unpaired surrogate" in e.message and (e.line, e.column) == (1, 4)
