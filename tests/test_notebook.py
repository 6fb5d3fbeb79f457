"""The exploration notebook runs top to bottom on sample data (so it never rots) and is committed clean."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_lake.ipynb"


def _kernel_name() -> str:
    """python3 if a kernelspec exists, else register one for the current interpreter (user scope)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
        return "python3"
    except NoSuchKernel:
        import subprocess

        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"], check=True,
                       capture_output=True)
        return "python3"


def test_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the notebook's outputs before committing"


@pytest.mark.slow  # starts a Jupyter kernel
def test_notebook_executes_on_sample_lake(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    from lake_fixture import build_lake

    data = tmp_path / "data"
    build_lake(data / "lake")
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(data))
    monkeypatch.delenv("CRMSUM_LAKE_URL", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name=_kernel_name(), resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # activity, win rate, loss reasons, chat volume
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert str(data / "lake") in text  # it read the lake of CRMSUM_DATA_DIR
    assert "PER-a1b2c3d4" in text and "Дорого" in text
