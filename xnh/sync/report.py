"""What one sync did: the rejected-row report (FILE.rejected.csv) and the summary `xnh sync` prints.

The report is for a clerk's spreadsheet: its columns are 行号 (line), 出错的列 (the column at fault),
原因 (reason), then the export's own header words with the row's cells under them. A cell that a
spreadsheet would run as a formula (it starts with = + - @, or a tab or carriage return before one) is
written with a leading apostrophe. The file is created owner-only (0600: it holds names and ID numbers),
written under a temporary name holding the writer's process id and renamed when complete; a temporary
file left by a killed sync is removed by the next sync that writes a report in that folder
(`clean_leftovers`)."""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .read import KIND_WORD

FIRST_SHOWN = 10  # rejected rows listed in the summary itself (all of them are in the report file)
REPORT_COLUMNS = ("行号", "出错的列", "原因")
_TMP = re.compile(r"\.rejected\.csv\.(\d+)\.tmp$")


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
    notifications: int = 0  # payment notices written to the outbox: queued + skipped
    notices_queued: int = 0
    notices_skipped: int = 0  # recorded as skipped (paid more than outbox.OLD_PAYMENT_DAYS ago)
    report: str = ""
    report_note: str = ""
    seconds: float = 0.0
    skipped_blocks: int = 0  # blocks of rows already imported by an earlier sync (not checked again)
    reasons: dict = field(default_factory=dict)
    first_rejected: list = field(default_factory=list)  # [(line, column, reason)], the first few

    def summary_lines(self) -> list[str]:
        lines = [f"{KIND_WORD[self.kind]} {self.file} ({self.encoding}): "
                 f"{self.inserted + self.updated + self.unchanged + self.rejected} rows in {self.seconds:.1f}s"]
        if self.rejected > len(self.first_rejected):  # many: how many of each reason, then the first few
            for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:10]:
                lines.append(f"  rejected {n}: {reason}")
        for line, column, reason in self.first_rejected:
            lines.append(f"  line {line}, {column or '整行'}: {reason}")
        if self.rejected > len(self.first_rejected):
            lines.append(f"  … and {self.rejected - len(self.first_rejected)} more in the report")
        if self.notices_queued or self.notices_skipped:
            lines.append(f"payment notifications queued: {self.notices_queued}"
                         + (f", skipped as paid more than 30 days ago: {self.notices_skipped}"
                            if self.notices_skipped else ""))
        if self.report_note:
            lines.append(self.report_note)
        lines.append(f"rejected rows written to {self.report}" if self.rejected
                     else "rejected rows: none (no report written)")
        lines.append(f"inserted={self.inserted} updated={self.updated} unchanged={self.unchanged} "
                     f"rejected={self.rejected}")
        return lines


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a tab/CR then one) gets a
    leading apostrophe (OWASP's CSV injection advice)."""
    if value and (value[0] in "=+-@" or (value[0] in "\t\r" and value.lstrip("\t\r")[:1] in "=+-@")):
        return "'" + value
    return value


def clean_leftovers(folder: Path) -> None:
    """Remove reports a killed sync left half-written in `folder` (their writer is no longer running)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for path in entries:
        m = _TMP.search(path.name)
        if m and not _alive(int(m.group(1))):
            try:
                path.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_private(path: Path):
    """A new file only its owner can read (0600 from its creation, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8-sig", newline="")


class Report:
    """FILE.rejected.csv next to the input (or in the working directory when that is not writable)."""

    def __init__(self, source: Path, header: list[str]):
        self.note = ""
        target = source.resolve().with_name(source.name + ".rejected.csv")
        clean_leftovers(target.parent)
        try:
            self.tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            self.f = _open_private(self.tmp)
        except OSError:
            fallback = Path.cwd().resolve() / target.name
            self.note = f"note: {source.parent.resolve()} is not writable, report written to {fallback} instead"
            clean_leftovers(fallback.parent)
            target, self.tmp = fallback, fallback.with_name(f"{fallback.name}.{os.getpid()}.tmp")
            self.f = _open_private(self.tmp)
        self.path = target
        self.header = header
        self._start()

    def _start(self) -> None:
        self.rows = 0
        self.first = []
        self.writer = csv.writer(self.f)
        self.writer.writerow([*REPORT_COLUMNS, *(safe_cell(h) for h in self.header)])

    def restart(self) -> None:
        """Begin again, empty (the import's pass is being run again)."""
        self.f.close()
        self.f = _open_private(self.tmp)
        self._start()

    def write(self, line: int, column: str, reason: str, cells: list[str]) -> None:
        self.rows += 1
        if len(self.first) < FIRST_SHOWN:
            self.first.append((line, column, reason))
        self.writer.writerow([line, column, safe_cell(reason), *(safe_cell(c) for c in cells)])

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
