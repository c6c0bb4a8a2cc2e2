"""Issue text in each tracker's markup: what people typed shows as typed, whatever characters it holds."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from connectors.markup import Bullets, Document, Link, Mention, Strong, paragraph, to_jira_wiki, to_markdown
from tests.fakes import wiki

# GitHub's flavour: CommonMark plus tables and strikethrough (markdown-it is a dependency of the reports already).
GFM = MarkdownIt("commonmark").enable(["table", "strikethrough"])
MARKUP_HEAVY = st.text(alphabet=st.sampled_from(list("ab1 _*#-+=.!|<>[](){}~`$&@?^\\/\n:;'\"")), max_size=60)


def _rendered_text(markdown: str) -> str:
    """The text a reader sees: HTML from GitHub-like rendering, tags stripped, entities decoded."""
    text = html.unescape(re.sub(r"<[^>]+>", "", GFM.render(markdown)))
    return text.replace("\u2060", "")


def _words(text: str) -> str:
    return " ".join(text.split())


@settings(max_examples=300, deadline=None)
@given(MARKUP_HEAVY)
def test_markdown_shows_typed_text_as_typed(typed: str) -> None:
    rendered = GFM.render(to_markdown(Document.of(paragraph(typed))))
    assert "<h" not in rendered and "<li>" not in rendered and "<a " not in rendered and "<em>" not in rendered
    assert "<strong>" not in rendered and "<code>" not in rendered and "<table>" not in rendered
    assert _words(_rendered_text(to_markdown(Document.of(paragraph(typed))))) == _words(typed)


def test_markdown_keeps_its_own_structure() -> None:
    doc = Document.of(
        paragraph("Pool too *small*"),
        Bullets(((Strong("Owner:"), " alice"), (Strong("Finding:"), " ", Link("PM-1 [x]", "http://h/p 1#finding-2")))),
    )
    rendered = GFM.render(to_markdown(doc))
    assert "<strong>Owner:</strong> alice" in rendered
    assert '<a href="http://h/p%201#finding-2">PM-1 [x]</a>' in rendered
    assert "Pool too *small*" in html.unescape(rendered)


def test_a_github_mention_pings_only_when_aftermath_means_it() -> None:
    text = to_markdown(Document.of(paragraph("ask @acme/sre or bob@example.com; ", Mention("alice", "Alice"))))
    assert re.findall(r"(?<![\w\u2060.])@([A-Za-z0-9][\w/-]*)", text) == ["alice"]
    assert "bob@example.com" in text  # an e-mail address stays intact
    assert to_markdown(Document.of(paragraph(Mention(None, "Carol <carol@example.com>")))) == (
        "Carol \\<carol@example.com\\>"
    )


def test_jira_wiki_escapes_typed_markup_and_writes_its_own() -> None:
    doc = Document.of(
        paragraph("Use {code} and [x|y] *now* ??maybe?? -gone- +u+ ^s^ ~t~ !img.png!"),
        paragraph("# not a list\nh1. not a heading\nbq. not a quote\n---- not a rule"),
        Bullets(((Strong("Due:"), " 2030-03-15 max_connections"), (Link("PM-1 a|b", "http://h/x]y"),))),
    )
    wiki = to_jira_wiki(doc, cloud=True)
    assert (
        "Use \\{code\\} and \\[x\\|y\\] \\*now\\* \\?\\?maybe\\?\\? \\-gone- \\+u+ \\^s\\^ \\~t\\~ \\!img.png\\!"
        in wiki
    )
    assert "\\# not a list\nh1\\. not a heading\nbq\\. not a quote\n\\-\\-\\-\\- not a rule" in wiki
    assert "* *Due:* 2030-03-15 max_connections" in wiki  # dates and identifiers stay searchable
    assert "* [PM-1 a\\|b|http://h/x%5Dy]" in wiki
    assert "**" not in wiki and "](" not in wiki  # nothing of Markdown


def test_jira_mentions_by_account_id_on_cloud_and_by_name_on_server() -> None:
    doc = Document.of(paragraph(Mention("5b10ac8d82e05b22cc7d4ef5", "Alice"), " and ", Mention(None, "bob [x]")))
    assert to_jira_wiki(doc, cloud=True) == "[~accountid:5b10ac8d82e05b22cc7d4ef5] and bob \\[x\\]"
    assert to_jira_wiki(doc, cloud=False) == "[~5b10ac8d82e05b22cc7d4ef5] and bob \\[x\\]"


@settings(max_examples=300, deadline=None)
@given(MARKUP_HEAVY)
def test_jira_wiki_shows_typed_text_as_typed(typed: str) -> None:
    rendered = wiki.render(to_jira_wiki(Document.of(paragraph(typed)), cloud=True))
    tags = set(re.findall(r"</?([a-z0-9]+)", rendered))
    assert tags <= {"p", "br"}, rendered
    seen = html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br)[^>]+>", " ", rendered)))
    assert _words(seen.replace("\u2060", "")) == _words(typed)


def test_the_wiki_renderer_reads_jiras_markup() -> None:
    """The fake's renderer is what the Jira tests judge text by: check it against the notation's documented forms."""
    assert wiki.render("*bold* _em_ -gone- [PM-1|http://h/x] [~accountid:5b10]") == (
        '<p><b>bold</b> <em>em</em> <del>gone</del> <a href="http://h/x">PM-1</a> <a class="user-hover">@5b10</a></p>'
    )
    assert wiki.render("* one\n* two\n\nh2. Title\n----") == "<ul><li>one</li><li>two</li></ul><h2>Title</h2><hr>"
    assert wiki.render("2030-03-15 max_connections a*b") == "<p>2030-03-15 max_connections a*b</p>"
    assert wiki.render("**Owner:** [x](y)") != "<p>Owner: x</p>"  # Markdown is not wiki markup
