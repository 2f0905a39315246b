"""The report's "Tool trajectories" section: what each role looked up before it answered.

Read from the run's events.jsonl: every role loop (`role_start` ... `role_loop`) with its tool calls in
order (arguments, the result the model read or the error, seconds) and the images those calls made (a
critic's views, settling frames, a policy's rollout), then the tools the graph itself called.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

NA = '<span class="na">not available</span>'
MAX_CELL = 400


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def loops(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Role loops in the order they started: role, budget, calls, outcome."""
    found: dict[str, dict[str, Any]] = {}
    for e in events:
        loop = e.get("loop")
        if not loop:
            continue
        row = found.setdefault(loop, {"loop": loop, "role": e.get("role"), "calls": [], "end": None, "answers": []})
        if e.get("kind") == "role_start":
            row["budget"] = e.get("budget")
            row["tools"] = e.get("tools", [])
        elif e.get("kind") == "tool_call":
            row["calls"].append(e)
        elif e.get("kind") == "role_answer":
            row["answers"].append(e)
        elif e.get("kind") == "role_loop":
            row["end"] = e
    return list(found.values())


def _cut(text: Any) -> str:
    text = "" if text is None else str(text)
    return escape(text if len(text) <= MAX_CELL else text[:MAX_CELL] + " …")


def _args(args: Any) -> str:
    if not isinstance(args, dict) or not args:
        return ""
    return _cut(", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in args.items()))


def section(run_dir: Path, src: Callable[[Path], str]) -> str:
    """The HTML section; `src` turns an existing file into the URL the page uses."""
    events = read_events(run_dir)
    parts = ["<h2>Tool trajectories</h2>"]
    found = loops(events)
    if not found:
        parts.append(f"<p>No role called a tool: {NA}.</p>")
    for i, loop in enumerate(found, 1):
        end = loop.get("end") or {}
        ok = end.get("ok")
        badge = "pass" if ok else ("fail" if end else "running")
        outcome = "answered" if ok else (end.get("failure") or "did not finish")
        invalid = sum(1 for a in loop["answers"] if not a.get("ok"))
        role = escape(str(loop.get("role")))
        rejected = f"; {invalid} answer(s) rejected" if invalid else ""
        head = (
            f"<h3>{i}. {role} <span class='badge {badge}'>{escape(outcome[:160])}</span></h3>"
            f"<p>{len(loop['calls'])} tool call(s) of a budget of {loop.get('budget', '?')}{rejected}"
        )
        parts.append(head + "</p>")
        rows = []
        images: list[str] = []
        for c in loop["calls"]:
            result = _cut(c.get("summary")) if c.get("ok") else f"<b>error:</b> {_cut(c.get('error'))}"
            rows.append(
                f"<tr><td>{escape(str(c.get('name')))}</td><td>{_args(c.get('args'))}</td>"
                f"<td><pre>{result}</pre></td><td>{c.get('seconds', 0):.2f} s</td></tr>"
            )
            for img in c.get("images") or []:
                path = Path(img)
                if path.is_file():
                    images.append(f'<figure><img src="{src(path)}" alt="{escape(str(c.get("name")))}"></figure>')
        if rows:
            parts.append(
                "<table><tr><th>tool</th><th>arguments</th><th>what came back</th><th>time</th></tr>"
                + "".join(rows)
                + "</table>"
            )
        if images:
            parts.append(f'<div class="row">{"".join(images)}</div>')
        for a in loop["answers"]:
            if not a.get("ok"):
                parts.append(f"<p><b>answer rejected:</b> {_cut(a.get('error'))}</p>")
    graph = [e for e in events if e.get("kind") == "tool_call" and e.get("role", "graph") == "graph"]
    if graph:
        items = "".join(
            f"<li>{escape(str(e.get('name')))}({_args(e.get('args'))})"
            + ("" if e.get("ok") else f": <b>error</b> {_cut(e.get('error'))}")
            + "</li>"
            for e in graph
        )
        parts.append(f"<h3>Called by the graph</h3><ul>{items}</ul>")
    return "".join(parts)
