"""The robustness suite's ledger: each test records the cases it tried and their outcome.

    record("bad input", "empty prompt on /generate", "refused: 'Write a prompt ...'")

At the end of the run pytest prints the table (item, case, outcome, count) and, when
`GLIDE_ROBUST_TABLE` names a file, writes it there as Markdown. Record a case only after
its assertions passed, so the table lists outcomes that were checked.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TABLE_ENV = "GLIDE_ROBUST_TABLE"

_lock = threading.Lock()
_cases: dict[tuple[str, str], list] = {}  # (item, case) -> [outcome, count]


def record(item: str, case: str, outcome: str, count: int = 1) -> None:
    """Count `count` tries of `case` under `item` (e.g. "bad input"), all with `outcome`."""
    with _lock:
        entry = _cases.setdefault((item, case), [outcome, 0])
        entry[0] = outcome
        entry[1] += count


def markdown() -> str:
    rows = ["| item | case | outcome | count |", "|---|---|---|---|"]
    for (item, case), (outcome, count) in sorted(_cases.items()):
        cells = (text.replace("|", "\\|").replace("\n", " ") for text in (item, case, outcome))
        rows.append("| {} | {} | {} | {} |".format(*cells, count))
    total = sum(count for _, count in _cases.values())
    rows.append(f"\n{len(_cases)} cases, {total} tries.")
    return "\n".join(rows)


def report(write_line) -> None:
    """Print the table through `write_line` and write it to $GLIDE_ROBUST_TABLE if set."""
    if not _cases:
        return
    write_line("robustness cases (tests/robust_cases.py):")
    for line in markdown().splitlines():
        write_line(line)
    target = os.environ.get(TABLE_ENV)
    if target:
        Path(target).write_text(markdown() + "\n", encoding="utf-8")
