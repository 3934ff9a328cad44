"""Layer 1 of ``sanitize.py``: HTML read once, in linear time, and written again in a plain
form that html5ever's tree builder (inside nh3) parses in linear time too: only the tags
we keep, every element closed explicitly and in order, nesting and attributes capped,
long text split into separate text nodes. Why this is needed: ``sanitize.py``. It only has
to be right about cost; nh3, after it, is the security boundary.
"""

from __future__ import annotations

import html
import io
import re
from collections import defaultdict
from itertools import islice

# Beyond this the body is cut (at a character, not a tag: the parser drops a cut tag) and
# a note says so; the raw message keeps everything.
MAX_HTML_CHARS = 4 * 1024 * 1024
# Likewise beyond this many tags, comments and stray "<": each costs a few microseconds
# here and in the parser, where a character of text costs next to nothing. Real mail has
# a few thousand; 100,000 is some 2.5 MB of markup.
MAX_MARKUP = 100_000
# Open elements at once. Real mail nests a few dozen; browsers stop at 512.
MAX_DEPTH = 128
# Open formatting elements (b, i, font, a...) at once: each may be re-opened by the parser.
MAX_FORMATTING = 12
MAX_ATTRIBUTES = 32
# Characters per text node: html5ever's serialiser is quadratic in the "&" of one node.
TEXT_CHUNK = 2048

_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# The HTML "formatting" elements we keep: the parser re-opens them after implied closes.
_FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "s", "small", "strike", "strong", "tt", "u"}
)
# Start tags that close an open <p> (HTML 13.2.6.4.7, "close a p element").
_BLOCKS = _HEADINGS | {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "header", "hgroup", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "ul",
}  # fmt: skip
_TABLE = frozenset(
    {"caption", "col", "colgroup", "table", "tbody", "td", "tfoot", "th", "thead", "tr"}
)
_PHRASING = frozenset(
    {
        "abbr", "acronym", "bdi", "bdo", "br", "cite", "del", "dfn", "img", "ins", "kbd",
        "mark", "q", "samp", "span", "sub", "sup", "time", "var", "wbr",
    }
)  # fmt: skip
ALLOWED_TAGS = _FORMATTING | _BLOCKS | _TABLE | _PHRASING
_VOID = frozenset({"br", "col", "hr", "img", "wbr"})
# The HTML "special" elements among ours: an end tag of an ordinary element stops at them.
_SPECIAL = _BLOCKS | _TABLE | {"br", "img", "wbr"}
# Dropped with everything inside: the raw-text elements up to their end tag...
DROP_RAW = frozenset(
    {"iframe", "noembed", "noframes", "noscript", "script", "style", "textarea", "title"}
)
# ...and these up to their matching end tag (their content is markup we do not show).
DROP_NESTED = frozenset({"applet", "frameset", "math", "object", "select", "svg", "template"})
# Shown as the literal text they hold, as a browser shows them.
_LITERAL = frozenset({"plaintext", "xmp"})

# Stack categories, so that "is X open above the nearest Y" is a lookup, not a walk.
_SCOPE = frozenset({"caption", "table", "td", "th"})
_CATEGORIES: dict[str, frozenset[str]] = {
    "#scope": _SCOPE,
    "#list-scope": _SCOPE | {"ol", "ul"},
    "#markers": frozenset({"caption", "td", "th"}),
    "#cell": frozenset({"td", "th"}),
    "#section": frozenset({"tbody", "tfoot", "thead"}),
    "#heading": _HEADINGS,
    "#dd": frozenset({"dd", "dt"}),
    "#special": _SPECIAL,
    "#li-stop": _SPECIAL - {"address", "div", "p", "li"},
    "#dd-stop": _SPECIAL - {"address", "div", "p", "dd", "dt"},
}
_KEYS = {
    tag: (tag, *(key for key, members in _CATEGORIES.items() if tag in members))
    for tag in ALLOWED_TAGS
}
_TABLE_CONTEXT = (("#section", "table"), ("tr", "table"), ("#cell", "table"))
# (open element to close, unless this is open above it) before a start tag: the closes
# the parser would make on its own, made explicit so that its tree matches ours.
_START_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "a": (("a", "#markers"),),
    "li": (("li", "#li-stop"),),
    "dd": (("#dd", "#dd-stop"),),
    "dt": (("#dd", "#dd-stop"),),
    "table": (("table", "#markers"),),
    "td": (("#cell", "table"),),
    "th": (("#cell", "table"),),
    "tr": (("tr", "table"), ("#cell", "table")),
    **dict.fromkeys(("caption", "col", "colgroup", "tbody", "tfoot", "thead"), _TABLE_CONTEXT),
}


def _end_stop(tag: str) -> str:
    """Where an end tag's search for its element stops (HTML "has an element in scope")."""
    if tag == "table":
        return "#never"
    if tag in _TABLE:
        return "table"
    if tag == "li":
        return "#list-scope"
    return "#scope" if tag in _SPECIAL or tag in _FORMATTING else "#special"


_END_STOP = {tag: _end_stop(tag) for tag in ALLOWED_TAGS}

# Markup with no element: comments, doctype, processing instructions, "</" + non-letter.
_IGNORED = re.compile(r"<!--(?:-?>|.*?(?:--!?>|\Z))|<[!?][^>]*>?|</(?![A-Za-z])[^>]*>?", re.S)
# A tag as the HTML tokenizer reads it: name, then attributes (a quote opens a value only
# after "="), then ">" or the end of the input. Possessive (never backtracking): a plain
# repeat keeps a backtracking frame per attribute, 570 MB for a 5 MB tag.
_TAG = re.compile(
    r"<(/?)([A-Za-z][^\t\n\f\r />]*+)"
    r"((?:[\t\n\f\r /]++|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"?+|'[^']*+'?+|[^\t\n\f\r >]*+))?+)*+)"
    r"(>?)"
)
_ATTRIBUTE = re.compile(
    r"([^\t\n\f\r />][^\t\n\f\r />=]*)"
    r"(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:\"([^\"]*)\"?|'([^']*)'?|([^\t\n\f\r >]*)))?"
)
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9-]*")
_END_OF: dict[str, re.Pattern[str]] = {
    tag: re.compile(rf"<(/?){tag}(?=[\t\n\f\r />])", re.I)
    for tag in DROP_RAW | DROP_NESTED | _LITERAL
}


class _Canonical:
    """Writes the elements it is given as well-nested HTML, closing what the HTML parser
    would close on its own, so that the parser has no misnesting left to repair."""

    def __init__(self) -> None:
        self._out = io.StringIO()
        self._stack: list[str] = []
        self._at: defaultdict[str, list[int]] = defaultdict(list)
        self._dropped: defaultdict[str, int] = defaultdict(int)
        self._formatting = 0
        self._run = 0  # characters of text since the last tag or text-node break
        self.budget = MAX_MARKUP  # markup items left to read

    def text(self, raw: str, *, decode: bool = True) -> None:
        """Text, escaped, with a text-node break (an empty comment) every TEXT_CHUNK."""
        value = html.unescape(raw) if decode and "&" in raw else raw
        value = value.replace("\x00", "")
        start = 0
        while start < len(value):
            if self._run >= TEXT_CHUNK:
                self._out.write("<!---->")
                self._run = 0
            piece = value[start : start + TEXT_CHUNK - self._run]
            self._out.write(html.escape(piece, quote=False))
            self._run += len(piece)
            start += len(piece)

    def start(self, tag: str, attributes: str) -> None:
        """A start tag: dropped unless we keep the element (its content stays), or past
        the depth and formatting caps (its end tag goes with it)."""
        if tag not in ALLOWED_TAGS:
            return
        self._implied_closes(tag)
        if tag in _VOID:
            self._write_tag(tag, attributes)
            return
        if len(self._stack) >= MAX_DEPTH or (
            tag in _FORMATTING and self._formatting >= MAX_FORMATTING
        ):
            self._dropped[tag] += 1
            return
        self._write_tag(tag, attributes)
        self._push(tag)

    def end(self, tag: str) -> None:
        """An end tag closes its element and what is open inside it, where the HTML parser
        would find it (scope); elsewhere it is dropped, as the parser ignores it."""
        if tag == "br":  # HTML 13.2.6.4.7: "</br>" is a <br>
            self.start("br", "")
        if tag not in ALLOWED_TAGS or tag in _VOID:
            return
        if self._dropped[tag]:
            self._dropped[tag] -= 1
            return
        if tag == "p" and not self._in_scope("p", "#scope"):
            self.start("p", "")  # a stray </p> is an empty paragraph
        target = "#heading" if tag in _HEADINGS else tag
        if self._in_scope(target, _END_STOP[tag]):
            self._close_through(self._top(target))

    def finish(self) -> str:
        """The HTML written, every element still open closed."""
        self._close_through(0)
        return self._out.getvalue()

    def _implied_closes(self, tag: str) -> None:
        for target, stop in _START_RULES.get(tag, ()):
            if self._in_scope(target, stop):
                self._close_through(self._top(target))
        if tag in _BLOCKS and self._in_scope("p", "#scope"):
            self._close_through(self._top("p"))
        if tag in _HEADINGS and self._stack and self._stack[-1] in _HEADINGS:
            self._close_through(len(self._stack) - 1)

    def _top(self, key: str) -> int:
        found = self._at.get(key)
        return found[-1] if found else -1

    def _in_scope(self, target: str, stop: str) -> bool:
        top = self._top(target)
        return top >= 0 and top > self._top(stop)

    def _push(self, tag: str) -> None:
        for key in _KEYS[tag]:
            self._at[key].append(len(self._stack))
        self._stack.append(tag)
        self._formatting += tag in _FORMATTING

    def _close_through(self, index: int) -> None:
        while len(self._stack) > index:
            tag = self._stack.pop()
            for key in _KEYS[tag]:
                self._at[key].pop()
            self._formatting -= tag in _FORMATTING
            self._out.write(f"</{tag}>")
            self._run = 0

    def _write_tag(self, tag: str, attributes: str) -> None:
        self._out.write(f"<{tag}{_attributes(attributes)}>")
        self._run = 0


def _attributes(source: str) -> str:
    """The first MAX_ATTRIBUTES attributes, double-quoted; the first of a name wins, as in
    HTML. Values keep their character references: the parser decodes them as a browser."""
    seen: set[str] = set()
    written: list[str] = []
    for match in islice(_ATTRIBUTE.finditer(source), 4 * MAX_ATTRIBUTES):
        name = match.group(1).lower()
        if name in seen or not _ATTRIBUTE_NAME.fullmatch(name):
            continue
        seen.add(name)
        value = next((v for v in match.groups()[1:] if v is not None), "")
        written.append(f' {name}="{value.replace(chr(0), "").replace(chr(34), "&quot;")}"')
        if len(written) == MAX_ATTRIBUTES:
            break
    return "".join(written)


def canonical(source: str) -> tuple[str, int]:
    """``source`` rewritten by ``_Canonical``, one pass, each character read once; and how
    much of ``source`` that is (all of it unless MAX_MARKUP was reached)."""
    writer = _Canonical()
    position = 0
    while writer.budget > 0:
        found = source.find("<", position)
        if found < 0:
            writer.text(source[position:])
            return writer.finish(), len(source)
        if found > position:
            writer.text(source[position:found])
        writer.budget -= 1
        position = _markup(source, found, writer)
    return writer.finish(), position


def _markup(source: str, position: int, writer: _Canonical) -> int:
    """Handle the markup at ``position`` (a "<"); returns where the text resumes."""
    ignored = _IGNORED.match(source, position)
    if ignored is not None:
        return ignored.end()
    tag = _TAG.match(source, position)
    if tag is None:
        writer.text("<")  # "<" not starting markup is text, as in HTML
        return position + 1
    if not tag.group(4):
        return len(source)  # the input ends inside a tag: HTML drops that tag
    name = tag.group(2).lower()
    if tag.group(1):
        writer.end(name)
    elif name in DROP_RAW or name in DROP_NESTED or name in _LITERAL:
        return _element_end(source, name, tag, writer)
    else:
        writer.start(name, tag.group(3))
    return tag.end()


def _element_end(source: str, name: str, tag: re.Match[str], writer: _Canonical) -> int:
    """Skip an element we drop with its content (writing it as text for the literal
    ones); returns the position after its end tag, or the end of the input."""
    if name in ("math", "svg") and tag.group(3).rstrip().endswith("/"):
        return tag.end()  # self-closing in foreign content: no content
    body = tag.end()
    depth, position, end = 1, body, len(source)
    while name != "plaintext" and (found := _END_OF[name].search(source, position)):
        inner = _TAG.match(source, found.start())
        if inner is None or not inner.group(4):
            break
        depth += -1 if found.group(1) else int(name in DROP_NESTED)
        position = inner.end()
        writer.budget -= 1
        if writer.budget <= 0:
            return position
        if depth == 0:
            end = found.start()
            break
    if name in _LITERAL:
        writer.text(source[body:end], decode=False)
    return position if depth == 0 else len(source)


# --- Layer 2: nh3 -----------------------------------------------------------------------
