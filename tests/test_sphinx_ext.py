"""The book's Sphinx extension: a script registered twice is loaded once (sphinx-thebe's inline
``const THEBE_JS_URL`` declared twice stops every page with a SyntaxError)."""

from sphinx.builders.html._assets import _JavaScript

from lsnotes.sphinx_ext import unique_scripts


def test_an_inline_script_registered_twice_is_kept_once():
    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("a.js"), _JavaScript(None, body=body), _JavaScript("", body=body),
               _JavaScript("a.js"), _JavaScript("b.js", **{"async": "async"}), _JavaScript("b.js")]
    kept = unique_scripts(scripts)
    assert [(s.filename, s.attributes) for s in kept] == [
        ("a.js", {}), (None, {"body": body}), ("b.js", {"async": "async"}), ("b.js", {})]
