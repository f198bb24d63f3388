"""A report's Markdown as one self-contained HTML page, its PNG figures embedded.

MLflow's artifact viewer shows a Markdown file as text, so its `![](figure.png)` links show
nothing; it renders an `.html` artifact as a page. markdown-it-py (CommonMark with pipe
tables, raw HTML escaped) renders the page; only the images are this module's own: a figure
in the report's folder becomes a base64 data URI, a missing one stays visible as text.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}
img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3}"""


def _embedded_image(renderer, tokens, idx, options, env) -> str:
    """An image rule for markdown-it: the file under env["folder"] as a data URI."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    path = env["folder"] / src
    if not path.is_file():
        return html.escape(f"![{alt}]({src})")
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _parser() -> MarkdownIt:
    """CommonMark with pipe tables; raw HTML in the text is escaped, not passed through."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    parser.add_render_rule("image", _embedded_image)
    return parser


def to_html(markdown: str, folder: Path, title: str) -> str:
    """The page for `markdown`, whose images are files in `folder`."""
    body = _parser().render(markdown, {"folder": folder})
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n"
    )
