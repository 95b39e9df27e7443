"""Tiny planted notebooks for the tools' tests: a parameters cell and one code cell, no training."""
from pathlib import Path

import nbformat


def planted(nb_dir: Path, name: str, body: str, params: str) -> Path:
    """Write ``<nb_dir>/<name>.ipynb``: a title, ``params`` tagged ``parameters``, then ``body``."""
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(nb_dir) / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path
