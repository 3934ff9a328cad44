"""HTML bodies of inbound mail made safe to store, show to agents and hand to other apps.

Two layers, because mail comes from strangers:

1. ``_Canonical`` reads the HTML once, in linear time, and writes it again in a plain form:
   only the tags we keep, every element closed explicitly and in order, nesting and
   attributes capped, long text split into separate text nodes. html5ever's tree builder
   (which nh3 uses) is quadratic on hostile structure, and a size cap alone bounds none of
   it: unclosed nesting (each start tag walks the whole stack; html5ever issue 788),
   formatting elements re-opened after every block ("reconstruct the active formatting
   elements", HTML section 13.2.4.3), thousands of attributes on one tag, and long text
   runs full of "&". Measured with nh3 0.3.8: 43 KB of ``<p><b title=N>x</p>`` came out
   as 38 MB and took 570 MB; 800 KB of unclosed ``<b title=N>`` took 50 s. What layer 1
   writes leaves the tree builder nothing to repair, so it parses in linear time.
2. ``nh3`` (ammonia) is the security boundary: it parses what layer 1 wrote as a browser
   would and keeps only the allow-listed tags, attributes, URL schemes and CSS. Layer 1
   only has to be right about cost, never about safety.
"""

from __future__ import annotations

import re
from typing import Any

import nh3

from casemail.html.canonical import (
    ALLOWED_TAGS,
    DROP_NESTED,
    DROP_RAW,
    MAX_HTML_CHARS,
    canonical,
)

_CELL_ATTRIBUTES = {
    "abbr", "bgcolor", "colspan", "headers", "height", "nowrap", "rowspan", "valign", "width",
}  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"align", "dir", "lang", "style", "title"},
    "a": {"href"},
    "img": {"alt", "border", "height", "hspace", "src", "vspace", "width"},
    "table": {"bgcolor", "border", "cellpadding", "cellspacing", "height", "summary", "width"},
    "td": _CELL_ATTRIBUTES,
    "th": _CELL_ATTRIBUTES | {"scope"},
    "tr": {"bgcolor", "height", "valign"},
    "tbody": {"valign"},
    "thead": {"valign"},
    "tfoot": {"valign"},
    "col": {"span", "valign", "width"},
    "colgroup": {"span", "valign", "width"},
    "font": {"color", "face", "size"},
    "ol": {"reversed", "start", "type"},
    "ul": {"type"},
    "li": {"type", "value"},
    "hr": {"color", "noshade", "size", "width"},
    "blockquote": {"type"},
    "del": {"datetime"},
    "ins": {"datetime"},
    "time": {"datetime"},
}
# Properties that only lay out and colour the message: nothing positions it over the page
# around it (position, z-index, transform), loads anything (background-image, cursor,
# list-style-image, content) or runs anything (behavior, -moz-binding).
SAFE_CSS_PROPERTIES = frozenset(
    {
        "background", "background-color", "border", "border-bottom", "border-bottom-color",
        "border-bottom-left-radius", "border-bottom-right-radius", "border-bottom-style",
        "border-bottom-width", "border-collapse", "border-color", "border-left",
        "border-left-color", "border-left-style", "border-left-width", "border-radius",
        "border-right", "border-right-color", "border-right-style", "border-right-width",
        "border-spacing", "border-style", "border-top", "border-top-color",
        "border-top-left-radius", "border-top-right-radius", "border-top-style",
        "border-top-width", "border-width", "caption-side", "clear", "color", "direction",
        "display", "float", "font", "font-family", "font-size", "font-style", "font-variant",
        "font-weight", "height", "letter-spacing", "line-height", "list-style-position",
        "list-style-type", "margin", "margin-bottom", "margin-left", "margin-right",
        "margin-top", "max-height", "max-width", "min-height", "min-width", "padding",
        "padding-bottom", "padding-left", "padding-right", "padding-top", "table-layout",
        "text-align", "text-decoration", "text-indent", "text-transform", "unicode-bidi",
        "vertical-align", "white-space", "width", "word-break", "word-spacing", "word-wrap",
        "overflow-wrap",
    }
)  # fmt: skip
# CSS functions a value may call: colours and arithmetic; url(), expression(), image-set()
# and the like are refused with the whole declaration.
_CSS_FUNCTIONS = frozenset({"calc", "hsl", "hsla", "rgb", "rgba"})
_CSS_FUNCTION = re.compile(r"([\w-]*)\s*\(")
# Backslash escapes and comments could spell a refused word in pieces ("u\72l(", "u/**/rl(").
_CSS_REFUSED = re.compile(r"[\\<>@]|/\*|javascript|vbscript|expression|behavior|binding", re.I)
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# cid: is how a message refers to its own inline parts (RFC 2392).
_IMAGE_SCHEMES = frozenset({"http", "https", "cid"})
# Raster images only: an SVG image is a document of its own.
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|jpg|webp|bmp)[;,]", re.I)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_URL_IGNORED = re.compile(r"[\t\n\r]")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_DROP_WITH_CONTENT = DROP_RAW | DROP_NESTED | {"embed", "frame", "xmp", "plaintext"}
TRUNCATION_NOTE = (
    "<p>[This HTML body was cut after {kept:,} of its {size:,} characters; "
    "the original message keeps all of it.]</p>"
)


def _url(value: str) -> str:
    """The URL as a browser reads it (WHATWG URL: C0 and space trimmed, tab/CR/LF removed),
    so that "jav&#x09;ascript:" is seen as the "javascript:" it becomes."""
    return _URL_IGNORED.sub("", value).strip(_C0_AND_SPACE)


def _scheme(url: str) -> str | None:
    found = _SCHEME.match(url)
    return found.group(1).lower() if found else None


def _image_source_ok(value: str) -> bool:
    url = _url(value)
    scheme = _scheme(url)
    return scheme in _IMAGE_SCHEMES or (scheme == "data" and _DATA_IMAGE.match(url) is not None)


def _css_value_ok(value: str) -> bool:
    if not value or _CSS_REFUSED.search(value) or value.count('"') % 2 or value.count("'") % 2:
        return False
    return all(name.lower() in _CSS_FUNCTIONS for name in _CSS_FUNCTION.findall(value))


def safe_style(value: str) -> str | None:
    """The declarations of a style attribute we keep (safe property, safe value), or None.
    Ours rather than only nh3's: its CSS parser passed ``width:expression(alert()`` on."""
    kept = []
    for declaration in value.split(";"):
        name, colon, css = declaration.partition(":")
        name, css = name.strip().lower(), css.strip()
        if colon and name in SAFE_CSS_PROPERTIES and _css_value_ok(css):
            kept.append(f"{name}:{css}")
    return ";".join(kept) or None


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Per-element URL rules nh3's global scheme list cannot express: data: only for raster
    images, cid: only for images, no relative URLs (mail has no base; a relative link
    would point into whatever application shows it)."""
    if attribute == "style":
        return safe_style(value)
    if attribute == "href":
        return value if tag == "a" and _scheme(_url(value)) in _LINK_SCHEMES else None
    if attribute == "src":
        return value if tag == "img" and _image_source_ok(value) else None
    return value


def _supports(option: str) -> bool:
    """Whether the installed nh3 takes ``option``: 0.2.17, the oldest we allow, lacks
    some (read from the built-in's text signature, which nh3's stubs do not declare)."""
    return option in (getattr(nh3.clean, "__text_signature__", None) or "")


# nh3 0.2.17 has no filter_style_properties; safe_style enforces the same list anyway.
_STYLE_OPTION: dict[str, Any] = (
    {"filter_style_properties": set(SAFE_CSS_PROPERTIES)}
    if _supports("filter_style_properties")
    else {}
)


def _valid_unicode(text: str) -> str:
    """``text`` without unpaired surrogates (a str may hold them; nh3 passes the text to
    Rust, which takes valid Unicode only, and raised): pairs become their character, the
    rest U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def safe_html(source: str) -> str:
    """``source`` as HTML that can be shown inside another page: no script, no event
    handler, no active URL, no foreign content, no form, nothing that escapes its box;
    tables, images (http, https, cid:, raster data:), links and inline styles kept.
    Time and memory are linear in the input, whatever its structure."""
    head = _valid_unicode(source[:MAX_HTML_CHARS])
    written, used = canonical(head)
    if used < len(head) or len(source) > MAX_HTML_CHARS:
        written += TRUNCATION_NOTE.format(kept=used, size=len(source))
    return nh3.clean(
        written,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        strip_comments=True,
        link_rel="noopener noreferrer",
        url_schemes=_LINK_SCHEMES | _IMAGE_SCHEMES | {"data"},
        **_STYLE_OPTION,
    )
