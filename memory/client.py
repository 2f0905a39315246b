"""Where the experience store lives and who may write it: settings, the writer lock, the chromadb client.

Settings resolve as explicit argument > environment (`DEXFORGE_*`) > default. Embedded, the store is
a chromadb `PersistentClient` directory and one process writes at a time: the writer holds an
exclusive `flock` on `writer.lock` in that directory, which holds its pid; the kernel drops the lock
when the process dies, so a crash leaves nothing to clean up. Readers take no lock. With
`DEXFORGE_CHROMA_URL` the store is a Chroma server (`HttpClient`), which serialises writes itself;
keep such a server on loopback or behind auth (a pre-auth RCE advisory covers chromadb 1.0.0-1.5.9).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dexforge.home import DexforgeError, home
from dexforge.memory.embeddings import Embedder, make_embedder

LOCK_NAME = "writer.lock"


class MemoryLockedError(DexforgeError):
    """Another process is writing to the store."""


@dataclass(frozen=True)
class MemorySettings:
    """Where the store lives and how it embeds: explicit argument > environment > default."""

    path: Path | None = None
    """Directory of the embedded store (`DEXFORGE_MEMORY_DIR`; default `$DEXFORGE_HOME/memory/chroma`)."""
    url: str | None = None
    """A Chroma server, `http://127.0.0.1:8000` (`DEXFORGE_CHROMA_URL`); used instead of `path` when set."""
    embedder: str = "minilm"
    """minilm, hashing or openai (`DEXFORGE_EMBEDDER`; openai when `DEXFORGE_EMBED_BASE_URL` is set)."""
    embed_base_url: str | None = None
    """OpenAI-compatible embeddings endpoint (`DEXFORGE_EMBED_BASE_URL`)."""
    embed_model: str | None = None
    """Model name at that endpoint (`DEXFORGE_EMBED_MODEL`)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Variable holding the endpoint's API key (`DEXFORGE_EMBED_API_KEY_ENV`)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MemorySettings:
        env = dict(os.environ) if env is None else env
        base_url = env.get("DEXFORGE_EMBED_BASE_URL") or None
        return cls(
            path=Path(env["DEXFORGE_MEMORY_DIR"]).expanduser() if env.get("DEXFORGE_MEMORY_DIR") else None,
            url=env.get("DEXFORGE_CHROMA_URL") or None,
            embedder=env.get("DEXFORGE_EMBEDDER") or ("openai" if base_url else "minilm"),
            embed_base_url=base_url,
            embed_model=env.get("DEXFORGE_EMBED_MODEL") or None,
            api_key_env=env.get("DEXFORGE_EMBED_API_KEY_ENV", "OPENAI_API_KEY"),
        )

    def make_embedder(self, key: str | None = None) -> Embedder:
        return make_embedder(
            key or self.embedder,
            base_url=self.embed_base_url,
            model=self.embed_model,
            api_key=os.environ.get(self.api_key_env),
        )


class WriterLock:
    """An exclusive flock on `directory/writer.lock`; the file holds the holder's pid. Taken at once, or
    within `wait_s` seconds, else MemoryLockedError names the holder."""

    def __init__(self, directory: Path, wait_s: float = 0.0) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(self._fd)
                self._fd = None
                raise MemoryLockedError(
                    f"the experience store {directory} is being written by process {holder}; wait for it to "
                    "finish, or open the store read-only"
                ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def chroma_client(settings: MemorySettings, path: Path | None, url: str | None) -> tuple[Any, str, Path | None]:
    import chromadb
    from chromadb.config import Settings

    chroma_settings = Settings(anonymized_telemetry=False)
    url = url or (settings.url if path is None else None)
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise DexforgeError(f"DEXFORGE_CHROMA_URL {url!r} is not an http(s) URL such as http://127.0.0.1:8000")
        port = parsed.port or (443 if parsed.scheme == "https" else 8000)
        client = chromadb.HttpClient(
            host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=chroma_settings
        )
        return client, url, None
    directory = Path(path or settings.path or home() / "memory" / "chroma").expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(directory), settings=chroma_settings), str(directory), directory
