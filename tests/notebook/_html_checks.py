"""Assertions that an HTML string cannot run script (C32), shared by the notebook tests."""

from __future__ import annotations

from html.parser import HTMLParser

# What a model might use to run script, once parsed as live HTML.
_ACTIVE_TAGS = {
    "script",
    "iframe",
    "object",
    "embed",
    "style",
    "link",
    "meta",
    "base",
    "form",
    "svg",
    "math",
}
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset"}

C32_PAYLOADS = (
    '<img src=x onerror="window.__pwned=1">',
    "[click](javascript:window.__pwned=2)",
    "</td></tr></table><script>window.__pwned=3</script>",
)


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _TagCollector:
    collector = _TagCollector()
    collector.feed(html)
    collector.close()
    return collector


def assert_inert(html: str) -> None:
    """Fail if ``html`` holds a script-capable tag, an on* handler or a script URL."""
    lowered = html.lower()
    assert "<script" not in lowered, html
    for tag, attrs in parse(html).tags:
        assert tag not in _ACTIVE_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.lower().startswith("on"), (tag, name, html)
            if name.lower() in _URL_ATTRIBUTES and value:
                squashed = "".join(value.split()).lower()
                assert not squashed.startswith(("javascript:", "vbscript:", "data:")), (
                    tag,
                    name,
                    value,
                )


def visible_text(html: str) -> str:
    return "".join(parse(html).text)
