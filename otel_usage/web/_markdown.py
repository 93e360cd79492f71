"""The privacy policy's Markdown as HTML, for the page.

Only the subset :mod:`otel_usage.user.privacy` writes: headings, paragraphs, bullet lists, pipe
tables, ``code``, **bold** and HTML comments (dropped). Everything is escaped first, so catalog
text can never become markup.
"""

from __future__ import annotations

import html
import re

__all__ = ["markdown_to_html"]

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def markdown_to_html(text: str) -> str:
    """HTML for the Markdown subset of the generated policy; headings drop one level (h2..)."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if block.startswith("<!--") or block == "---":
            continue
        if block.startswith("#"):
            level, _, title = block.partition(" ")
            tag = f"h{min(len(level) + 1, 6)}"
            out.append(f"<{tag}>{_inline(title)}</{tag}>")
        elif all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        elif all(line.startswith("|") for line in lines):
            out.append(_table(lines))
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escaped)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", escaped)


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(line.strip())[1:-1]]


def _table(lines: list[str]) -> str:
    head = "".join(f'<th scope="col">{_inline(c)}</th>' for c in _cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(line)) + "</tr>"
        for line in lines[2:]
    )
    return (f'<div class="table-scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")
