"""Jira wiki markup rendered to HTML the way Jira's renderer reads it, for the fake Jira's `rendered` view.

Covers Jira's text-formatting notation as documented (jira.atlassian.com/secure/WikiRendererHelpAction.jspa): headings,
quotes, lists, rules, {code}/{noformat}/{quote} blocks, effects (*strong* _emphasis_ -deleted- +inserted+ ^sup^ ~sub~
??citation?? {{monospace}}), links [text|url], mentions [~accountid:…], images !file!, forced breaks \\\\ and
backslash escapes. Effects need their opening mark where a word cannot continue (Jira's rule), so 2030-03-15 and
max_connections stay text.
"""

from __future__ import annotations

import html
import re

_EFFECTS = [("*", "b"), ("_", "em"), ("-", "del"), ("+", "ins"), ("^", "sup"), ("~", "sub")]
_SPECIAL = set("*_-+^~?{}[]|!#\\")


def render(text: str) -> str:
    blocks: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        macro = re.fullmatch(r"\s*\{(code|noformat|quote)(?::[^}]*)?\}\s*", line)
        if macro:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("{" + macro[1])), len(lines))
            inner = html.escape("\n".join(lines[i + 1 : end]))
            blocks.append(f"<blockquote>{inner}</blockquote>" if macro[1] == "quote" else f"<pre>{inner}</pre>")
            i = end + 1
            continue
        if not line.strip():
            i += 1
            continue
        if re.fullmatch(r"\s*-{4,}\s*", line):
            blocks.append("<hr>")
            i += 1
            continue
        if m := re.match(r"\s*h([1-6])\.\s(.*)", line):
            blocks.append(f"<h{m[1]}>{_inline(m[2])}</h{m[1]}>")
            i += 1
            continue
        if m := re.match(r"\s*bq\.\s(.*)", line):
            blocks.append(f"<blockquote>{_inline(m[1])}</blockquote>")
            i += 1
            continue
        if re.match(r"\s*([*#-])+\s", line):
            items = []
            ordered = line.lstrip().startswith("#")
            while i < len(lines) and (m := re.match(r"\s*[*#-]+\s(.*)", lines[i])):
                items.append(f"<li>{_inline(m[1])}</li>")
                i += 1
            tag = "ol" if ordered else "ul"
            blocks.append(f"<{tag}>{''.join(items)}</{tag}>")
            continue
        paragraph = []
        while (
            i < len(lines) and lines[i].strip() and not re.match(r"\s*([*#-]+\s|h[1-6]\.\s|bq\.\s|-{4,}|\{)", lines[i])
        ):
            paragraph.append(_inline(lines[i]))
            i += 1
        if not paragraph:  # a line that looked like a block start but is not one: take it as text
            paragraph.append(_inline(lines[i]))
            i += 1
        blocks.append(f"<p>{'<br>'.join(paragraph)}</p>")
    return "".join(blocks)


def _inline(text: str) -> str:
    """One line: escapes first (a backslash takes the next special character literally), then links and effects."""
    out: list[str] = []
    i = 0
    tokens: list[tuple[str, str]] = []  # ("lit", text) for escaped characters, ("raw", text) for markup to read
    buf = ""
    while i < len(text):
        if text.startswith("\\\\", i):
            tokens += [("raw", buf), ("br", "")]
            buf, i = "", i + 2
        elif text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _SPECIAL:
            tokens += [("raw", buf), ("lit", text[i + 1])]
            buf, i = "", i + 2
        else:
            buf += text[i]
            i += 1
    tokens.append(("raw", buf))
    for kind, value in tokens:
        if kind == "raw":
            out.append(_markup(value))
        elif kind == "lit":
            out.append(html.escape(value))
        else:
            out.append("<br>")
    return "".join(out)


def _markup(text: str) -> str:
    def link(m: re.Match[str]) -> str:
        body = m[1]
        if body.startswith("~"):
            return f'<a class="user-hover">@{html.escape(body[1:].removeprefix("accountid:"))}</a>'
        label, _, url = body.rpartition("|") if "|" in body else (body, "", body)
        return f'<a href="{html.escape(url)}">{html.escape(label)}</a>'

    parts = re.split(r"(\[[^\[\]]+\])", text)
    rendered = []
    for n, part in enumerate(parts):
        if n % 2:
            rendered.append(link(re.match(r"\[(.+)\]", part)))  # type: ignore[arg-type]
            continue
        escaped = html.escape(part, quote=False)
        escaped = re.sub(r"!([^!\s][^!]*)!", r'<img src="\1">', escaped)
        escaped = re.sub(r"\{\{(.+?)\}\}", r"<code>\1</code>", escaped)
        escaped = re.sub(r"(?<![\w?])\?\?(\S(?:.*?\S)?)\?\?(?![\w?])", r"<cite>\1</cite>", escaped)
        for mark, tag in _EFFECTS:
            m = re.escape(mark)
            escaped = re.sub(rf"(?<![\w{m}]){m}(\S(?:[^{m}]*?\S)?){m}(?![\w{m}])", rf"<{tag}>\1</{tag}>", escaped)
        rendered.append(escaped)
    return "".join(rendered)
