"""The run archive the recall and archive nodes use: one JSON line per finished run under
`$DEXFORGE_HOME/memory/archive.jsonl`, recalled by word overlap with the request.

This is the plain-file form of the experience memory; the chromadb store (memory/) replaces the
recall ranking with embeddings and adds policies for warm starts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dexforge.home import home

_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"the", "a", "an", "to", "in", "into", "on", "of", "and", "it", "with", "up", "by"}


def archive_path() -> Path:
    path = home() / "memory"
    path.mkdir(parents=True, exist_ok=True)
    return path / "archive.jsonl"


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def archive(record: dict) -> None:
    """Append a finished run (request, status, family, success, plan, reasons) to the archive."""
    with archive_path().open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")


def recall(request: str, k: int = 3) -> list[str]:
    """The `k` archived runs whose requests share the most words with `request`, as short texts."""
    path = archive_path()
    if not path.exists():
        return []
    want = _words(request)
    scored = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        have = _words(rec.get("request", ""))
        overlap = len(want & have) / max(len(want | have), 1)
        if overlap > 0:
            scored.append((overlap, rec))
    scored.sort(key=lambda x: -x[0])
    out = []
    for _, rec in scored[:k]:
        rate = rec.get("task_success_rate")
        rate_text = "n/a" if rate is None else f"{rate:.0%}"
        text = f"'{rec.get('request')}' ({rec.get('family')}): {rec.get('status')}, whole-task success {rate_text}"
        if rec.get("reason"):
            text += f"; reason: {rec['reason']}"
        out.append(text)
    return out
