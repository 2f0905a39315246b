"""The morning report of an overnight batch (`report.html` in the batch folder), and its measures.

Every task with its status, whole-task success, env steps, wall time, model calls and cost, and the
retries with their reasons; a gallery of each task's scene render and rollout video; the batch's
diversity (mean pairwise cosine similarity of the task descriptions, the measure GenDexHand and RoboGen
report: 0.288 and 0.191, lower is more diverse); and the failures grouped by cause.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from html import escape
from pathlib import Path
from typing import Any

from dexforge.agents.batch import Batch, TaskEntry

REFERENCE_DIVERSITY = {"GenDexHand": 0.288, "RoboGen": 0.191}

CAUSES: list[tuple[str, str]] = [
    (r"wall-time budget", "stopped at its wall-time budget"),
    (r"names no action|no catalog object|cannot ground", "request not understood"),
    (r"no valid answer after", "a role gave no valid answer"),
    (r"could not be built or checked|check_scene failed", "scene could not be built or checked"),
    (r"crash|exit code|SIGABRT|signal", "a process crashed"),
    (r"NaN|non-finite", "simulation became non-finite (NaN)"),
    (r"no chained episode succeeded", "subtasks passed alone, the chain did not"),
    (r"subtask '([^']+)' failed", "subtask '{0}' did not reach the pass rate"),
]


def cause(reason: str | None) -> str:
    """A short, stable name for why a task failed, for grouping."""
    text = reason or "no reason recorded"
    for pattern, name in CAUSES:
        match = re.search(pattern, text)
        if match:
            return name.format(*match.groups())
    return "other: " + re.sub(r"\d+(\.\d+)?", "N", text)[:80]


def diversity(texts: list[str], embed) -> float | None:
    """Mean pairwise cosine similarity of `texts` under `embed` (lower is more diverse); None under 2 texts."""
    import numpy as np

    if len(texts) < 2:
        return None
    vecs = np.asarray(embed(texts), dtype=float)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
    sims = [float(vecs[i] @ vecs[j]) for i, j in itertools.combinations(range(len(texts)), 2)]
    return sum(sims) / len(sims)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _rel(batch: Batch, path: Path) -> str:
    return os.path.relpath(path, batch.dir)


def _media(batch: Batch, task: TaskEntry) -> str:
    if not task.run_dir:
        return ""
    run = Path(task.run_dir)
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    parts = []
    specs = summary.get("specs") or []
    renders = (specs[-1].get("renders") or {}) if specs else {}
    view = renders.get("oblique") or renders.get("front") or next(iter(renders.values()), None)
    if view and (run / view).exists():
        parts.append(f'<img src="{_e(_rel(batch, run / view))}" alt="scene">')
    if summary.get("video") and (run / summary["video"]).exists():
        parts.append(f'<video controls src="{_e(_rel(batch, run / summary["video"]))}"></video>')
    if not parts:
        return ""
    report = run / "report.html"
    link = f'<a href="{_e(_rel(batch, report))}">report</a>' if report.exists() else ""
    return f"<figure>{''.join(parts)}<figcaption>#{task.index} {_e(task.request)} {link}</figcaption></figure>"


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary(batch: Batch, embed=None) -> dict[str, Any]:
    """The batch in numbers (what the report shows, and `--json` prints)."""
    done = [t for t in batch.tasks if t.status not in ("pending", "running")]
    if embed is None:
        from dexforge.memory.client import MemorySettings

        embed = MemorySettings.from_env().make_embedder().embed
    groups: dict[str, list[int]] = {}
    for t in done:
        if t.status == "failed" or (t.status == "stopped" and "wall-time budget" in (t.reason or "")):
            groups.setdefault(cause(t.reason), []).append(t.index)
    return {
        "batch_id": batch.batch_id,
        "finished": batch.finished,
        "counts": batch.counts(),
        "tasks": len(batch.tasks),
        "env_steps": sum(t.env_steps or 0 for t in done),
        "model_calls": sum(t.model_calls for t in done),
        "cost_usd": round(sum(t.cost_usd for t in done), 4),
        "wall_s": round(sum(t.wall_s or 0 for t in done), 1),
        "diversity": diversity([t.request for t in batch.tasks], embed),
        "failures_by_cause": dict(sorted(groups.items(), key=lambda kv: -len(kv[1]))),
    }


def write_report(batch: Batch, embed=None) -> Path:
    data = summary(batch, embed)
    rows = []
    for t in batch.tasks:
        retries = "<br>".join(_e(r) for r in t.retries) or "-"
        report = Path(t.run_dir) / "report.html" if t.run_dir else None
        run = f'<a href="{_e(_rel(batch, report))}">{_e(t.run_id)}</a>' if report and report.exists() else "-"
        rows.append(
            f"<tr class='{t.status}'><td>{t.index}</td><td>{_e(t.request)}<br><small>{t.source}</small></td>"
            f"<td>{t.status}</td><td>{_fmt(t.task_success_rate, '.0%')}</td><td>{_fmt(t.env_steps, ',')}</td>"
            f"<td>{_fmt(t.wall_s, '.0f')} s</td><td>{t.model_calls}</td><td>${t.cost_usd:.4f}</td>"
            f"<td>{retries}</td><td>{_e(t.reason or '')}</td><td>{run}</td></tr>"
        )
    groups = "".join(
        f"<li><b>{_e(name)}</b>: {len(ids)} task(s) ({', '.join(f'#{i}' for i in ids)})</li>"
        for name, ids in data["failures_by_cause"].items()
    )
    div = data["diversity"]
    refs = ", ".join(f"{k} {v}" for k, v in REFERENCE_DIVERSITY.items())
    counts = ", ".join(f"{v} {k}" for k, v in data["counts"].items() if v)
    gallery = "".join(_media(batch, t) for t in batch.tasks)
    state = "finished" if batch.finished else "still running (or interrupted: `dexforge overnight --resume`)"
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}"
        "tr.succeeded td:nth-child(3){color:#176f2c}tr.failed td:nth-child(3),tr.stopped td:nth-child(3){color:#b00020}"
        "figure{display:inline-block;margin:.5em;width:320px}figure img,figure video{width:320px}"
    )
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created))
    header = ["#", "request", "status", "whole-task success", "env steps", "wall", "model calls", "cost"]
    header += ["retries", "reason", "run"]
    page = "".join(
        [
            f'<!doctype html><html><head><meta charset="utf-8"><title>batch {_e(batch.batch_id)}</title>',
            f"<style>{style}</style></head><body><h1>Overnight batch {_e(batch.batch_id)}</h1>",
            f"<p>{_e(state)}; started {_e(started)}. Tasks: {len(batch.tasks)} ({_e(counts)}); ",
            f"{data['env_steps']:,} env steps; {data['model_calls']} model calls; ${data['cost_usd']:.4f}; ",
            f"{data['wall_s']:.0f} s of task time.</p>",
            "<h2>Diversity</h2><p>Mean pairwise cosine similarity of the task descriptions: ",
            f"<b>{_fmt(div, '.3f')}</b> (lower is more diverse; reported: {_e(refs)}).</p>",
            "<h2>Tasks</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>",
            "".join(rows) + "</table>",
            f"<h2>Failures by cause</h2>{f'<ul>{groups}</ul>' if groups else '<p>None.</p>'}",
            f"<h2>Gallery</h2>{gallery or '<p>No renders or videos yet.</p>'}</body></html>",
        ]
    )
    path = batch.dir / "report.html"
    path.write_text(page)
    return path
