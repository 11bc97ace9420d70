"""The audit log: one AuditEvent per line (FHIR JSON) in a file of its own, mode 0600 whatever the umask, rotated
by size; each line written to the kernel (one `write` on an O_APPEND descriptor) before `append` returns."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any

import orjson

MODE = 0o600


def open_private(path: Path, flags: int) -> int:
    """A descriptor of `path` opened with `flags` (O_CREAT among them), its mode 0600 whatever the umask."""
    fd = os.open(path, flags | os.O_CLOEXEC, MODE)
    try:
        os.fchmod(fd, MODE)  # an existing file keeps its old mode through os.open: set it
    except OSError:
        os.close(fd)
        raise
    return fd


class AuditFile:
    """The audit log file `path` (and `path.1` ... `path.<keep>`, older), appended to by every worker process.

    A line is never split across files and never interleaved with another process's line: each is one `write` on
    an O_APPEND descriptor under an exclusive `flock`, which also serialises rotation between processes. With
    `fsync`, each line is on disk before `append` returns; without, it is in the kernel (it survives the process,
    not a power cut).
    """

    def __init__(self, path: Path, *, max_bytes: int, keep: int, fsync: bool = False) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = max(keep, 1)
        self.fsync = fsync
        self._fd: int | None = None
        self._lock = threading.Lock()

    def append(self, event: dict[str, Any]) -> None:
        """Write the event as one line; OSError when it could not be written."""
        line = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            fd = self._current()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if self._moved(fd):  # another process rotated: write to the new file
                    fd = self._reopen_locked(fd)
                if os.fstat(fd).st_size and os.fstat(fd).st_size + len(line) > self.max_bytes:
                    self._rotate()
                    fd = self._reopen_locked(fd)
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(f"audit line cut short ({written} of {len(line)} bytes)")
                if self.fsync:
                    os.fsync(fd)
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _current(self) -> int:
        if self._fd is None:  # a directory that cannot be made fails the append, as the policy decides
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = open_private(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return self._fd

    def _moved(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(fd).st_ino
        except FileNotFoundError:
            return True

    def _reopen_locked(self, old: int) -> int:
        """Close `old` (releasing its lock), open the file at `path` and lock it."""
        os.close(old)
        self._fd = None
        fd = self._current()
        fcntl.flock(fd, fcntl.LOCK_EX)
        if self._moved(fd):  # rotated again between open and lock: once more
            return self._reopen_locked(fd)
        return fd

    def _rotate(self) -> None:
        """path.<keep-1> -> path.<keep>, ..., path -> path.1 (the oldest beyond `keep` is dropped)."""
        for n in range(self.keep - 1, 0, -1):
            older = self._numbered(n)
            if older.exists():
                os.replace(older, self._numbered(n + 1))
        os.replace(self.path, self._numbered(1))

    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")
