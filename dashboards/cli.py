"""`otel-usage-dashboards`: build the dashboards JSON and provisioning files, or check them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-usage-dashboards", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the provisioning tree (dashboards JSON, "
                                              "data sources, provider, alert rules)")
    build.add_argument("--out", type=Path, default=None,
                       help="directory to write to (default: dashboards/provisioning)")
    commands.add_parser("check", help="exit 1 if the committed files are stale")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from . import _provisioning

    args = _parser().parse_args(argv)
    if args.command == "build":
        for path in _provisioning.write(args.out or _provisioning.PROVISIONING_DIR):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    stale = stale_files(_provisioning.PROVISIONING_DIR)
    for relative in stale:
        sys.stdout.write(f"stale: {relative}\n")
    return 1 if stale else 0


def stale_files(directory: Path) -> list[str]:
    """Generated files that differ from, or are missing in, `directory`."""
    from . import _provisioning

    expected = _provisioning.files()
    present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    stale = [r for r, text in expected.items()
             if not (directory / r).is_file() or (directory / r).read_text("utf-8") != text]
    return sorted(stale + sorted(present - set(expected)))


if __name__ == "__main__":
    sys.exit(main())
