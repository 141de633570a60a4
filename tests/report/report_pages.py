"""Reading a report page back in tests: its tags, embedded images, links and text."""
from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """What a test needs to know about a page: tags, image sources, links, sections, text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.sections: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        if "href" in a:
            self.hrefs.append(a["href"] or "")
        if tag == "section":
            self.sections.append(a.get("id") or "")

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def check_page(path) -> Page:
    """The structure every report has: one file, images embedded, nothing fetched, no broken section."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    page = Page(text)
    assert page.srcs and all(s.startswith("data:image/") for s in page.srcs), "every image is embedded"
    assert all(h.startswith("#") for h in page.hrefs), "links stay inside the page"
    assert "http://" not in text and "https://" not in text, "nothing is fetched when the page opens"
    assert "could not be drawn" not in text and "could not be read back" not in text
    assert "{&#x27;kind&#x27;:" not in text, "a dict printed where a sentence belongs"
    assert page.tags.get("table", 0) >= 1 and "Settings that made this result" in page.all_text
    return page


def image_sizes(page: Page) -> list[tuple[int, int]]:
    """(width, height) in pixels of every embedded image."""
    import base64
    import io

    from PIL import Image

    return [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).size for s in page.srcs]
