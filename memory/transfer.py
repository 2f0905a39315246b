"""Moving records between collections and files: JSONL export and import, and re-embedding.

An export is one header line, then one line per record:
  {"format": "dexforge-memory", "format_version": 1, "embedder": NAME, "dim": D, "schema_version": 2}
  {"id": ..., "kind": "task", "document": ..., "record": {...}, "embedding": [...]}
Import reads records through `load_record` (so older layouts are upgraded) and reuses the vectors
when the file's embedder is the store's, otherwise embeds the documents again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dexforge.home import DexforgeError
from dexforge.memory.embeddings import Embedder
from dexforge.memory.records import KINDS, SCHEMA_VERSION, Record, document_text, load_record, record_metadata

FORMAT = "dexforge-memory"
FORMAT_VERSION = 1
_PAGE = 1000


def stored_metadata(record: Record) -> dict[str, Any]:
    """The metadata chromadb keeps for `record`: filter keys plus the record itself as JSON."""
    return {**record_metadata(record), "record": record.model_dump_json()}


def pages(col: Any, include: list[str]) -> Iterator[dict[str, Any]]:
    """`col.get` in pages of `_PAGE` records."""
    offset = 0
    while True:
        got = col.get(include=include, limit=_PAGE, offset=offset)
        if not got["ids"]:
            return
        yield got
        offset += len(got["ids"])


def export_jsonl(path: Path, cols: dict[str, Any], embedder: tuple[str, int] | None) -> int:
    name, dim = embedder or (None, None)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "embedder": name, "dim": dim}
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write(json.dumps({**header, "schema_version": SCHEMA_VERSION}) + "\n")
        for kind, col in cols.items():
            for got in pages(col, ["metadatas", "documents", "embeddings"]):
                for rid, meta, doc, vec in zip(
                    got["ids"], got["metadatas"], got["documents"], got["embeddings"], strict=True
                ):
                    line = {"id": rid, "kind": kind, "document": doc, "record": json.loads(meta["record"])}
                    f.write(json.dumps({**line, "embedding": [float(x) for x in vec]}) + "\n")
                    count += 1
    return count


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not path.is_file():
        raise DexforgeError(f"no export file {path}")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].get("format") != FORMAT:
        raise DexforgeError(f"{path} is not a dexforge memory export (no '{FORMAT}' header line)")
    if int(lines[0].get("format_version", 0)) > FORMAT_VERSION:
        raise DexforgeError(f"{path} was written by a newer dexforge (format {lines[0]['format_version']})")
    bad = [str(line.get("id")) for line in lines[1:] if not str(line.get("id")).startswith(f"{line.get('kind')}-")]
    if bad:
        raise DexforgeError(f"{path}: ids must start with their kind (task-, subtask-, failure-): {bad[:3]}")
    bad = [str(line.get("kind")) for line in lines[1:] if line.get("kind") not in KINDS]
    if bad:
        raise DexforgeError(f"{path}: unknown record kinds {sorted(set(bad))}")
    return lines[0], lines[1:]


def import_jsonl(path: Path, cols: dict[str, Any], embedder: Embedder, batch: int) -> int:
    header, lines = _read(path)
    same_space = header.get("embedder") == embedder.name and header.get("dim") == embedder.dim
    count = 0
    for kind in KINDS:
        rows = [line for line in lines if line["kind"] == kind]
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            records = [load_record(kind, row["record"]) for row in chunk]
            docs = [document_text(r) for r in records]
            reuse = same_space and all(
                row.get("embedding") and row.get("document") == doc for row, doc in zip(chunk, docs, strict=True)
            )
            vectors = [row["embedding"] for row in chunk] if reuse else embedder.embed(docs)
            cols[kind].upsert(
                ids=[row["id"] for row in chunk],
                embeddings=vectors,
                documents=docs,
                metadatas=[stored_metadata(r) for r in records],
            )
            count += len(chunk)
    return count


def copy_reembedded(old: Any, fresh: Any, embedder: Embedder, batch: int) -> int:
    """Copy every record of `old` into `fresh` with vectors from `embedder`; returns how many."""
    count = 0
    for got in pages(old, ["metadatas", "documents"]):
        for start in range(0, len(got["ids"]), batch):
            ids = got["ids"][start : start + batch]
            docs = got["documents"][start : start + batch]
            metas = got["metadatas"][start : start + batch]
            fresh.add(ids=ids, embeddings=embedder.embed(docs), documents=docs, metadatas=metas)
            count += len(ids)
    return count
