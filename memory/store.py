"""The experience store: past tasks, subtasks (with policies for warm starts) and failures in chromadb.

One collection per record kind (`dexforge_tasks`, `dexforge_subtasks`, `dexforge_failures`): every
search is within one kind, so each HNSW index holds only the vectors it is searched for (no
post-filtering by kind, which would cost recall at small `k`), and the kinds' metadata differ. The
id's prefix (`task-`, `subtask-`, `failure-`) says which collection holds a record.

Where it lives and who may write it: `memory/client.py` (a directory with one writer at a time,
holding a lock; or a Chroma server). The embedder's identity is written into each collection's
metadata; opening a store with another embedder raises EmbedderMismatchError, and `reembed` moves a
store to a new embedder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dexforge.home import DexforgeError
from dexforge.memory import transfer
from dexforge.memory.client import MemoryLockedError, MemorySettings, WriterLock, chroma_client
from dexforge.memory.embeddings import Embedder
from dexforge.memory.records import (
    KINDS,
    Entry,
    FailureRecord,
    Hit,
    Record,
    RecordKind,
    SubtaskRecord,
    TaskRecord,
    document_text,
    load_record,
)

COLLECTIONS: dict[RecordKind, str] = {k: f"dexforge_{k}s" for k in KINDS}
_INCLUDE: Any = ["metadatas", "documents"]
__all__ = [
    "EmbedderMismatchError",
    "Entry",
    "ExperienceStore",
    "Hit",
    "MemoryLockedError",
    "MemorySettings",
    "RecordNotFoundError",
]


class EmbedderMismatchError(DexforgeError):
    """The store's vectors come from another embedder than the one asked for."""


class RecordNotFoundError(DexforgeError):
    """No record with that id."""


class ExperienceStore:
    """Past tasks, subtasks and failures, searchable by meaning. Open with `ExperienceStore.open`."""

    def __init__(
        self,
        client: Any,
        where: str,
        embedder: Embedder,
        writer: bool,
        lock: WriterLock | None,
        settings: MemorySettings,
    ) -> None:
        self._client, self.where, self.embedder, self.writer, self._lock = client, where, embedder, writer, lock
        self._settings = settings
        self._collections: dict[RecordKind, Any] = {}
        self._stored: dict[RecordKind, tuple[str, int]] = {}  # (name, dim) of each non-empty collection

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        embedder: Embedder | str | None = None,
        writer: bool = True,
        *,
        url: str | None = None,
        settings: MemorySettings | None = None,
        check_embedder: bool = True,
        wait_s: float = 0.0,
    ) -> ExperienceStore:
        """Open (creating it if needed) the store at `path`, or at `url`, or where `settings` say.

        `embedder`: an Embedder or its key (minilm, hashing, openai); default from settings. With
        `check_embedder=False` a store made with another embedder opens anyway (for listing, export
        and `reembed`); searching it then raises EmbedderMismatchError. A writer waits up to `wait_s`
        seconds for another process's writer lock (MemoryLockedError after that).
        """
        settings = settings or MemorySettings.from_env()
        emb = settings.make_embedder(embedder) if embedder is None or isinstance(embedder, str) else embedder
        client, where, directory = chroma_client(settings, Path(path) if path else None, url)
        lock = WriterLock(directory, wait_s) if writer and directory is not None else None
        store = cls(client, where, emb, writer, lock, settings)
        try:
            store._attach(check_embedder)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def stored_embedder(self) -> tuple[str, int] | None:
        """(name, dim) of the embedder the stored vectors come from; None when empty or mixed."""
        identities = set(self._stored.values())
        return identities.pop() if len(identities) == 1 else None

    def _attach(self, check: bool) -> None:
        existing = self._collection_names()
        for kind, name in COLLECTIONS.items():
            copy = f"{name}_reembed"  # left by an interrupted reembed
            if copy in existing and self.writer:
                if name in existing:  # the original is intact: drop the partial copy
                    self._client.delete_collection(copy)
                else:  # the original was already dropped: the copy is complete
                    self._client.get_collection(copy, embedding_function=None).modify(name=name)
                    existing.add(name)
            if name in existing:
                col = self._client.get_collection(name, embedding_function=None)
                meta = col.metadata or {}
                stored = (str(meta.get("embedder")), int(meta.get("embedder_dim", 0)))
                if col.count() == 0 and self.writer and stored != (self.embedder.name, self.embedder.dim):
                    self._client.delete_collection(name)  # empty: take the new embedder's space
                    col = self._create(name)
                elif col.count() > 0:
                    self._stored[kind] = stored
            elif self.writer:
                col = self._create(name)
            else:
                continue
            self._collections[kind] = col
        if check:
            self._check_embedder()

    def _collection_names(self) -> set[str]:
        return {c.name for c in self._client.list_collections()}

    def _create(self, name: str, embedder: Embedder | None = None) -> Any:
        emb = embedder or self.embedder
        identity = {"embedder": emb.name, "embedder_dim": emb.dim}
        return self._client.create_collection(
            name, configuration={"hnsw": {"space": "cosine"}}, metadata=identity, embedding_function=None
        )

    def _check_embedder(self) -> None:
        others = sorted({s for s in self._stored.values() if s != (self.embedder.name, self.embedder.dim)})
        if others:
            made_with = " and ".join(f"{name} ({dim}-d)" for name, dim in others)
            raise EmbedderMismatchError(
                f"the experience store {self.where} was embedded with {made_with}, not {self.embedder.name} "
                f"({self.embedder.dim}-d); re-embed it with `dexforge memory reembed --embedder {self.embedder.key}` "
                f"or use the embedder it was made with"
            )

    def _collection(self, kind: RecordKind) -> Any | None:
        if kind not in COLLECTIONS:
            raise DexforgeError(f"unknown record kind {kind!r}; expected one of {list(KINDS)}")
        return self._collections.get(kind)

    def _writable(self, kind: RecordKind) -> Any:
        if not self.writer:
            raise DexforgeError(f"the experience store {self.where} was opened read-only")
        self._check_embedder()
        return self._collections[kind]

    # writing

    def add(self, record: Record) -> str:
        """Store `record`; returns its new id, `<kind>-<16 hex digits>`."""
        return self.add_many([record])[0]

    def add_many(self, records: Sequence[Record]) -> list[str]:
        """Store records of any kinds, embedded in batches; returns their new ids in order."""
        ids = [f"{r.kind}-{uuid.uuid4().hex[:16]}" for r in records]
        batch = self._client.get_max_batch_size()
        for kind in KINDS:
            rows = [(rid, r) for rid, r in zip(ids, records, strict=True) if r.kind == kind]
            if not rows:
                continue
            col = self._writable(kind)
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                texts = [document_text(r) for _, r in chunk]
                metas = [transfer.stored_metadata(r) for _, r in chunk]
                col.add(
                    ids=[i for i, _ in chunk], embeddings=self.embedder.embed(texts), documents=texts, metadatas=metas
                )
                self._stored[kind] = (self.embedder.name, self.embedder.dim)
        return ids

    def add_task(self, record: TaskRecord) -> str:
        return self.add(record)

    def add_subtask(self, record: SubtaskRecord) -> str:
        return self.add(record)

    def add_failure(self, record: FailureRecord) -> str:
        return self.add(record)

    def forget(self, id: str) -> None:
        """Delete a record; RecordNotFoundError when there is none."""
        entry = self.get(id)
        self._writable(entry.kind).delete(ids=[id])

    # reading

    @staticmethod
    def _entry(kind: RecordKind, rid: str, meta: dict[str, Any], doc: str | None) -> Entry:
        return Entry(rid, kind, load_record(kind, json.loads(meta["record"])), doc or "")

    def get(self, id: str) -> Entry:
        prefix = id.split("-", 1)[0]
        for kind in [prefix] if prefix in COLLECTIONS else list(KINDS):
            col = self._collection(kind)  # type: ignore[arg-type]
            got = col.get(ids=[id], include=_INCLUDE) if col is not None else {"ids": []}
            if got["ids"]:
                return self._entry(kind, id, got["metadatas"][0], got["documents"][0])  # type: ignore[arg-type]
        raise RecordNotFoundError(f"no record {id!r} in the experience store {self.where}")

    def search(self, text: str, kind: RecordKind = "task", k: int = 5, where: dict | None = None) -> list[Hit]:
        """The `k` records of `kind` nearest to `text` in meaning, nearest first; `where` filters metadata."""
        self._check_embedder()
        col = self._collection(kind)
        count = col.count() if col is not None else 0
        if count == 0 or k <= 0:
            return []
        got = col.query(  # type: ignore[union-attr]
            query_embeddings=self.embedder.embed([text]),
            n_results=min(k, count),
            where=where,
            include=[*_INCLUDE, "distances"],
        )
        return [
            Hit(rid, kind, self._entry(kind, rid, meta, doc).record, doc or "", float(dist))
            for rid, meta, doc, dist in zip(
                got["ids"][0], got["metadatas"][0], got["documents"][0], got["distances"][0], strict=True
            )
        ]

    def similar_subtasks(
        self,
        kind: str,
        obs_size: int | None,
        act_size: int | None,
        text: str,
        k: int = 3,
        min_success: float = 0.5,
    ) -> list[Hit]:
        """Warm-start candidates: successful subtasks of controller `kind` with a checkpoint file that exists
        here and, where given, the same observation and action sizes, nearest to `text` first."""
        clauses: list[dict[str, Any]] = [
            {"controller": kind},
            {"has_checkpoint": True},
            {"success_rate": {"$gte": min_success}},
        ]
        if obs_size is not None:
            clauses.append({"obs_size": obs_size})
        if act_size is not None:
            clauses.append({"act_size": act_size})
        hits = self.search(text, "subtask", 4 * k, {"$and": clauses})
        usable = [h for h in hits if isinstance(h.record, SubtaskRecord) and Path(h.record.checkpoint or "").is_file()]
        return usable[:k]

    def list(self, kind: RecordKind = "task", limit: int = 20, where: dict | None = None) -> list[Entry]:
        """The newest `limit` records of `kind`."""
        col = self._collection(kind)
        if col is None:
            return []
        got = col.get(where=where, include=_INCLUDE)
        rows = sorted(
            zip(got["ids"], got["metadatas"], got["documents"], strict=True), key=lambda r: -r[1]["created_at"]
        )
        return [self._entry(kind, rid, meta, doc) for rid, meta, doc in rows[:limit]]

    def stats(self) -> dict[str, Any]:
        counts = {k: (c.count() if (c := self._collection(k)) is not None else 0) for k in KINDS}
        outcomes: dict[str, int] = {}
        if (tasks := self._collection("task")) is not None:
            for status in ("succeeded", "failed"):
                outcomes[status] = len(tasks.get(where={"outcome": status}, include=[])["ids"])
        stored = sorted(set(self._stored.values()))
        return {
            "where": self.where,
            "writer": self.writer,
            "counts": counts,
            "task_outcomes": outcomes,
            "embedder": {"name": self.embedder.name, "key": self.embedder.key},
            "stored_embedders": [{"name": name, "dim": dim} for name, dim in stored],
        }

    # moving records in and out

    def export(self, path: Path | str) -> int:
        """Write every record (with its vector) to a JSONL file; returns the number of records."""
        cols = {k: c for k in KINDS if (c := self._collection(k)) is not None}
        return transfer.export_jsonl(Path(path), cols, self.stored_embedder)

    def import_(self, path: Path | str) -> int:
        """Add (or overwrite, by id) the records of an exported file; returns how many. Vectors are
        reused when the file's embedder is this store's, otherwise the records are embedded again."""
        cols = {k: self._writable(k) for k in KINDS}
        count = transfer.import_jsonl(Path(path), cols, self.embedder, self._client.get_max_batch_size())
        self._stored.update({k: (self.embedder.name, self.embedder.dim) for k, c in cols.items() if c.count()})
        return count

    def reembed(self, embedder: Embedder | str) -> int:
        """Embed every record again with `embedder` (an Embedder or a key); returns how many."""
        if not self.writer:
            raise DexforgeError(f"the experience store {self.where} was opened read-only")
        if isinstance(embedder, str):
            embedder = self._settings.make_embedder(embedder)
        embedder.embed(["load check"])  # fail here (model files, endpoint), before anything changes
        total = 0
        for kind, name in COLLECTIONS.items():
            fresh_name = f"{name}_reembed"
            if fresh_name in self._collection_names():  # a copy left by an interrupted reembed
                self._client.delete_collection(fresh_name)
            fresh = self._create(fresh_name, embedder)
            old = self._collections[kind]
            total += transfer.copy_reembedded(old, fresh, embedder, self._client.get_max_batch_size())
            self._client.delete_collection(name)
            fresh.modify(name=name)
            self._collections[kind] = self._client.get_collection(name, embedding_function=None)
        self.embedder = embedder
        self._stored = {k: (embedder.name, embedder.dim) for k, c in self._collections.items() if c.count()}
        return total

    # lifetime

    def close(self) -> None:
        """Release the chromadb client and the writer lock."""
        self._client.close()
        self._collections = {}
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ExperienceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
