from __future__ import annotations

import pytest
from _html_checks import C32_PAYLOADS, assert_inert, parse, visible_text

from maquina_nb.notebook.render import escape_text, render_markdown


@pytest.mark.parametrize(
    "payload", C32_PAYLOADS, ids=["img-onerror", "js-link", "break-out"]
)
def test_render_markdown_keeps_payload_as_inert_text(payload: str) -> None:
    html = render_markdown(f"Before {payload} after")

    assert_inert(html)
    assert visible_text(html).strip() == f"Before {payload} after"


def test_render_markdown_all_payloads_together() -> None:
    html = render_markdown("\n\n".join(C32_PAYLOADS))

    assert_inert(html)
    assert [tag for tag, _ in parse(html).tags] == ["p", "p", "p"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[x](JaVaScRiPt:alert(1))", id="mixed-case"),
        pytest.param("[x](&#106;avascript:alert(1))", id="entity"),
        pytest.param("[x](data:text/html;base64,PHNjcmlwdD4=)", id="data-url"),
        pytest.param("![x](javascript:alert(1))", id="image"),
        pytest.param("<javascript:alert(1)>", id="autolink"),
        pytest.param("<svg onload=alert(1)>", id="svg"),
        pytest.param("<a href='javascript:x'>a</a>", id="raw-anchor"),
    ],
)
def test_render_markdown_drops_script_urls(text: str) -> None:
    assert_inert(render_markdown(text))


def test_render_markdown_keeps_code_blocks_verbatim() -> None:
    text = '```python\nprint("<script>alert(1)</script>")\n```'

    html = render_markdown(text)

    assert html == (
        '<pre><code class="language-python">'
        'print("&lt;script&gt;alert(1)&lt;/script&gt;")\n</code></pre>\n'
    )


def test_render_markdown_keeps_ordinary_formatting() -> None:
    text = "# Title\n\n**bold** and *em* and `x < y`\n\n- a\n- b\n\n[site](https://example.org)"

    html = render_markdown(text)

    assert html == (
        "<h1>Title</h1>\n"
        "<p><strong>bold</strong> and <em>em</em> and <code>x &lt; y</code></p>\n"
        "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"
        '<p><a href="https://example.org" rel="noopener noreferrer nofollow">site</a></p>\n'
    )


def test_render_markdown_code_class_is_only_a_language_name() -> None:
    html = render_markdown("```mq-btn onclick=x\nx\n```")

    assert html == '<pre><code class="language-mq-btn">x\n</code></pre>\n'


def test_render_markdown_tables_keep_alignment_only() -> None:
    html = render_markdown("| a | b |\n|:-|-:|\n| 1 | 2 |")

    assert '<th style="text-align:left">a</th>' in html
    assert_inert(html)


@pytest.mark.parametrize("text", [None, ""])
def test_render_markdown_empty(text: str | None) -> None:
    assert render_markdown(text) == ""


def test_escape_text_escapes_quotes_and_tags() -> None:
    assert (
        escape_text("<b a=\"1\">'x'</b>")
        == "&lt;b a=&quot;1&quot;&gt;&#x27;x&#x27;&lt;/b&gt;"
    )


def test_render_markdown_turns_images_into_links_so_nothing_is_fetched() -> None:
    # An image would make the page (or an exported HTML file) fetch a URL the
    # model chose, with no click: a tracking pixel. A link fetches only on a click.
    html = render_markdown('![a chart](https://example.org/x.png "T") and <img src=y>')

    tags = parse(html).tags
    assert "img" not in [tag for tag, _ in tags]
    links = [dict(attrs) for tag, attrs in tags if tag == "a"]
    assert [link["href"] for link in links] == ["https://example.org/x.png"]
    assert "image: a chart" in visible_text(html)
    assert_inert(html)


def test_render_markdown_drops_an_image_with_a_script_url() -> None:
    html = render_markdown("![x](javascript:alert(1))")

    assert [tag for tag, _ in parse(html).tags] == ["p"]
    assert_inert(html)
