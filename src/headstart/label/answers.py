"""labels.csv, the labelling page's answers: a table ``headstart fit`` reads (``path`` or ``text``, ``label``).

Every change rewrites the whole file atomically (headstart.fileio: a temporary sibling renamed over it), so a
server killed at any moment leaves the file as it was before or after the last answer, never half a row. Rows and
columns that were in the file before are kept as they were; a new row fills the item and label columns. Paths are
written relative to the file's folder (a table's paths are read relative to the table), so the file must sit in a
folder that holds the pool's files (the pool's parent folder, say).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from headstart.core.errors import DataError, RunError
from headstart.core.fileio import write_text

LABEL = "label"
PATH, TEXT = "path", "text"  # the item column: files, texts (as picks.csv and fit name them)


class Answers:
    """The rows of labels.csv: those it held before, then one per answer, in order."""

    def __init__(self, out: Path, key: str) -> None:
        """Read ``out`` if it exists (its rows are kept), else start an empty table; ``key`` is ``path`` (files)
        or ``text`` (texts)."""
        self.out, self.key = out, key
        self.columns, self.rows = [key, LABEL], []
        if out.exists():
            self.columns, self.rows = read_table(out, key)

    def item(self, shown: str) -> str:
        """How an item (a path as the pool gives it, or a text) is written in the table."""
        if self.key != PATH:  # a text is written as it is
            return shown
        relative = os.path.relpath(os.path.realpath(shown), os.path.realpath(self.out.parent))
        if relative.startswith(os.pardir):
            raise RunError(f"--out {self.out}: the pool file {shown} is not inside {self.out.parent}, and fit reads "
                           "a table's paths relative to the table's folder, inside it. Put labels.csv in a folder "
                           "that holds the pool (e.g. the pool folder's parent: --out "
                           f"{Path(shown).parent.parent / 'labels.csv'}).")
        return relative

    def done(self) -> set[str]:
        """The items (as written in the table) that already have a label."""
        return {row[self.key] for row in self.rows if row.get(LABEL)}

    def add(self, item: str, label: str) -> None:
        """Append one answer and write the file."""
        self.rows.append({self.key: item, LABEL: label})
        self.save()

    def undo(self, items: set[str]) -> str | None:
        """Remove the last row whose item is one of ``items`` (answers given on the page), write the file, and
        return its item; None when there is none."""
        for position in range(len(self.rows) - 1, -1, -1):
            if self.rows[position][self.key] in items:
                removed = self.rows.pop(position)
                self.save()
                return removed[self.key]
        return None

    def save(self) -> None:
        """The table, rewritten whole and atomically."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        try:
            write_text(self.out, buffer.getvalue())
        except OSError as exc:
            raise RunError(f"Could not write {self.out}: {exc.strerror or exc}. Check that its folder is writable "
                           "and has space; the answers given so far are in it.") from None


def read_table(out: Path, key: str) -> tuple[list[str], list[dict]]:
    """The columns and rows of an existing labels.csv, which must have the ``key`` and ``label`` columns."""
    try:
        with open(out, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"--out {out} exists but could not be read as a CSV table ({exc}). Choose another --out, "
                        "or fix the file: labelling resumes from its rows.") from None
    missing = [c for c in (key, LABEL) if c not in columns]
    if missing:
        raise DataError(f"--out {out} exists but has no {' or '.join(repr(c) for c in missing)} column (it has "
                        f"{', '.join(columns) or 'none'}). Labelling resumes from a labels.csv it wrote; choose "
                        "another --out for a new one.")
    return columns, rows
