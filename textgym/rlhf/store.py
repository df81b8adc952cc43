"""An append-only SQLite store of preference pairs and the answers given to them.

Two tables, only ever inserted into:

* ``pairs``: ``pair_id`` (a hash of prompt and both candidates, so the same pair added twice is
  one pair), ``prompt``, ``a``, ``b``, ``source``, ``meta`` (JSON), ``created``;
* ``answers``: one row per (pair, annotator): ``choice`` is ``"A"``, ``"B"``, ``"tie"`` or
  ``"skip"``. The first answer counts; a resubmitted answer (a double click, a retried request,
  a reloaded page) is ignored, so nothing is double-counted.

The database runs in WAL mode with ``synchronous=FULL`` and every answer is committed in its own
transaction before the call returns: a killed server loses nothing that was acknowledged, and
collection resumes at the first unanswered pair.

Example:
    >>> import tempfile, os
    >>> store = PreferenceStore(os.path.join(tempfile.mkdtemp(), "prefs.sqlite"))
    >>> pid = store.add_pair("Say hi.", "Hello!", "Go away.")
    >>> store.add_pair("Say hi.", "Hello!", "Go away.") == pid  # idempotent
    True
    >>> store.answer(pid, "A"), store.answer(pid, "B")  # the second answer is ignored
    (True, False)
    >>> store.progress()
    {'total': 1, 'answered': 1, 'pending': 0, 'A': 1, 'B': 0, 'tie': 0, 'skip': 0, 'imported': 0}
    >>> [(p.chosen, p.rejected) for p in store.preferences()]
    [('Hello!', 'Go away.')]
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from textgym.io import json_lines

__all__ = ["CHOICES", "Pair", "Preference", "PreferenceStore", "pair_id"]

CHOICES = ("A", "B", "tie", "skip")
IMPORT_PREFIX = "import:"  # annotator (and source) of imported answers
DEFAULT_ANNOTATOR = "default"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id),
    annotator TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'skip')),
    created REAL NOT NULL,
    UNIQUE (pair_id, annotator)
);
CREATE TRIGGER IF NOT EXISTS pairs_append_only_u BEFORE UPDATE ON pairs
    BEGIN SELECT RAISE(ABORT, 'pairs are append-only'); END;
CREATE TRIGGER IF NOT EXISTS pairs_append_only_d BEFORE DELETE ON pairs
    BEGIN SELECT RAISE(ABORT, 'pairs are append-only'); END;
CREATE TRIGGER IF NOT EXISTS answers_append_only_u BEFORE UPDATE ON answers
    BEGIN SELECT RAISE(ABORT, 'answers are append-only'); END;
CREATE TRIGGER IF NOT EXISTS answers_append_only_d BEFORE DELETE ON answers
    BEGIN SELECT RAISE(ABORT, 'answers are append-only'); END;
"""


# A pair is imported when an import created it (its source) or labelled it (an import annotator); an import given
# its own annotator name (``annotator="alice"``) is known by the source.
_NOT_IMPORTED = ("(substr(p.source, 1, 7) != 'import:' AND NOT EXISTS (SELECT 1 FROM answers i WHERE "
                 "i.pair_id = p.pair_id AND substr(i.annotator, 1, 7) = 'import:'))")


def _lines(handle: Any, path: Path) -> Iterator[str]:
    """The lines of a file opened in binary mode; bad UTF-8 raises ValueError naming the file and line."""
    for line_no, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}:{line_no}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


def pair_id(prompt: str, a: str, b: str) -> str:
    """A stable id for a pair: the same texts always give the same id.

    Example:
        >>> pair_id("p", "x", "y") == pair_id("p", "x", "y") != pair_id("p", "y", "x")
        True
    """
    digest = hashlib.sha256(json.dumps([prompt, a, b], ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class Pair:
    """One stored pair of candidates for a prompt."""

    pair_id: str
    prompt: str
    a: str
    b: str
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Preference:
    """One usable answer: ``chosen`` beat ``rejected`` (or they tie)."""

    prompt: str
    chosen: str
    rejected: str
    tie: bool = False
    pair_id: str = ""


class PreferenceStore:
    """The preference database at ``path`` (created on first use).

    Args:
        path: SQLite file. Connections are opened per call, so one store can serve the threads
            of a web server.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            from textgym.filekinds import identify

            raise IsADirectoryError(f"preference store {self.path} is a folder ({identify(self.path).what}); give an "
                                    "SQLite file name (e.g. preferences.sqlite)")
        self._check_existing()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(self._connect()) as con:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ValueError(f"preference store {self.path}: SQLite refused WAL mode (got {mode!r})")
                con.executescript(_SCHEMA)
                con.commit()
                self._check_schema(con)
        except sqlite3.DatabaseError as err:
            raise ValueError(f"preference store {self.path} is not a textgym preference database ({err}); "
                             "give a new file name or one written by textgym rlhf") from None

    def _check_existing(self) -> None:
        """An existing file must be a textgym preference database (or empty), checked read-only before any write."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        from textgym.filekinds import require

        require(self.path, ("sqlite",), "preference store", "an SQLite preference database (or a new file name)")
        try:
            with closing(sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)) as con:
                tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables & {"pairs", "answers"}:
                    self._check_schema(con)  # a table of the same name that is not textgym's
        except sqlite3.DatabaseError as err:
            raise ValueError(f"preference store {self.path} is not a textgym preference database ({err}); "
                             "give a new file name or one written by textgym rlhf") from None
        if tables and not tables & {"pairs", "answers"}:
            raise ValueError(f"preference store {self.path} is an SQLite database of another program (tables "
                             f"{sorted(tables)[:5]}), not a textgym preference store; use another file")

    def _check_schema(self, con: sqlite3.Connection) -> None:
        """A file that already had other tables named ``pairs`` / ``answers`` is refused now."""
        for table, needed in (("pairs", {"seq", "pair_id", "prompt", "a", "b", "source", "meta", "created"}),
                              ("answers", {"seq", "pair_id", "annotator", "choice", "created"})):
            columns = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
            if not needed <= columns:
                raise ValueError(f"preference store {self.path} has a table {table!r} that is not textgym's "
                                 f"(missing columns {sorted(needed - columns)}); use another file")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0)
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    # --- writing -----------------------------------------------------------------------
    def add_pair(self, prompt: str, a: str, b: str, *, source: str = "",
                 meta: dict[str, Any] | None = None) -> str:
        """Store a pair (once; adding the same texts again changes nothing). Returns its id."""
        return self.add_pairs([(prompt, a, b)], source=source, metas=[meta or {}])[0]

    def add_pairs(self, items: Iterable[tuple[str, str, str]], *, source: str = "",
                  metas: Iterable[dict[str, Any]] | None = None) -> list[str]:
        """Store many ``(prompt, a, b)`` pairs in one transaction. Returns their ids."""
        items = list(items)
        metas = list(metas) if metas is not None else [{}] * len(items)
        if len(metas) != len(items):
            raise ValueError(f"got {len(metas)} metas for {len(items)} pairs")
        ids, rows, now = [], [], time.time()
        for k, ((prompt, a, b), meta) in enumerate(zip(items, metas)):
            for name, text in (("prompt", prompt), ("a", a), ("b", b)):
                if not isinstance(text, str):
                    raise TypeError(f"pair {k}: {name} must be a str, got {type(text).__name__}")
            pid = pair_id(prompt, a, b)
            ids.append(pid)
            rows.append((pid, prompt, a, b, source, json.dumps(meta, ensure_ascii=False), now))
        with closing(self._connect()) as con, con:
            con.executemany("INSERT OR IGNORE INTO pairs (pair_id, prompt, a, b, source, meta, created)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return ids

    def answer(self, pair_id: str, choice: str, annotator: str = DEFAULT_ANNOTATOR) -> bool:
        """Record an answer, committed before returning.

        Returns:
            True if stored, False if this annotator had already answered the pair (the earlier
            answer stands).

        Raises:
            ValueError: Unknown choice, or no such pair.
        """
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        with closing(self._connect()) as con, con:
            if con.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone() is None:
                raise ValueError(f"no pair with id {pair_id!r} in {self.path}")
            cur = con.execute("INSERT OR IGNORE INTO answers (pair_id, annotator, choice, created)"
                              " VALUES (?, ?, ?, ?)", (pair_id, annotator, choice, time.time()))
            return cur.rowcount == 1

    def import_jsonl(self, path: str | os.PathLike, annotator: str | None = None) -> tuple[int, int]:
        """Load ``{"prompt", "chosen", "rejected"}`` lines as answered pairs (chosen = A).

        A preference is identified by its content (prompt, chosen, rejected), never by the file: importing
        the same pairs again, from this file or another, adds nothing. Returns ``(lines read, answers added)``.

        Raises:
            ValueError: A line is not JSON or lacks a field (names the file and line).
        """
        path = Path(path)
        who = annotator or f"{IMPORT_PREFIX}{path.name}"
        items, n_added = [], 0
        from textgym.filekinds import require

        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist or is not a file")
        require(path, ("jsonl-preferences", "jsonl", "json", "empty-file"), "rlhf import",
                "a JSONL file of {prompt, chosen, rejected} lines")
        with path.open("rb") as fh:
            for line_no, row in json_lines(_lines(fh, path), path):
                missing = [k for k in ("prompt", "chosen", "rejected")
                           if not isinstance(row, dict) or not isinstance(row.get(k), str)]
                if missing:
                    raise ValueError(f"{path}:{line_no}: needs string fields prompt, chosen, "
                                     f"rejected; missing or not a string: {missing}")
                if row["chosen"] == row["rejected"]:
                    raise ValueError(f"{path}:{line_no}: chosen and rejected are the same text; a preference "
                                     "needs two different candidates")
                items.append((row["prompt"], row["chosen"], row["rejected"]))
        pids = self.add_pairs(items, source=f"{IMPORT_PREFIX}{path.name}")
        # A preference is its content: a pair already imported (from any file, under any name) is skipped.
        done = {r[0] for r in self._rows("SELECT DISTINCT a.pair_id FROM answers a JOIN pairs p ON p.pair_id = a.pair_id"
                                         " WHERE NOT (" + _NOT_IMPORTED + ")")}
        for pid in dict.fromkeys(pids):
            if pid not in done:
                n_added += self.answer(pid, "A", who)
        return len(items), n_added

    # --- reading -----------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with closing(self._connect()) as con:
            return con.execute(sql, args).fetchall()

    def pairs(self) -> list[Pair]:
        """Every pair, in the order added."""
        rows = self._rows("SELECT pair_id, prompt, a, b, source, meta FROM pairs ORDER BY seq")
        return [Pair(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def pending(self, annotator: str = DEFAULT_ANNOTATOR, limit: int | None = None) -> list[Pair]:
        """Pairs this annotator has not answered yet, in the order added."""
        sql = ("SELECT pair_id, prompt, a, b, source, meta FROM pairs p WHERE NOT EXISTS "
               "(SELECT 1 FROM answers x WHERE x.pair_id = p.pair_id AND x.annotator = ?) AND " + _NOT_IMPORTED +
               " ORDER BY seq")
        rows = self._rows(sql + (f" LIMIT {int(limit)}" if limit is not None else ""), (annotator,))
        return [Pair(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def answers(self) -> list[tuple[str, str, str]]:
        """Every answer as ``(pair_id, annotator, choice)``, in the order given."""
        return [tuple(r) for r in self._rows("SELECT pair_id, annotator, choice FROM answers ORDER BY seq")]

    def progress(self, annotator: str = DEFAULT_ANNOTATOR) -> dict[str, int]:
        """Counts for one annotator: pairs to label (``total``), answered, pending, each choice.

        Imported pairs arrive labelled: they count under ``imported`` (for an import annotator,
        under their own answers), never as pending for a person.
        """
        if annotator.startswith(IMPORT_PREFIX):
            total = self._rows("SELECT COUNT(*) FROM pairs")[0][0]
        else:
            total = self._rows("SELECT COUNT(*) FROM pairs p WHERE " + _NOT_IMPORTED)[0][0]
        counts = dict(self._rows("SELECT x.choice, COUNT(*) FROM answers x JOIN pairs p ON p.pair_id = x.pair_id "
                                 "WHERE x.annotator = ? GROUP BY x.choice", (annotator,)))
        answered = sum(counts.values())
        imported = self._rows("SELECT COUNT(*) FROM pairs p WHERE NOT " + _NOT_IMPORTED)[0][0]
        return {"total": total, "answered": answered, "pending": max(0, total - answered),
                **{c: counts.get(c, 0) for c in CHOICES}, "imported": imported}

    def preferences(self, include_ties: bool = True) -> list[Preference]:
        """Answers usable for training (skips dropped), one per answer, in the order given."""
        rows = self._rows("SELECT p.pair_id, p.prompt, p.a, p.b, x.choice FROM answers x JOIN pairs p "
                          "ON p.pair_id = x.pair_id WHERE x.choice != 'skip' ORDER BY x.seq")
        out = []
        for pid, prompt, a, b, choice in rows:
            if choice == "tie" and not include_ties:
                continue
            chosen, rejected = (b, a) if choice == "B" else (a, b)
            out.append(Preference(prompt, chosen, rejected, choice == "tie", pid))
        return out

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs())

    def __repr__(self) -> str:
        return f"<PreferenceStore {str(self.path)!r}>"
