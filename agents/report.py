"""The run report: one HTML page per run directory, written by the report node.

`write_report(run_dir)` reads `run_dir/summary.json` (paths in it are relative to the run directory)
and writes `run_dir/report.html`. Renders, plans and videos are referenced by relative path so the page
stays small; the training curves are drawn with matplotlib into `run_dir/report/` under stable names
(`<subtask>_attempt<n>_progress.svg`, `<subtask>_attempt<n>_components.svg`). Any field may be missing
or null: the page then says "not available" instead of failing. Every text taken from a file (request,
reward program, critique, reflection) is HTML-escaped; the page needs no JavaScript.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dexforge.home import DexforgeError

NA = '<span class="na">not available</span>'
MAX_TEXT_CHARS = 200_000
VIDEO_SUFFIXES = {".mp4", ".webm", ".ogv"}
CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}pre{background:#f7f7f7;padding:.7em;overflow-x:auto;font-size:13px}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;background:#777;font-size:.85em}
.succeeded,.pass,.accept{background:#2e7d32}.failed,.fail,.error,.reject{background:#c62828}
.running,.warning,.revise{background:#ef6c00}.info{background:#1565c0}.na{color:#888;font-style:italic}
.row{display:flex;flex-wrap:wrap;gap:1em}.row figure{margin:0}.row img{max-width:360px;border:1px solid #ddd}
.curves img{max-width:540px}.chip{display:inline-block;padding:.15em .7em;margin:.15em;border-radius:1em;
background:#e3eaf5}blockquote{border-left:4px solid #ccc;margin:.5em 0;padding:.2em 1em;color:#444}
video,.rollout img{max-width:100%}
"""


class SummaryMissingError(DexforgeError, FileNotFoundError):
    """The run directory has no readable `summary.json`, so there is nothing to report."""


def write_report(run_dir: Path) -> Path:
    """Write `run_dir/report.html` (and its figures under `run_dir/report/`) and return its path.

    Raises `SummaryMissingError` (a `DexforgeError` and a `FileNotFoundError`) when `summary.json`
    is absent, and `DexforgeError` when it is not a JSON object.
    """
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise SummaryMissingError(
            f"no summary.json in {run_dir}; a report needs the summary the run writes before its report node"
        )
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DexforgeError(f"{summary_path} is not valid JSON ({exc}); rerun the run's archive step") from exc
    if not isinstance(summary, dict):
        raise DexforgeError(f"{summary_path} holds a {type(summary).__name__}, not a JSON object")
    page = _Page(run_dir, summary).render()
    out = run_dir / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _e(value: Any) -> str:
    return escape(str(value))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _num(value: Any, spec: str = ",.0f") -> str:
    """A number formatted with `spec` (`".0%"` for a rate), or "not available"."""
    x = _real(value)
    return NA if x is None else format(x, spec)


def _kept(value: Any) -> str:
    """Where the chain lost its episodes: "approach 100% → grasp 95% → lift 80%" (not available when absent)."""
    shares = _dict(value)
    if not shares:
        return NA
    return " → ".join(f"{_e(str(name))} {_num(share, '.0%')}" for name, share in shares.items())


def _duration(value: Any) -> str:
    x = _real(value)
    if x is None:
        return NA
    minutes, seconds = divmod(x, 60)
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _badge(text: Any) -> str:
    label = str(text) if text not in (None, "") else "unknown"
    return f'<span class="badge {_e(label.lower())}">{_e(label)}</span>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A table whose cells are already HTML (escape before calling)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "subtask"


class _Page:
    """Builds the page section by section from one summary."""

    def __init__(self, run_dir: Path, summary: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.s = summary

    # files ----------------------------------------------------------------------------------------------
    def _file(self, value: Any) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        path = Path(value)
        path = path if path.is_absolute() else self.run_dir / path
        return path if path.is_file() else None

    def _src(self, path: Path) -> str:
        """A relative URL for an existing file (an absolute `file:` URL when outside the run directory)."""
        try:
            rel = path.resolve().relative_to(self.run_dir.resolve())
        except ValueError:
            return escape(path.resolve().as_uri())
        return escape(quote(rel.as_posix()))

    def _text(self, value: Any) -> str | None:
        path = self._file(value)
        if path is None:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
        return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "\n… (truncated)"

    def _code(self, title: str, value: Any, *, open_: bool = False) -> str:
        text = self._text(value)
        body = f"<pre>{_e(text)}</pre>" if text is not None else f"<p>{_e(value or 'file')}: {NA}</p>"
        return f"<details{' open' if open_ else ''}><summary>{_e(title)}</summary>{body}</details>"

    # sections -------------------------------------------------------------------------------------------
    def render(self) -> str:
        request = self.s.get("request") or "(no request recorded)"
        from dexforge.agents.report_tools import section

        trajectories = section(self.run_dir, self._src)
        sections = [
            self.header(),
            self.scenes(),
            self.plan(),
            self.training(),
            self.rollout(),
            trajectories,
            self.path(),
        ]
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>dexforge: {_e(request)}</title>'
            f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>\n"
        )

    def header(self) -> str:
        s = self.s
        status = s.get("status")
        reason = f'<p class="reason"><b>Reason:</b> {_e(s["reason"])}</p>' if s.get("reason") else ""
        if status == "failed" and not reason:
            reason = f'<p class="reason"><b>Reason:</b> {NA}</p>'
        dataset = self._file(s.get("dataset"))
        facts = [
            ["run id", _e(s.get("run_id") or "") or NA],
            ["whole-task success", _num(s.get("task_success_rate"), ".0%")],
            ["chained episodes kept", _kept(s.get("kept_after"))],
            ["evaluation episodes", _num(s.get("episodes"))],
            ["env steps", _num(s.get("env_steps"))],
            ["wall time", _duration(s.get("wall_s"))],
            ["dataset", f'<a href="{self._src(dataset)}">{_e(s["dataset"])}</a>' if dataset else NA],
        ]
        facts += [[f"{_e(role)} backend", _e(name)] for role, name in _dict(s.get("backends")).items()]
        calls: list[list[str]] = []
        totals = [0.0, 0.0, 0.0, 0.0]
        for role, c in _dict(s.get("model_calls")).items():
            values = [_real(_dict(c).get(k)) for k in ("calls", "input_tokens", "output_tokens", "cost_usd")]
            totals = [t + (v or 0.0) for t, v in zip(totals, values, strict=True)]
            calls.append([_e(role), *(_num(v) for v in values[:3]), NA if values[3] is None else f"${values[3]:.4f}"])
        if calls:
            calls.append(["<b>total</b>", *(f"<b>{t:,.0f}</b>" for t in totals[:3]), f"<b>${totals[3]:.4f}</b>"])
        model_table = (
            _table(["role", "calls", "input tokens", "output tokens", "cost"], calls) if calls else f"<p>{NA}</p>"
        )
        return (
            f"<header><h1>{_e(s.get('request') or '(no request recorded)')}</h1><p>{_badge(status)}</p>{reason}"
            f"{_table(['', ''], facts)}<h3>Model calls</h3>{model_table}</header>"
        )

    def scenes(self) -> str:
        parts = ["<h2>Scene versions</h2>"]
        specs = _list(self.s.get("specs"))
        if not specs:
            parts.append(f"<p>No scene version recorded: {NA}.</p>")
        for spec in map(_dict, specs):
            parts.append(f"<h3>Version {_e(spec.get('version', '?'))}</h3>")
            renders = _dict(spec.get("renders"))
            figures = []
            for view, value in renders.items():
                path = self._file(value)
                img = f'<img src="{self._src(path)}" alt="{_e(view)} view">' if path else NA
                figures.append(f"<figure>{img}<figcaption>{_e(view)}</figcaption></figure>")
            parts.append(f'<div class="row">{"".join(figures)}</div>' if figures else f"<p>Renders: {NA}</p>")
            rows: list[list[str]] = []
            for f in map(_dict, _list(spec.get("findings"))):
                values = _e(json.dumps(f["values"])) if f.get("values") else ""
                cells = [_e(f.get(k, "")) for k in ("check", "subject", "message")]
                rows.append([cells[0], _badge(f.get("severity")), *cells[1:], values])
            parts.append("<h4>Physics findings</h4>")
            header = ["check", "severity", "subject", "message", "values"]
            parts.append(_table(header, rows) if rows else "<p>No physics findings.</p>")
            parts.append(self._critique(spec.get("critique")))
            parts.append(self._code("spec YAML", spec.get("spec")))
        return "".join(parts)

    def _critique(self, value: Any) -> str:
        if not isinstance(value, dict):
            return f"<h4>Critique</h4><p>{NA}</p>"
        notes = "".join(f"<li>{_e(n)}</li>" for n in _list(value.get("findings"))) or "<li>none</li>"
        rows: list[list[str]] = []
        for c in map(_dict, _list(value.get("corrections"))):
            rest = {k: v for k, v in c.items() if k not in ("kind", "object")}
            rows.append([_e(c.get("kind", "")), _e(c.get("object", "")), _e(json.dumps(rest))])
        corrections = _table(["kind", "object", "details"], rows) if rows else "<p>No corrections.</p>"
        return f"<h4>Critique {_badge(value.get('verdict'))}</h4><ul>{notes}</ul><h4>Corrections</h4>{corrections}"

    def plan(self) -> str:
        parts = ["<h2>Plan</h2>"]
        rows: list[list[str]] = []
        for sub in map(_dict, _list(self.s.get("subtasks"))):
            passed, attempts = sub.get("passed"), len(_list(sub.get("attempts")))
            verdict = NA if passed is None else _badge("pass" if passed else "fail")
            names = [_e(sub.get(k, "?")) for k in ("name", "controller")]
            rows.append([*names, verdict, _num(sub.get("success_rate"), ".0%"), str(attempts)])
        header = ["subtask", "controller", "result", "success rate", "attempts"]
        parts.append(_table(header, rows) if rows else f"<p>Subtasks: {NA}</p>")
        plans = _list(self.s.get("plans"))
        parts += [self._code(f"plan YAML ({p})", p) for p in plans] or [f"<p>Plan file: {NA}</p>"]
        return "".join(parts)

    def training(self) -> str:
        parts = ["<h2>Training</h2>"]
        rl = [s for s in map(_dict, _list(self.s.get("subtasks"))) if s.get("controller") == "rl"]
        if not rl:
            parts.append("<p>No subtask was trained with reinforcement learning.</p>")
        for sub in rl:
            name = str(sub.get("name", "subtask"))
            for att in map(_dict, _list(sub.get("attempts"))):
                n = att.get("attempt", 0)
                stem = f"{_slug(name)}_attempt{_slug(str(n))}"
                error = f"<pre>{_e(att['error'])}</pre>" if att.get("error") else ""
                facts = (
                    f"success {_num(att.get('success_rate'), '.0%')} · {_num(att.get('env_steps'))} env steps · "
                    f"stopped: {_e(att.get('stop_reason') or 'not recorded')}"
                )
                if att.get("warm_start_memory"):
                    facts += f" · started from the stored policy of memory {_e(att['warm_start_memory'])}"
                elif att.get("warm_start"):
                    facts += f" · continued from {_e(att['warm_start'])}"
                reflection = att.get("reflection")
                parts += [
                    f"<h3>{_e(name)} — attempt {_e(n)}</h3><p>{facts}</p>{error}",
                    self._curves(att.get("stats"), stem),
                    self._code("reward program", att.get("reward"), open_=True),
                    f"<h4>Reflection</h4><blockquote>{_e(reflection)}</blockquote>" if reflection else "",
                ]
        return "".join(parts)

    def _curves(self, value: Any, stem: str) -> str:
        rows, skipped = _read_stats(self._file(value))
        note = f"<p>{skipped} unreadable line(s) of {_e(value)} skipped.</p>" if skipped else ""
        if not rows:
            return f"<p>Training curves: {NA} (no statistics in {_e(value or 'stats.jsonl')}).</p>{note}"
        out = self.run_dir / "report"
        out.mkdir(exist_ok=True)
        imgs = [f'<img src="{self._src(p)}" alt="{_e(p.stem)}">' for p in _plot_stats(rows, out, stem) if p is not None]
        return f'<div class="row curves">{"".join(imgs)}</div>{note}'

    def rollout(self) -> str:
        value = self.s.get("video")
        path = self._file(value)
        if path is None:
            return f"<h2>Rollout</h2><p>Video: {NA}{f' ({_e(value)} not found)' if value else ''}.</p>"
        src = self._src(path)
        media = (
            f'<video controls src="{src}"></video>'
            if path.suffix.lower() in VIDEO_SUFFIXES
            else f'<img src="{src}" alt="rollout">'
        )
        return f'<h2>Rollout</h2><div class="rollout">{media}</div>'

    def path(self) -> str:
        nodes = " → ".join(f'<span class="chip">{_e(n)}</span>' for n in _list(self.s.get("node_path")))
        memories = "".join(f"<li><blockquote>{_e(m)}</blockquote></li>" for m in _list(self.s.get("memories")))
        examples = "".join(
            f"<li>{_e(e.get('request'))} (memory {_e(e.get('id'))}, similarity {_num(e.get('similarity'), '.2f')}, "
            f"whole-task success {_num(e.get('task_success_rate'), '.0%')})</li>"
            for e in map(_dict, _list(self.s.get("examples")))
        )
        lent = f"<h3>Plans and rewards that worked, offered to the roles</h3><ul>{examples}</ul>" if examples else ""
        return (
            f"<h2>Node path</h2><p>{nodes or NA}</p>"
            f"<h2>Retrieved memories</h2>{f'<ul>{memories}</ul>' if memories else '<p>No memory was retrieved.</p>'}"
            f"{lent}"
        )


def _read_stats(path: Path | None) -> tuple[list[dict[str, Any]], int]:
    """The rows of a stats.jsonl and how many lines were not JSON objects (a run cut off mid-write)."""
    if path is None:
        return [], 0
    rows: list[dict[str, Any]] = []
    skipped = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and _real(row.get("env_steps")) is not None:
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def _plot_stats(rows: list[dict[str, Any]], out: Path, stem: str) -> list[Path | None]:
    """Draw progress (success rate, mean reward) and reward components against env steps.

    Uses a bare `Figure` on the Agg canvas rather than pyplot, so no global backend or figure
    registry is touched in the process that runs the graph.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def series(get: Any) -> tuple[list[float], list[float]]:
        pts = [(float(r["env_steps"]), y) for r in rows if (y := _real(get(r))) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    def save(fig: Figure, name: str) -> Path:
        FigureCanvasAgg(fig)
        fig.tight_layout()
        path = out / f"{stem}_{name}.svg"
        fig.savefig(path, format="svg", metadata={"Date": None})
        return path

    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    ax.plot(*series(lambda r: r.get("reward_mean")), color="tab:blue", marker=".", label="mean reward")
    ax.set(xlabel="env steps", ylabel="mean reward", title="training progress")
    ax2 = ax.twinx()
    ax2.plot(*series(lambda r: r.get("success_rate")), color="tab:green", marker=".", label="success rate")
    ax2.set(ylabel="success rate", ylim=(-0.02, 1.02))
    ax2.legend(handles=[*ax.get_lines(), *ax2.get_lines()], loc="upper left", fontsize="small")
    progress = save(fig, "progress")

    names = sorted({k for r in rows for k in _dict(r.get("components"))})
    if not names:
        return [progress, None]
    fig = Figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    for key in names:
        ax.plot(*series(lambda r, k=key: _dict(r.get("components")).get(k)), marker=".", label=key)
    ax.set(xlabel="env steps", ylabel="component (episode mean)", title="reward components")
    ax.legend(fontsize="small")
    return [progress, save(fig, "components")]
