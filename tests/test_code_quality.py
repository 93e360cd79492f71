"""The code stays typed (mypy strict on the client and the dashboards) and lint-clean (ruff), and
no tracked text speaks of what an outsider does not have."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_finds_nothing() -> None:
    done = subprocess.run([BIN / "ruff", "check", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "All checks passed!")


def test_mypy_strict_finds_nothing(tmp_path: Path) -> None:
    done = subprocess.run([BIN / "mypy", "--cache-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("Success: no issues found")


# Words that point at what a reader of the repository does not have, each with what it means.
# Case is ignored. A random generator's seed ("a seed", "seed=7", "--seed") and an issue of
# Printernizer's own ("look for an issue about that error type") are fine; an upstream bug is
# cited by its address (https://github.com/libuv/libuv/pull/3696), which matches nothing here.
# This file is not scanned: its test of the patterns holds one example of each.
INTERNAL_WORDS = {
    r"\bissues?\s*#?\d+": "a ticket number: say what was decided, or why",
    r"\b(?:pull request|PR|ticket)\s*#?\d+": "a ticket number: say what was decided, or why",
    r"\bthe (?:[\w-]+ )?(?:issue|ticket|brief)\b": "a ticket: say what it asked for",
    r"\b(?:the|our) seed\b|\bseed's\b": "the first plan of the project: say what it asked for",
    r"\bthe plan(?:'s)?\b": "a plan the reader does not have: say what it asks",
    r"\bthis session\b|\b(?:previous|earlier|last|next|other) sessions?\b":
        "the work that made the change: say what the change does",
    r"\b(?:DESIGN|STYLE)\.md\b|printernizer-note[s]\b|\.\./shared/":
        "a document outside the repository: say what it says",
    r"\breview[e]rs?\b|\bLGT[M]\b|\bdone\s+when\b|\bacceptance\s+criteria\b":
        "review talk: say what holds",
}


def internal_words(lines: list[str]) -> list[tuple[int, str, str]]:
    """(line number, the words, what to say instead) for each match in `lines`."""
    found = []
    for number, line in enumerate(lines, 1):
        for pattern, instead in INTERNAL_WORDS.items():
            for match in re.finditer(pattern, line, re.IGNORECASE):
                found.append((number, match.group(0), instead))
    return found


def test_internal_words_finds_each_kind_and_leaves_ordinary_words_alone() -> None:
    lines = ["Fixed in issue 27 (see PR 3).", "As the consent issue says;", "the seed's targets",
             "The plan's budget", "made in this session", "(DESIGN.md, overhead)",
             "drawn from a seed (seed=7)", "look for an issue about that error type",
             "https://github.com/libuv/libuv/pull/3696", "the session it sends with"]
    assert [(number, words) for number, words, _ in internal_words(lines)] == [
        (1, "issue 27"), (1, "PR 3"), (2, "the consent issue"), (3, "the seed"),
        (4, "The plan's"), (5, "this session"), (6, "DESIGN.md")]


def test_no_tracked_text_uses_words_an_outsider_cannot_follow() -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    found = []
    for name in listed:
        path = ROOT / name
        if not path.is_file() or path == Path(__file__).resolve():
            continue
        data = path.read_bytes()
        if b"\0" in data:  # not text
            continue
        for number, words, instead in internal_words(data.decode("utf-8", "replace").splitlines()):
            found.append(f"{name}:{number}: {words!r} ({instead})")
    assert found == []
