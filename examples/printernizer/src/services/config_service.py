"""Its other settings class, the one ``create_application()`` binds to ``settings``."""

from __future__ import annotations

import os


class Settings:
    """The web server's settings: the environment and the allowed origins."""

    def __init__(self) -> None:
        self.environment = os.environ.get("ENVIRONMENT", "production")

    def get_cors_origins(self) -> list[str]:
        return ["http://localhost:8000"]
