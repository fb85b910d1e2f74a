"""A Sphinx extension for the book: citation links become citations; each script loads once.

The chapters cite with Markdown links JupyterLab can show (:mod:`lsnotes.citations`); before a
page is parsed they are turned back into ``{cite}`` roles, so sphinxcontrib-bibtex numbers,
links and lists them as before.

sphinx-thebe registers its inline configuration (``const THEBE_JS_URL = …``) every time Sphinx
reads documents, and a Jupyter Book build reads them more than once; a page that declares a
``const`` twice stops with a SyntaxError in the browser's console on every page. Listed in
``_config.yml`` (``sphinx.extra_extensions``).
"""

from __future__ import annotations

import json
from pathlib import Path

from lsnotes.citations import to_roles


def unique_scripts(scripts: list) -> list:
    """``scripts`` with later repeats (same file, same attributes, same inline body) removed."""
    seen, kept = set(), []
    for script in scripts:
        # an inline script's file name is None or "" depending on who added it: the same script
        key = (getattr(script, "filename", script) or "",
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    return kept


def _dedupe(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"] = unique_scripts(context["script_files"])


def roles_in_source(source: str, suffix: str) -> str:
    """A page's source with its citation links as ``{cite}`` roles; a notebook's markdown cells
    are rewritten one by one (a link may span lines, which JSON splits into strings)."""
    if suffix != ".ipynb":
        return to_roles(source)
    notebook = json.loads(source)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = to_roles(text)
    return json.dumps(notebook, ensure_ascii=False)


def _citations(app, docname, source):
    source[0] = roles_in_source(source[0], Path(app.env.doc2path(docname)).suffix)


def setup(app):
    app.connect("source-read", _citations)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
