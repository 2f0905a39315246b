"""The HTML summary of an eval suite run: pass rates per case and overall, and every failed check."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from dexforge.evals.run import CaseResult

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.ok{color:#176f2c;font-weight:600}.bad{color:#b00020;font-weight:600}code{background:#f4f4f4;padding:1px 3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def write_summary(path: Path, suite_name: str, results: list[CaseResult], rates: dict[str, Any], repeat: int) -> Path:
    """Write `path` (HTML) and return it."""
    k = f"pass^{repeat}"
    rows = []
    for name, row in rates["cases"].items():
        tries = [r for r in results if r.case == name]
        failed_checks = [
            f"try {r.repeat}: {_e(r.error)}"
            if r.error
            else "<br>".join(
                f"try {r.repeat}: <b>{_e(c['name'])}</b>: expected <code>{_e(c['expected'])}</code>, "
                f"saw <code>{_e(c['seen'])}</code>"
                for c in r.checks
                if not c["ok"]
            )
            for r in tries
            if not r.passed
        ]
        cls = "ok" if row[k] == 1.0 else "bad"
        wall = sum(r.wall_s for r in tries) / max(len(tries), 1)
        rows.append(
            f"<tr><td>{_e(name)}</td><td class='{cls}'>{row['passed']}/{row['tries']}</td>"
            f"<td>{row['pass@1']:.2f}</td><td>{row[k]:.0f}</td><td>{wall:.0f} s</td>"
            f"<td>{'<br>'.join(failed_checks) or '-'}</td></tr>"
        )
    verdict = "all cases passed" if not rates["failed"] else f"{len(rates['failed'])} case(s) failed"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>eval {_e(suite_name)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Eval suite {_e(suite_name)}</h1>"
        f"<p class='{'ok' if not rates['failed'] else 'bad'}'>{verdict}: pass@1 {rates['pass@1']:.2f}, "
        f"{k} {rates[k]:.2f} over {len(rates['cases'])} case(s), {repeat} tr{'y' if repeat == 1 else 'ies'} each.</p>"
        "<table><tr><th>case</th><th>passed</th><th>pass@1</th>"
        f"<th>{k}</th><th>mean wall</th><th>failed checks</th></tr>{''.join(rows)}</table>"
        "</body></html>"
    )
    path.write_text(page)
    return path
