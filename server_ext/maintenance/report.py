"""The doctor's report as a table for people (``--json`` prints ``Report.as_json``)."""

from __future__ import annotations

from typing import Any

from .doctor import KINDS, Report

#: problems of one kind shown in the table (all of them are in --json)
SHOWN_PER_KIND = 50


def render(report: Report, *, per_kind: int = SHOWN_PER_KIND) -> str:
    """The report as plain text."""
    lines = [f"workspace  {report.workspace}", f"store      {report.store}"]
    if report.schema:
        lines.append("schema     " + ", ".join(f"{k} {v}" for k, v in report.schema.items()))
    if report.checked:
        lines.append("checked    " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                               for k, v in report.checked.items()))
    if report.rebuilt is not None:
        lines += _rebuilt(report.rebuilt)
    lines.append("")
    if report.ok:
        lines.append("no problems found")
        return "\n".join(lines) + "\n"
    rows: list[tuple[str, str, str]] = []
    for kind, label in KINDS.items():
        found = [p for p in report.problems if p.kind == kind]
        rows += [(label, p.subject, p.detail) for p in found[:per_kind]]
        if len(found) > per_kind:
            rows.append((label, f"... and {len(found) - per_kind} more", "(see --json)"))
    widths = [max(len(r[i]) for r in [("PROBLEM", "WHAT", ""), *rows]) for i in range(2)]
    lines.append(f"{'PROBLEM':<{widths[0]}}  {'WHAT':<{widths[1]}}  DETAIL")
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
    count = len(report.problems)
    lines += ["", f"{count} problem{'s' if count != 1 else ''} found"
              + ("" if report.rebuilt is not None else
                 " (notebench doctor --rebuild, with no server running, re-registers jobs "
                 "and files from disk)")]
    return "\n".join(lines) + "\n"


def _rebuilt(rebuilt: dict[str, Any]) -> list[str]:
    jobs = rebuilt.get("jobs") or {}
    assets = rebuilt.get("assets") or {}
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(jobs.get("states", {}).items()))
    lines = [f"rebuilt    {_count(len(jobs.get('registered', [])), 'job')}"
             + (f" ({by_state})" if by_state else "")
             + f", {_count(jobs.get('models', 0), 'model')} registered; "
             f"{_count(assets.get('added', 0), 'file')} registered"
             + (f" ({assets['unhashed']} left for the server to hash)"
                if assets.get("unhashed") else "")]
    lines += [f"skipped    {s['id']}: {s['reason']}" for s in jobs.get("skipped", [])]
    return lines


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
