"""The clinician's page in the reader's language: ?lang= first, then the browser's Accept-Language, then the default."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from proctovision.core import i18n
from proctovision.core.i18n import page_language  # noqa: F401 - the pages' language rule

STATIC = Path(__file__).parent / "static"



@lru_cache(maxsize=None)
def template(language: str, name: str = "index.html") -> jinja2.Template:
    return i18n.environment(jinja2.FileSystemLoader(STATIC), language).get_template(name)


def render_page(language: str, classes: tuple[str, ...] = (), name: str = "index.html", **context: object) -> str:
    """A page (the clinician's ``index.html``, the ``live.html`` stream) with every string in ``language``; class
    names of the model shown as clinicians name them."""
    _ = i18n.gettext_for(language)
    labels = {label: _(label) for label in (*i18n.CLASS_NAMES, *classes)}
    return template(language, name).render(languages=i18n.LANGUAGES, class_labels=labels, **context)
