"""Turn untrusted model text into HTML that is safe to put in the page.

Model output is untrusted (DESIGN.md decision 4). :func:`render_markdown` parses it
as CommonMark with raw HTML disabled, so ``<script>`` or ``<img onerror=…>`` in an
answer become visible text, and then runs the result through the ``nh3``
sanitizer with a short allow-list of tags, attributes and URL schemes. Both steps
stand on their own: the sanitizer would still strip script, event handlers and
``javascript:`` links if the parser let one through.

:func:`escape_text` is the plain-text twin for places that show text verbatim.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = ["escape_text", "render_markdown"]

_TAGS = frozenset(
    {
        "a",
        "p",
        "br",
        "hr",
        "em",
        "strong",
        "del",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
    "code": {"class"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_STYLE_PROPERTIES = frozenset({"text-align"})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # markdown-it-py is imported on first use so `%load_ext maquina_nb` stays fast.
    from markdown_it import MarkdownIt

    parser = (
        MarkdownIt("commonmark", {"html": False, "linkify": False})
        .enable("table")
        .enable("strikethrough")
    )
    parser.add_render_rule("image", _image_as_link)
    return parser


def _image_as_link(
    renderer: Any, tokens: Any, index: int, options: Any, env: Any
) -> str:
    # An <img> would be fetched, without a click, from a URL the model chose (a
    # tracking pixel, in the page and in an exported file); a link waits for one.
    token = tokens[index]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    label = escape_text(f"image: {alt}" if alt else "image")
    src = escape_text(str(token.attrGet("src") or ""))
    return f'<a href="{src}">[{label}]</a>'


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # Code blocks keep their `language-xxx` class (for highlighting by CSS); no other
    # class may reach the page, so model text cannot borrow the widget's own styles.
    if tag == "code" and attribute == "class":
        names = [name for name in value.split() if name.startswith("language-")]
        return " ".join(names) or None
    return value


def render_markdown(text: str | None) -> str:
    """Render model text as Markdown with raw HTML disabled, then sanitize it.

    Code blocks, tables, lists, emphasis and ``http(s)``/``mailto`` links survive;
    raw HTML shows up as text, and no script, event-handler attribute, style
    sheet or ``javascript:`` URL can come out.

    Args:
        text: The untrusted text (``None`` renders as an empty string).

    Returns:
        An HTML fragment safe to assign to ``innerHTML``.
    """
    if not text:
        return ""

    import nh3

    rendered = _parser().render(text)
    return nh3.clean(
        rendered,
        tags=set(_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        attribute_filter=_keep_attribute,
        url_schemes=set(_URL_SCHEMES),
        filter_style_properties=set(_STYLE_PROPERTIES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def escape_text(text: str | None) -> str:
    """Escape text for HTML, quotes included, so it shows verbatim."""
    return html.escape(text or "", quote=True)
