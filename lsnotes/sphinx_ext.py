"""A Sphinx extension for the book: each page loads each script once.

sphinx-thebe registers its inline configuration (``const THEBE_JS_URL = …``) every time Sphinx
reads documents, and a Jupyter Book build reads them more than once; a page that declares a
``const`` twice stops with a SyntaxError in the browser's console on every page. Listed in
``_config.yml`` (``sphinx.extra_extensions``).
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
