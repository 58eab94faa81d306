"""The reading page in the reader's language: ?lang= first, then the browser's Accept-Language, then the default.

The page is static HTML, CSS and JavaScript (no inline script, so the Content-Security-Policy forbids any);
its strings come from ``static/i18n/<language>.json`` and every name or label is inserted as text, never HTML.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from proctovision.core.i18n import page_language  # noqa: F401 - the pages' language rule

STATIC = Path(__file__).parent / "static"



@lru_cache(maxsize=None)
def _template() -> str:
    return (STATIC / "reading.html").read_text(encoding="utf-8")


def render_page(query: str | None, accept_language: str | None) -> str:
    """The page with its language set (one of the installation's catalogues, so never text from the request)."""
    language = page_language(query, accept_language)
    html_lang = "zh-Hans" if language == "zh-CN" else "en"
    return _template().replace("{{language}}", language).replace("{{html_lang}}", html_lang)
