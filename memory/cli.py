"""`dexforge memory ...`: list, search, show, export, import, forget, stats, reembed.

Reading commands open the store read-only (they run beside an agent that is writing); import,
forget and reembed take the writer lock. The store and embedder come from `--path`/`--url`/
`--embedder` or else from `DEXFORGE_MEMORY_DIR`, `DEXFORGE_CHROMA_URL`, `DEXFORGE_EMBEDDER`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dexforge.memory.embeddings import EMBEDDER_KEYS
from dexforge.memory.records import KINDS, FailureRecord, RecordKind, SubtaskRecord, TaskRecord
from dexforge.memory.store import Entry, ExperienceStore, Hit

app = typer.Typer(
    help="The experience store: past tasks, subtasks with their policies, and failures.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
out = Console()

PathOpt = Annotated[Path | None, typer.Option("--path", help="Store directory (default $DEXFORGE_HOME/memory/chroma).")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="A Chroma server instead, e.g. http://127.0.0.1:8000.")]
EmbedderOpt = Annotated[
    str | None, typer.Option("--embedder", help=f"One of {', '.join(EMBEDDER_KEYS)} (default: configured).")
]
KindOpt = Annotated[str, typer.Option("--kind", help=f"Record kind: {', '.join(KINDS)}.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _open(
    path: Path | None, url: str | None, embedder: str | None = None, *, writer: bool = False, check: bool = False
) -> ExperienceStore:
    return ExperienceStore.open(path, embedder, writer=writer, url=url, check_embedder=check)


def _kind(kind: str) -> RecordKind:
    if kind not in KINDS:
        raise typer.BadParameter(f"choose one of {', '.join(KINDS)}", param_hint="--kind")
    return kind  # type: ignore[return-value]


def _summary(entry: Entry) -> str:
    rec = entry.record
    if isinstance(rec, TaskRecord):
        rate = rec.metrics.task_success_rate
        return f"{rec.status}" + ("" if rate is None else f", success {rate:.0%}")
    if isinstance(rec, SubtaskRecord):
        rate = "" if rec.success_rate is None else f", success {rec.success_rate:.0%}"
        return f"{rec.controller}{rate}" + (", checkpoint" if rec.checkpoint else "")
    assert isinstance(rec, FailureRecord)
    return rec.stage


def _as_json(entry: Entry) -> dict[str, Any]:
    row: dict[str, Any] = {"id": entry.id, "kind": entry.kind, "document": entry.document}
    if isinstance(entry, Hit):
        row.update(distance=entry.distance, similarity=entry.similarity)
    return {**row, "record": entry.record.model_dump(mode="json")}


def _table(entries: list[Entry], title: str) -> None:
    if not entries:
        out.print(f"{title}: nothing stored")
        return
    table = Table(title=title)
    columns = ["id", *(["similarity"] if isinstance(entries[0], Hit) else []), "recorded", "outcome", "text"]
    for col in columns:
        table.add_column(col, overflow="fold")
    for e in entries:
        sim = [f"{e.similarity:.3f}"] if isinstance(e, Hit) else []
        table.add_row(e.id, *sim, e.record.created_at.strftime("%Y-%m-%d %H:%M"), _summary(e), e.document)
    out.print(table)


@app.command("list")
def list_(
    kind: KindOpt = "task",
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
    path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """The newest records of a kind."""
    with _open(path, url) as store:
        entries = store.list(_kind(kind), limit)
    if as_json:
        typer.echo(json.dumps([_as_json(e) for e in entries], indent=2))
    else:
        _table(entries, f"{kind} records")


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for, in words.")],
    kind: KindOpt = "task",
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 5,
    as_json: JsonOpt = False,
    path: PathOpt = None,
    url: UrlOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Records nearest to TEXT in meaning."""
    with _open(path, url, embedder, check=True) as store:
        hits = store.search(text, _kind(kind), k)
    if as_json:
        typer.echo(json.dumps([_as_json(h) for h in hits], indent=2))
    else:
        _table(list(hits), f"{kind} records nearest to {text!r}")


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="A record id (task-..., subtask-..., failure-...).")],
    path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """One record in full, as JSON."""
    with _open(path, url) as store:
        entry = store.get(record_id)
    typer.echo(json.dumps(_as_json(entry), indent=2))


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Write every record, with its vector and the embedder's name, to a JSONL file."""
    with _open(path, url) as store:
        count = store.export(file)
    out.print(f"exported {count} records to {file}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A JSONL file written by `dexforge memory export`.")],
    path: PathOpt = None,
    url: UrlOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Add the records of an export (same ids overwrite); re-embeds them when the embedder differs."""
    with _open(path, url, embedder, writer=True, check=True) as store:
        count = store.import_(file)
    out.print(f"imported {count} records from {file}")


@app.command()
def forget(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="The record to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Delete one record."""
    with _open(path, url, writer=True) as store:
        entry = store.get(record_id)
        if not yes and not typer.confirm(f"forget {entry.kind} {entry.id} ({entry.document[:60]!r})?"):
            raise typer.Abort()
        store.forget(record_id)
    out.print(f"forgot {record_id}")


@app.command()
def stats(
    as_json: JsonOpt = False,
    path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Counts per kind, task outcomes, where the store is and which embedder made its vectors."""
    with _open(path, url) as store:
        info = store.stats()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    counts = ", ".join(f"{n} {kind}s" for kind, n in info["counts"].items())
    made = ", ".join(f"{e['name']} ({e['dim']}-d)" for e in info["stored_embedders"]) or "nothing yet"
    out.print(f"{info['where']}: {counts}")
    out.print(f"task outcomes: {info['task_outcomes']}; vectors from {made}; configured {info['embedder']['name']}")


@app.command()
def reembed(
    embedder: Annotated[str, typer.Option("--embedder", help=f"One of {', '.join(EMBEDDER_KEYS)}.")],
    path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Embed every record again with another embedder (after changing models)."""
    with _open(path, url, embedder, writer=True) as store:
        count = store.reembed(store.embedder)
        name = store.embedder.name
    out.print(f"re-embedded {count} records with {name}")
