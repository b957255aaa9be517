"""The tools' check of the files they were given, before any work starts."""
from __future__ import annotations

from pathlib import Path


def require_files(tool: str, *paths: Path | None) -> None:
    """Stops `tool` with "TOOL: PATH does not exist" at the first of `paths` that is not a file
    (None, an option not given, is skipped), rather than a traceback half-way through its work."""
    for path in paths:
        if path is not None and not Path(path).is_file():
            raise SystemExit(f"{tool}: {path} does not exist")
