"""A report's Markdown as one self-contained HTML page, its PNG figures embedded.

MLflow's artifact viewer shows a Markdown file as text, so its `![](figure.png)` links show
nothing; it renders an `.html` artifact as a page. The report is written by `bench.sweep.summary`
in a small Markdown subset (headings, pipe tables, `- ` lists, paragraphs, images, `**bold**`
and `code` spans), which is all this converts.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)")
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}
img{max-width:100%;display:block;margin:1em 0}code{background:#f3f3f3}"""


def _span(text: str) -> str:
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _image(match: re.Match, folder: Path) -> str:
    path = folder / match["src"]
    if not path.is_file():
        return html.escape(match[0])
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(match["alt"])}" src="data:image/png;base64,{data}">'


def inline(text: str, folder: Path) -> str:
    """Escaped text with bold and code spans; images embedded as base64 data URIs."""
    out, position = [], 0
    for match in IMAGE.finditer(text):
        out += [_span(text[position : match.start()]), _image(match, folder)]
        position = match.end()
    out.append(_span(text[position:]))
    return "".join(out)


def _table(rows: list[str], folder: Path) -> str:
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    head, body = cells[0], [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    lines = ["<table><tr>" + "".join(f"<th>{inline(c, folder)}</th>" for c in head) + "</tr>"]
    lines += ["<tr>" + "".join(f"<td>{inline(c, folder)}</td>" for c in r) + "</tr>" for r in body]
    return "".join(lines) + "</table>"


def _blocks(markdown: str) -> list[list[str]]:
    """Runs of lines of one kind: a blank line or a change of kind ends a block."""
    blocks: list[list[str]] = []
    kind = None
    for line in markdown.splitlines():
        this = "table" if line.startswith("|") else "list" if line.startswith("- ") else "text"
        if not line.strip():
            kind = None
            continue
        if line.startswith("#") or this != kind:
            blocks.append([])
        blocks[-1].append(line)
        kind = None if line.startswith("#") else this
    return blocks


def to_html(markdown: str, folder: Path, title: str) -> str:
    """The page for `markdown`, whose images are files in `folder`."""
    body = []
    for block in _blocks(markdown):
        first = block[0]
        if first.startswith("#"):
            level = min(len(first) - len(first.lstrip("#")), 6)
            body.append(f"<h{level}>{inline(first.lstrip('#').strip(), folder)}</h{level}>")
        elif first.startswith("|"):
            body.append(_table(block, folder))
        elif first.startswith("- "):
            items = "".join(f"<li>{inline(line[2:], folder)}</li>" for line in block)
            body.append(f"<ul>{items}</ul>")
        else:
            body.append(f"<p>{inline(' '.join(block), folder)}</p>")
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
