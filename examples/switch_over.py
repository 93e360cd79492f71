"""The README's switch-over guide, applied to a copy of the Printernizer stand-in.

    python -m examples.switch_over /tmp/printernizer    # the stand-in, switched over, there
    cd /tmp/printernizer && DATABASE_PATH=/tmp/printernizer/data/printernizer.db \\
        uvicorn src.main:app

The guide's ``diff`` and ``sh`` blocks (README.md, "Switching Printernizer over") are read and
applied in order, exactly as written: a diff block names its file (``--- a/PATH``); its hunks,
separated by ``@@ ... @@`` lines, replace their ``-`` and context lines, which must occur once
in the file, by their ``+`` and context lines; an ``sh`` block's ``git rm PATH...`` deletes and
``cp ../otel-usage/SOURCE DEST`` copies from this repository. Anything else is an error, so the
guide cannot say what this does not do.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
STANDIN = Path(__file__).resolve().parent / "printernizer"
SECTION = "## Switching Printernizer over"
CHECKOUT = "../otel-usage/"  # this repository, checked out beside Printernizer's
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>diff|sh)$")


class GuideError(Exception):
    """A block of the guide that does not apply."""


@dataclass(frozen=True)
class Block:
    lang: str  # "diff" or "sh"
    lines: tuple[str, ...]


def guide_blocks(readme: str) -> list[Block]:
    """The diff and sh blocks of the guide's section, their indentation removed."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    lines = readme[start:end if end >= 0 else None].splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        i += 1
        if fence is None:
            continue
        indent, body = len(fence["indent"]), []
        while lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        blocks.append(Block(fence["lang"], tuple(body)))
        i += 1
    return blocks


def apply_guide(target: Path, readme: str | None = None) -> None:
    """Apply every block of the guide to the tree at `target`."""
    for block in guide_blocks(readme if readme is not None else README.read_text("utf-8")):
        if block.lang == "diff":
            apply_diff(target, block.lines)
        else:
            run_sh(target, block.lines)


def apply_diff(target: Path, lines: tuple[str, ...]) -> None:
    if not (lines[0].startswith("--- a/") and lines[1].startswith("+++ b/")):
        raise GuideError(f"a diff block without its file: {lines[0]!r}")
    path = target / lines[0].removeprefix("--- a/")
    text = path.read_text("utf-8")
    hunks: list[list[str]] = []
    for line in lines[2:]:
        if line.startswith("@@"):
            hunks.append([])
        elif not hunks:
            raise GuideError(f"{path.name}: a line before the first @@: {line!r}")
        else:
            hunks[-1].append(line if line else " ")
    for hunk in hunks:
        text = _apply_hunk(path.name, text, hunk)
    path.write_text(text, "utf-8")


def _apply_hunk(name: str, text: str, hunk: list[str]) -> str:
    if any(line[0] not in " +-" for line in hunk):
        raise GuideError(f"{name}: a hunk line is not context, + or -: {hunk}")
    old = "".join(line[1:] + "\n" for line in hunk if line[0] in " -")
    new = "".join(line[1:] + "\n" for line in hunk if line[0] in " +")
    if not old.strip():
        raise GuideError(f"{name}: a hunk with nothing to find: {hunk}")
    found = text.count(old)
    if found != 1:
        raise GuideError(f"{name}: a hunk's lines occur {found} times, not once:\n{old}")
    return text.replace(old, new)


def run_sh(target: Path, lines: tuple[str, ...]) -> None:
    for command in "\n".join(lines).replace("\\\n", " ").splitlines():
        words = shlex.split(command)
        if words[:2] == ["git", "rm"]:
            for path in words[2:]:
                (target / path).unlink()  # a path that does not exist is the guide's error
        elif words[:1] == ["cp"] and len(words) == 3 and words[1].startswith(CHECKOUT):
            destination = target / words[2]
            if words[2].endswith("/"):
                destination /= Path(words[1]).name
            shutil.copyfile(ROOT / words[1].removeprefix(CHECKOUT), destination)
        else:
            raise GuideError(f"a command the guide may not use: {command!r}")


def switched_over(target: Path) -> Path:
    """A copy of the stand-in at `target`, with the guide applied."""
    shutil.copytree(STANDIN, target, ignore=shutil.ignore_patterns("__pycache__"))
    apply_guide(target)
    return target


if __name__ == "__main__":
    print(switched_over(Path(sys.argv[1])))
