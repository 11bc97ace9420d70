"""One holder at a time per key (a patient's MRN, a session's key), within one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable


class KeyedLocks:
    """An asyncio lock per key: `hold(keys)` takes the keys' locks in sorted order (no deadlock) and releases
    them in reverse; a lock no one holds or waits for is dropped, so memory stays bounded by the writers."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        held: list[str] = []
        try:
            for key in sorted(set(keys)):
                lock = self._locks.setdefault(key, asyncio.Lock())
                self._users[key] = self._users.get(key, 0) + 1
                try:
                    await lock.acquire()
                except BaseException:
                    self._drop(key)
                    raise
                held.append(key)
            yield
        finally:
            for key in reversed(held):
                self._locks[key].release()
                self._drop(key)

    def _drop(self, key: str) -> None:
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key], self._locks[key]

    def users(self, key: str) -> int:
        """Writers holding or waiting for `key`'s lock."""
        return self._users.get(key, 0)

    def __len__(self) -> int:
        """Keys whose lock is held or waited for (none once every writer is done)."""
        return len(self._locks)
