"""Languages of everything a clinician reads: Babel catalogues, Jinja2's i18n extension, locale-aware dates.

English is the source language (the msgids); ``locale/<lang>/LC_MESSAGES/proctovision.po`` holds each
translation. The .po files are compiled in memory with Babel when first used, so an editable install and a
wheel need nothing but the .po files. To refresh after changing strings::

    pybabel extract -F src/proctovision/locale/babel.cfg -k N_ --no-location --sort-output \
        -o src/proctovision/locale/proctovision.pot src/proctovision
    pybabel update -i src/proctovision/locale/proctovision.pot -d src/proctovision/locale -D proctovision
"""
from __future__ import annotations

import datetime as dt
import gettext
import io
import os
from functools import lru_cache
from pathlib import Path

import jinja2
import yaml
from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from proctovision.core.errors import UserError

LOCALE_DIR = Path(__file__).parent.parent / "locale"
DOMAIN = "proctovision"
SOURCE_LANGUAGE = "en"
LANGUAGES = {"en": "English", "zh-CN": "简体中文"}
ENV_LANGUAGE = "PROCTOVISION_LANGUAGE"
ENV_SETTINGS = "PROCTOVISION_SETTINGS"


class LanguageError(UserError, ValueError):
    """A language this installation has no catalogue for."""


def N_(message: str) -> str:
    """Marks a string for the catalogue where it is defined; it is translated where it is shown."""
    return message


# Names that travel as data (metric keys, class names, split names) and are shown to readers.
TERMS = (
    N_("accuracy"), N_("sensitivity"), N_("specificity"), N_("precision"), N_("recall"), N_("f1"), N_("roc_auc"),
    N_("average_precision"), N_("quadratic_kappa"), N_("brier"), N_("ece"), N_("ppv"), N_("npv"),
    N_("normal"), N_("hemorrhoid"), N_("Rf0"), N_("Rf1"), N_("Rf2"), N_("internal_orifice"),
    N_("train"), N_("val"), N_("test"), N_("image"), N_("patient"), N_("model"), N_("reader"),
    N_("youden"), N_("fixed"), N_("default (run not evaluated)"),
    N_("ldrf"), N_("fistula"), N_("simulated reader"), N_("model vs readers"), N_("conditions"), N_("auc"),
    N_("jackknife"), N_("bootstrap"), N_("internal"), N_("external"),
)
CLASS_NAMES = ("normal", "hemorrhoid", "Rf0", "Rf1", "Rf2", "internal_orifice")

# Strings of pages still to come (video page, out-of-distribution guard, image-quality flags): translated now.
LATER_PAGES = (
    N_("Live video"), N_("Start"), N_("Stop"), N_("Frames per second"), N_("Choose a video file or a camera"),
    N_("This image does not look like the images the model was trained on"),
    N_("The prediction may be unreliable; read the image yourself."),
    N_("Image quality"), N_("too dark"), N_("overexposed"), N_("blurred"),
)


def normalise(language: str | None) -> str:
    """``zh``, ``zh_CN``, ``zh-Hans-CN``, ``en-GB`` ... to a catalogue name; an unknown language is an error."""
    if not language:
        return SOURCE_LANGUAGE
    try:
        locale = Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as error:
        raise LanguageError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}") from error
    if locale.language == "zh" and locale.script != "Hant" and locale.territory not in ("TW", "HK", "MO"):
        return "zh-CN"
    if locale.language == "en":
        return "en"
    raise LanguageError(f"no catalogue for {language!r}; choose one of {', '.join(LANGUAGES)}")


def settings_path() -> Path:
    """The installation's settings file: $PROCTOVISION_SETTINGS, else $XDG_CONFIG_HOME/proctovision/settings.yaml."""
    if os.environ.get(ENV_SETTINGS):
        return Path(os.environ[ENV_SETTINGS])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "proctovision" / "settings.yaml"


def default_language() -> str:
    """$PROCTOVISION_LANGUAGE, else ``language:`` in the settings file, else English."""
    if os.environ.get(ENV_LANGUAGE):
        return normalise(os.environ[ENV_LANGUAGE])
    path = settings_path()
    if path.is_file():
        try:
            settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise LanguageError(f"{path}: not readable YAML ({error})") from error
        if isinstance(settings, dict) and settings.get("language"):
            return normalise(str(settings["language"]))
    return SOURCE_LANGUAGE


def resolve(language: str | None) -> str:
    """The language asked for, or the installation's default when none was."""
    return normalise(language) if language else default_language()


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
def translations(language: str | None) -> gettext.NullTranslations:
    """gettext translations compiled from the .po file; English (the source) translates to itself."""
    language = normalise(language)
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    with open(catalogue_path(language), "rb") as stream:
        catalog = read_po(stream, locale=language.replace("-", "_"), domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def gettext_for(language: str | None):
    return translations(language).gettext


def from_accept_language(header: str | None) -> str | None:
    """The best catalogue for an HTTP Accept-Language header (``zh-CN,zh;q=0.9,en;q=0.8``); None if none fits."""
    weighted = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    for _, _, tag in sorted(weighted):
        try:
            return normalise(tag)
        except LanguageError:
            continue
    return None


def environment(loader: jinja2.BaseLoader, language: str | None) -> jinja2.Environment:
    """A Jinja2 environment whose templates translate with ``_()``/``{% trans %}`` into ``language``."""
    env = jinja2.Environment(loader=loader, autoescape=True, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations(language), newstyle=True)
    env.globals["language"] = normalise(language)
    env.globals["html_lang"] = "zh-Hans" if normalise(language) == "zh-CN" else "en"
    return env


def format_timestamp(moment: dt.datetime, language: str | None) -> str:
    """A date and time as readers of ``language`` write it (2026年11月25日 ... / Nov 25, 2026, ...)."""
    return format_datetime(moment, format="medium", locale=normalise(language).replace("-", "_"))


def page_language(query: str | None, accept_language: str | None) -> str:
    """The language a page's switch asked for, else the browser's best, else the installation's default."""
    if query:
        try:
            return normalise(query)
        except LanguageError:
            pass
    return from_accept_language(accept_language) or default_language()
