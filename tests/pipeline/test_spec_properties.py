"""Property: whatever a spec or a ``--set`` override holds, loading it gives a validated spec or a
``SpecError`` whose every line names a place (stage, field or line) and a fix, short; never
another exception, never a hang, never a torch import (issue 13, item 4).

Specs are mutated from the shipped configs (configs/*.yaml): a value somewhere replaced by a wrong
type, a huge or non-finite number, deep nesting or a long string; keys removed, added or given
twice; the text cut, re-encoded (UTF-16, Latin-1), sprinkled with bytes, an alias bomb or a
number YAML reads as inf; and ``--set`` overrides of any key with any such value. A few of them go
through the real CLI in a fresh interpreter, which also says whether torch was imported.
"""

from __future__ import annotations

import random
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1pipeline.pipeline.spec import CHECK_BUG, Spec, SpecError, load_spec
from tests.conftest import CONFIGS
from tests.pipeline.test_spec_errors import run_cli_many

SHIPPED = {p.name: p.read_text() for p in sorted(CONFIGS.glob("*.yaml"))}
RAW = {name: yaml.safe_load(text) for name, text in SHIPPED.items()}
EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into ``value``, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, prefix + (i,))
    return out


PATHS = {name: paths(raw)[1:] for name, raw in RAW.items()}

hostile_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(min_value=2**31, max_value=2**70),
    st.integers(max_value=-(2**31)), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "Infinity", "1e400", "-1e400", "1.0e+400", "-1", "true", "",
                     "x" * 20_000, "../../etc/passwd", "\x00", "r1_zero", "base", "tiny_product"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.integers(1, 60).map(lambda d: nested(d)),
    st.lists(st.integers(), max_size=5), st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
)
# Text that a YAML value may be replaced by (the loader's own refusals included).
hostile_texts = st.sampled_from([
    ".inf", "-.inf", ".nan", "1e400", "1.0e+400", "9" * 5000, "-1", "4294967296", "true", "no", "~", "[", "{",
    "[" * 100_000, "*nosuch", "&a [*a]", "!!python/object:os.system x", "2024-02-30", "'unclosed", "0x" + "f" * 40,
    "{a: 1, a: 2}", "1:2:3:4:5:6:7:8:9:10:11:12:13", "\t", "\x01", "[1, 2]", "{}", "x" * 20_000,
]) | st.text(st.characters(exclude_categories=("Cs",)), max_size=30)

BOMB = ("bombs: [&b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol], "
        + ", ".join(f"&b{i} [{', '.join([f'*b{i - 1}'] * 9)}]" for i in range(1, 9)) + "]\n")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def get(raw: Any, path: tuple) -> Any:
    for key in path:
        raw = raw[key]
    return raw


@contextmanager
def guard(seconds: float = 20.0):
    """A hang fails the example (an alias bomb once took over a minute); not a timing assertion."""
    def hung(*_):
        raise TimeoutError(f"loading took over {seconds} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_outcome(path: Path, overrides: list[str] = ()) -> Spec | SpecError:
    """Load ``path``: a Spec, or a SpecError each of whose lines names a place and a fix, short."""
    torch_before = "torch" in sys.modules  # an earlier in-process test may have imported it
    with guard():
        try:
            spec = load_spec(path, list(overrides))
        except SpecError as exc:
            outcome: Spec | SpecError = exc
        else:
            outcome = spec
    if isinstance(outcome, SpecError):
        assert outcome.problems
        for p in outcome.problems:
            line = str(p)
            assert "fix: " in line and p.fix.strip(), line
            assert len(line) < 2000, line[:300]
            assert p.stage or p.field or p.message.startswith("line ") or WHOLE_FILE(p.message), line
            assert "Traceback" not in line
            assert CHECK_BUG not in line, line  # the guard kept it from the user; here it is a bug to fix
    if not torch_before:
        assert "torch" not in sys.modules, "loading a spec imported torch"
    return outcome


def WHOLE_FILE(message: str) -> bool:
    """Problems about the file as a whole: the file itself is their place."""
    return message.startswith(("the spec must be a YAML mapping", "no spec file", "cannot be read", "the file is"))


def write(tmp_path: Path, data: str | bytes) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


@st.composite
def structured_mutation(draw) -> tuple[str, dict]:
    """A shipped config as data, one change made: a value replaced, a key removed, added or renamed."""
    name = draw(st.sampled_from(sorted(RAW)))
    raw = yaml.safe_load(SHIPPED[name])  # a fresh copy (aliases shared as in the file)
    path = draw(st.sampled_from(PATHS[name]))
    parent, key = get(raw, path[:-1]), path[-1]
    action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add", "rename"]))
    if action == "replace":
        parent[key] = draw(hostile_values)
    elif action == "remove":
        del parent[key]
    elif isinstance(parent, dict):
        new_key = draw(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12) | hostile_values
                       .filter(lambda v: isinstance(v, (str, int, bool)) or v is None))
        if action == "add":
            parent[new_key] = draw(hostile_values)
        elif new_key not in parent:
            parent[new_key] = parent.pop(key)
    else:
        parent.append(draw(hostile_values))
    raw["base_dir"] = str(CONFIGS)  # written elsewhere; its data files stay in configs/
    return name, raw


@given(structured_mutation())
@EXAMPLES
def test_a_mutated_shipped_spec_is_valid_or_refused_naming_the_place(tmp_path_factory, mutation):
    _, raw = mutation
    try:
        text = yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        return
    check_outcome(write(tmp_path_factory.mktemp("s"), text))


@st.composite
def text_mutation(draw) -> bytes:
    """A shipped config's text, changed as a hand or a tool might: a line doubled (a duplicate
    key), a value's text replaced, the file cut, re-encoded, given stray bytes or an alias bomb."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    lines = f"base_dir: {CONFIGS}\n{SHIPPED[name]}".splitlines(keepends=True)
    i = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["double", "value", "value", "cut", "encode", "bytes", "bomb"]))
    if action == "double":
        lines.insert(i, lines[i])
    elif action == "value" and ":" in lines[i]:
        head = lines[i].split(":", 1)[0]
        lines[i] = f"{head}: {draw(hostile_texts)}\n"
    elif action == "bomb":
        lines.insert(1, BOMB)
        if ":" in lines[i + 1]:
            lines[i + 1] = lines[i + 1].split(":", 1)[0] + ": *b8\n"
    text = "".join(lines)
    if action == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    data = text.encode("utf-8", "surrogatepass")
    if action == "encode":
        data = draw(st.sampled_from([text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-32"),
                                     text.replace("e", "\u00e9", 1).encode("latin-1", "replace")]))
    elif action == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@given(text_mutation())
@EXAMPLES
def test_a_mutated_spec_text_is_valid_or_refused_naming_the_place(tmp_path_factory, data):
    check_outcome(write(tmp_path_factory.mktemp("t"), data))


def override_keys(name: str) -> list[str]:
    """Dotted keys as ``--set`` takes them: top-level keys, and STAGE.FIELD... of each stage."""
    raw = RAW[name]
    keys = [k for k in raw if k != "stages"]
    for stage in raw["stages"]:
        for path in paths(stage)[1:]:
            if all(isinstance(p, str) for p in path):
                keys.append(".".join([stage["name"], *path]))
    return keys


@given(st.data())
@EXAMPLES
def test_set_overrides_are_applied_or_refused_naming_the_place(data):
    name = data.draw(st.sampled_from(sorted(RAW)))
    key = data.draw(st.sampled_from(override_keys(name)) | st.text(max_size=20))
    value = data.draw(hostile_texts)
    check_outcome(CONFIGS / name, [f"{key}={value}"])


def test_the_shipped_configs_load_the_same_as_with_safe_load():
    """The stricter loader changes nothing for good specs."""
    from r1pipeline.pipeline.yaml_load import read_yaml

    for name in SHIPPED:
        assert read_yaml(CONFIGS / name) == RAW[name], name


def test_mutated_specs_through_the_cli_exit_0_or_2_without_torch(tmp_path):
    """A sample of the mutations above through ``r1 validate`` in a fresh interpreter."""
    rng = random.Random(13)
    calls = []
    for i in range(24):
        name = rng.choice(sorted(SHIPPED))
        lines = f"base_dir: {CONFIGS}\n{SHIPPED[name]}".splitlines(keepends=True)
        j = rng.randrange(1, len(lines))
        if ":" in lines[j]:
            lines[j] = lines[j].split(":", 1)[0] + ": " + rng.choice(
                [".inf", "1e400", "9" * 5000, "true", "[" * 100_000, "{a: 1, a: 2}", "-1", "x", "{}"]) + "\n"
        data = "".join(lines).encode()
        if i % 6 == 5:
            data = data.decode().encode(rng.choice(["utf-16", "latin-1"]), "replace")
        path = tmp_path / f"{i}.yaml"
        path.write_bytes(data)
        calls.append(["validate", str(path)])
    calls.append(["validate", str(CONFIGS / "micro.yaml"), "--set", "seed=[[[[", "--set", "r1_zero.steps=.nan"])
    for args, (outcome, stderr) in zip(calls, run_cli_many(calls), strict=True):
        assert outcome["code"] in (0, 2, None) and not outcome["torch"], (args[1], stderr[-2000:])
        assert "Traceback" not in stderr, stderr[-3000:]
        if outcome["code"] == 2:
            assert all("fix: " in line for line in stderr.strip().splitlines()), stderr[:2000]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_config_still_validates(name):
    assert isinstance(check_outcome(CONFIGS / name), Spec)
