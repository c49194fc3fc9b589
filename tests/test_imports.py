"""The package's import graph: no cycles (deferred imports included), the layer table of
docs/ARCHITECTURE.md holds, and the library never imports the CLI."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from import_graph import cycles, import_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "stylegan_jax"


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE)


def test_the_package_has_no_import_cycle(graph):
    assert cycles(graph) == []


def test_a_planted_cycle_is_found(tmp_path):
    """Positive control: a cycle through a deferred import and a package ``__init__``."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import c\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "ok.py").write_text("import pkg.a\n")
    found = import_graph(pkg)
    assert found["pkg.a"] == {"pkg.sub", "pkg.sub.c"}
    assert cycles(found) == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]]


def layer_table() -> list[list[str]]:
    """The module patterns of each row of the architecture doc's layer table, lowest first."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| \d+\. [^|]+\| (.+) \|$", section, flags=re.M)
    return [re.findall(r"`([\w.*]+)`", row) for row in rows]


def layer_of(module: str, table: list[list[str]]) -> int:
    name = module.removeprefix("stylegan_jax.") if module != "stylegan_jax" else module
    hits = [i for i, row in enumerate(table) for pattern in row
            if pattern == name or (pattern.endswith(".*") and name.startswith(pattern[:-1]))]
    assert len(hits) == 1, f"{module} is in {len(hits)} rows of the layer table"
    return hits[0]


def test_every_import_is_within_its_layer_or_below(graph):
    table = layer_table()
    assert len(table) >= 6
    upward = [f"{m} (layer {layer_of(m, table) + 1}) imports {d} (layer {layer_of(d, table) + 1})"
              for m, deps in sorted(graph.items()) for d in sorted(deps)
              if layer_of(d, table) > layer_of(m, table)]
    assert upward == []


def test_the_layer_check_sees_an_upward_import():
    table = [["config"], ["networks"]]
    assert layer_of("stylegan_jax.networks", table) > layer_of("stylegan_jax.config", table)
    with pytest.raises(AssertionError, match="in 0 rows"):
        layer_of("stylegan_jax.unlisted", table)


def test_importing_the_library_imports_no_cli_module():
    code = ("import sys, stylegan_jax, stylegan_jax.metrics, stylegan_jax.training_loop; "
            "print([m for m in sys.modules if m.startswith('stylegan_jax.cli')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
