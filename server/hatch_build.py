"""Builds the server's distribution from the checkout's top-level folders.

The server's project lives in `server/`, but its packages are the checkout's `ingest/`,
`dashboards/` and `demo/`: built from the checkout, they are brought in here; an sdist carries
them at its root, so a wheel built from it finds them there. Its version is the client's, and it
depends on the client of exactly that version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

# The server's packages: top-level folders of the checkout.
PACKAGES = ("ingest", "dashboards", "demo")
CLIENT = "otel-usage"


class ServerMetadataHook(MetadataHookInterface):
    """The dependencies: the client at this very version first, then the configured ones."""

    def update(self, metadata: dict[str, Any]) -> None:
        metadata["dependencies"] = [f"{CLIENT}=={metadata['version']}",
                                    *self.config.get("dependencies", [])]


class ServerBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Brings the checkout's folders into the sdist and the wheel (not into an editable
    install, which imports them where they are)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        for name in PACKAGES:
            if not (root / name).exists():
                build_data["force_include"][str(root.parent / name)] = name
