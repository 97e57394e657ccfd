"""What one sync did: the rejected-row report (FILE.rejected.csv) and the summary `xnh sync` prints."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from .read import KIND_WORD

@dataclass
class Result:
    """What one sync did; `summary_lines()` is what `xnh sync` prints."""

    kind: str
    file: str
    encoding: str = ""
    run_id: int | None = None
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    notifications: int = 0
    report: str = ""
    report_note: str = ""
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)
    first_rejected: list = field(default_factory=list)  # [(line, column, reason)], the first few

    def summary_lines(self) -> list[str]:
        lines = [f"{KIND_WORD[self.kind]} {self.file} ({self.encoding}): "
                 f"{self.inserted + self.updated + self.unchanged + self.rejected} rows in {self.seconds:.1f}s"]
        if self.rejected > len(self.first_rejected):  # many: how many of each reason, then the first few
            for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:10]:
                lines.append(f"  rejected {n}: {reason}")
        for line, column, reason in self.first_rejected:
            lines.append(f"  line {line}, {column}: {reason}")
        if self.rejected > len(self.first_rejected):
            lines.append(f"  … and {self.rejected - len(self.first_rejected)} more in the report")
        if self.notifications:
            lines.append(f"payment notifications queued: {self.notifications}")
        if self.report_note:
            lines.append(self.report_note)
        lines.append(f"rejected rows written to {self.report}" if self.rejected
                     else "rejected rows: none (no report written)")
        lines.append(f"inserted={self.inserted} updated={self.updated} unchanged={self.unchanged} "
                     f"rejected={self.rejected}")
        return lines



FIRST_SHOWN = 10  # rejected rows listed in the summary itself (all of them are in the report file)


class Report:
    """FILE.rejected.csv next to the input (or in the working directory when that is not writable)."""

    def __init__(self, source: Path):
        self.note = ""
        target = source.with_name(source.name + ".rejected.csv")
        try:
            self.tmp = target.with_name(target.name + ".tmp")
            self.f = open(self.tmp, "w", encoding="utf-8-sig", newline="")
        except OSError:
            fallback = Path.cwd() / target.name
            self.note = f"note: {source.parent} is not writable, report written to {fallback} instead"
            target, self.tmp = fallback, fallback.with_name(fallback.name + ".tmp")
            self.f = open(self.tmp, "w", encoding="utf-8-sig", newline="")
        self.path = target
        self.rows = 0
        self.first = []
        self.writer = csv.writer(self.f)
        self.writer.writerow(["line", "column", "reason", "raw"])

    def write(self, line: int, column: str, reason: str, raw: str) -> None:
        self.rows += 1
        if len(self.first) < FIRST_SHOWN:
            self.first.append((line, column, reason))
        self.writer.writerow([line, column, reason, raw])

    def finish(self) -> None:
        """Put the report in place; with nothing rejected, leave no file (and no stale one from before)."""
        self.f.close()
        if self.rows:
            os.replace(self.tmp, self.path)
            return
        for path in (self.tmp, self.path):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def abandon(self) -> None:
        self.f.close()
        try:
            os.remove(self.tmp)
        except OSError:
            pass

