"""Issue and comment text as a small document (paragraphs, bullet lists, bold labels, links, mentions) that each
tracker writes in its own markup: GitHub Markdown, Jira wiki markup (REST v2).

Everything people typed is a plain string in the document and is escaped for the target markup, so a description
holding `{code}`, `[x|y]`, `*`, `<!--` or `@team` shows as typed: it neither breaks the rendering nor pings anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Mention:
    """A person, mentioned the tracker's way when `handle` (GitHub login, Jira account id or user name) is known,
    else named in plain text by `name`."""

    handle: str | None
    name: str


Inline = str | Strong | Link | Mention


@dataclass(frozen=True)
class Paragraph:
    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Inline, ...], ...]


Block = Paragraph | Bullets


@dataclass(frozen=True)
class Document:
    blocks: tuple[Block, ...]

    @classmethod
    def of(cls, *blocks: Block | None) -> Document:
        return cls(tuple(b for b in blocks if b is not None))

    def plain(self) -> str:
        """The text without markup, for logs and for trackers that take plain text."""
        return "\n\n".join(_plain_block(b) for b in self.blocks)


def paragraph(*parts: Inline | None) -> Paragraph:
    return Paragraph(tuple(p for p in parts if p is not None and p != ""))


# -- GitHub Markdown -----------------------------------------------------------------------------------------------
# Escaped everywhere: emphasis, code, links and images, HTML and entities, tables, strikethrough, math.
_MD_ALWAYS = re.compile(r"([\\`*\[\]<>|~&$])")
# An underscore inside a word (max_connections) is no emphasis in GitHub's Markdown: left as typed, it stays readable
# and searchable.
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# At a line start: headings, list items, quotes, setext underlines, ordered list numbers.
_MD_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+(?=[.)]))", re.MULTILINE)
# GitHub turns @name into a mention (and notifies a whole team for @org/team) even when escaped, because it looks at
# the rendered text: a word joiner after the @ keeps the text as typed and pings nobody.
_AT = re.compile(r"(?<![\w.])@(?=[A-Za-z0-9])")
_WORD_JOINER = "\u2060"


def markdown_text(text: str) -> str:
    escaped = _MD_UNDERSCORE.sub(r"\\_", _MD_ALWAYS.sub(r"\\\1", text))
    escaped = _MD_LINE_START.sub(lambda m: m[1] + (m[2] + "\\" if m[2][0].isdigit() else "\\" + m[2]), escaped)
    return _AT.sub("@" + _WORD_JOINER, escaped)


def _markdown_url(url: str) -> str:
    # Inside (...) a space, a parenthesis or an angle bracket would end the link early.
    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")


def _markdown_inline(part: Inline) -> str:
    match part:
        case Strong(text):
            return f"**{markdown_text(text)}**"
        case Link(text, url):
            return f"[{markdown_text(text)}]({_markdown_url(url)})"
        case Mention(handle, name):
            return f"@{handle}" if handle else markdown_text(name)
        case str():
            return markdown_text(part)


def to_markdown(document: Document) -> str:
    blocks = []
    for block in document.blocks:
        match block:
            case Paragraph(parts):
                blocks.append("".join(_markdown_inline(p) for p in parts))
            case Bullets(items):
                blocks.append("\n".join("- " + "".join(_markdown_inline(p) for p in item) for item in items))
    return "\n\n".join(b for b in blocks if b)


# -- Jira wiki markup (REST v2) --------------------------------------------------------------------------------------
# Escaped everywhere: bold, macros ({code}, {color}), links and mentions, tables, images, super- and subscript.
_WIKI_ALWAYS = re.compile(r"([*{}\[\]|!^~])")
# Strikethrough, emphasis and underline need a marker that does not follow a letter or digit: 2030-03-15 and
# max_connections stay as typed (readable, and findable by Jira's text search).
_WIKI_OPENER = re.compile(r"(?<![A-Za-z0-9])([-_+])")
_WIKI_CITATION = re.compile(r"\?\?")
# At a line start: numbered lists, headings and quotes.
_WIKI_LINE_START = re.compile(r"^(\s*)(#|(?:h[1-6]|bq)(?=\.))", re.MULTILINE)


# A typed backslash cannot be escaped (`\\\\` is Jira's forced line break); before a character it would escape, a word
# joiner keeps it a visible backslash.
_WIKI_BACKSLASH = re.compile(r"\\(?=[\\*_+^~{}\[\]|!?#-]|$)")


def wiki_text(text: str) -> str:
    text = _WIKI_BACKSLASH.sub("\\\\" + _WORD_JOINER, text)
    escaped = _WIKI_OPENER.sub(r"\\\1", _WIKI_ALWAYS.sub(r"\\\1", text))
    escaped = _WIKI_CITATION.sub(r"\\?\\?", escaped)
    return _WIKI_LINE_START.sub(lambda m: m[1] + ("\\#" if m[2] == "#" else m[2] + "\\"), escaped)


def _wiki_url(url: str) -> str:
    # A | or ] would end the link; a space is not allowed in it.
    return quote(url, safe=":/?#@!$&'()*+,;=%~-._")


def _wiki_inline(part: Inline, *, cloud: bool) -> str:
    match part:
        case Strong(text):
            return f"*{wiki_text(text)}*"
        case Link(text, url):
            return f"[{wiki_text(text)}|{_wiki_url(url)}]"
        case Mention(handle, name):
            if not handle:
                return wiki_text(name)
            return f"[~accountid:{handle}]" if cloud else f"[~{handle}]"
        case str():
            return wiki_text(part)


def to_jira_wiki(document: Document, *, cloud: bool) -> str:
    blocks = []
    for block in document.blocks:
        match block:
            case Paragraph(parts):
                blocks.append("".join(_wiki_inline(p, cloud=cloud) for p in parts))
            case Bullets(items):
                blocks.append("\n".join("* " + "".join(_wiki_inline(p, cloud=cloud) for p in item) for item in items))
    return "\n\n".join(b for b in blocks if b)


# -- plain text ------------------------------------------------------------------------------------------------------
def _plain_inline(part: Inline) -> str:
    match part:
        case Strong(text):
            return text
        case Link(text, url):
            return text if text == url else f"{text} ({url})"
        case Mention(_, name):
            return name
        case str():
            return part


def _plain_block(block: Block) -> str:
    match block:
        case Paragraph(parts):
            return "".join(_plain_inline(p) for p in parts)
        case Bullets(items):
            return "\n".join("- " + "".join(_plain_inline(p) for p in item) for item in items)
