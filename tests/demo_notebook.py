"""Runs ``examples/demo.ipynb`` the way a user does, top to bottom, on a given run (shared by
the demo-run and the unconditional-run notebook tests)."""

import json
from pathlib import Path

NOTEBOOK = Path(__file__).parents[1] / "examples" / "demo.ipynb"


def run_notebook(workdir: Path, monkeypatch) -> dict:
    """Executes every code cell in order against ``workdir`` (the notebook's
    ``STYLEGAN_JAX_DEMO_WORKDIR``) and returns the notebook's global namespace."""
    notebook = json.loads(NOTEBOOK.read_text())
    code = "\n\n".join("".join(cell["source"]) for cell in notebook["cells"]
                       if cell["cell_type"] == "code")
    monkeypatch.setenv("STYLEGAN_JAX_DEMO_WORKDIR", str(workdir))
    namespace = {}
    exec(compile(code, str(NOTEBOOK), "exec"), namespace)
    return namespace
