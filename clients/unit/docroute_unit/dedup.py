"""The bounded memory of recently handed-on tasks, optionally kept in an append-only state file."""

from __future__ import annotations

import fcntl
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import IO


class StateFileError(Exception):
    """The state file cannot be used (locked by another client, unreadable, or not writable)."""


class SeenTasks:
    """An LRU set of dedup keys; with a path, every addition is fsynced before `add` returns.

    The file is a journal of JSON strings, one per line, so an addition costs one append. It is rewritten
    (atomically) once it holds twice the capacity, and a torn last line from a crash is ignored.
    """

    def __init__(self, capacity: int = 10_000, path: Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.path = path
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._journal: IO[str] | None = None
        self._lines = 0
        if path is not None:
            self._open(path)

    def __contains__(self, key: object) -> bool:
        if key in self._keys:
            assert isinstance(key, str)
            self._keys.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        """Remember `key`; once this returns with a state file, the key survives a crash."""
        self._remember(key)
        if self._journal is None:
            return
        self._journal.write(json.dumps(key, ensure_ascii=False) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._lines += 1
        if self._lines > 2 * self.capacity:
            self._compact()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()  # also releases the lock
            self._journal = None

    def _remember(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            journal = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StateFileError(f"{path}: {exc.strerror or exc}") from exc
        try:
            # Two clients sharing one journal would each believe the other's tasks were handed on.
            fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            journal.close()
            raise StateFileError(f"{path}: in use by another docroute-unit process") from exc
        journal.seek(0)
        for line in journal.read().splitlines():
            try:
                key = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its hand-off was never confirmed
            if isinstance(key, str):
                self._remember(key)
                self._lines += 1
        self._journal = journal

    def _compact(self) -> None:
        assert self.path is not None and self._journal is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for key in self._keys:
                out.write(json.dumps(key, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        # Lock the new file before it replaces the old one so no other client can slip in between.
        journal = tmp.open("a+", encoding="utf-8")
        fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self.path)
        self._journal.close()
        self._journal = journal
        self._lines = len(self._keys)
