"""The audit store's spool: each AuditEvent a 0600 file in a directory, from the moment it is recorded until the
store has it, so none is lost while the store is down or across a restart."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

from service.audit.file_sink import open_private

SUFFIX = ".json"
REJECTED = "rejected"
"""Sub-directory of events the store refused (kept for a person to look at; never sent again)."""


class Spool:
    """Events waiting for the audit store, oldest first (file names sort by the time they were spooled)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)

    def put(self, event: dict[str, Any]) -> None:
        """Spool one event: written to a temporary name, then renamed, so a reader never sees half of one."""
        name = f"{time.time_ns():020d}-{event['id']}"
        temporary = self.directory / f".{name}.tmp"
        fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            os.write(fd, orjson.dumps(event))
        finally:
            os.close(fd)
        os.replace(temporary, self.directory / f"{name}{SUFFIX}")

    def oldest(self, limit: int) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX) and p.is_file())[:limit]

    def pending(self) -> int:
        return sum(1 for p in self.directory.iterdir() if p.name.endswith(SUFFIX))

    def read(self, paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
        """The events of `paths` that are still there (another worker may have sent some); a file that is not an
        event (damaged) is set aside rather than blocking the spool."""
        events = []
        for path in paths:
            try:
                events.append((path, orjson.loads(path.read_bytes())))
            except FileNotFoundError:
                continue
            except orjson.JSONDecodeError:
                self.set_aside([path])
        return events

    @staticmethod
    def done(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def set_aside(self, paths: list[Path]) -> None:
        """Move refused events under `rejected/`."""
        aside = self.directory / REJECTED
        aside.mkdir(exist_ok=True, mode=0o700)
        for path in paths:
            try:
                os.replace(path, aside / path.name)
            except FileNotFoundError:
                continue
