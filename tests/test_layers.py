"""Imports point down the layers (DESIGN.md): no folder imports one above it, so none imports
a folder that imports it back."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "r1pipeline"
# each folder, and the folders above it that it must not import
ABOVE = {
    "pipeline": ("cli",),
    "stages": ("cli", "pipeline"),
    **{low: ("cli", "pipeline", "stages") for low in ("rewards", "tasks", "models", "rollout", "sandbox")},
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions and TYPE_CHECKING blocks."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("folder", sorted(ABOVE))
def test_a_folder_imports_nothing_above_it(folder):
    offences = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "r1pipeline" and len(parts) > 1 and parts[1] in ABOVE[folder]:
                offences.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not offences, "\n".join(offences)
