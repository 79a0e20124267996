"""PASS / WARN / FAIL in one place, with everything the pipeline derives from a status: the order
candidates rank in, the number `dvc metrics diff` shows, the marker the report prints and the
colour the pictures draw. The report's markers are plain ASCII so any console prints them."""
from __future__ import annotations

from enum import Enum

GOOD, BAD, LOOK = "[+]", "[-]", "[!]"  # better, worse, look here


class Status(str, Enum):
    """A verdict. A str, so it is stored in JSON and compared with "PASS" as it always was."""

    FAIL = "FAIL"
    WARN = "WARN"
    PASS = "PASS"

    __str__ = str.__str__  # "PASS" in f-strings and messages, not "Status.PASS"
    __format__ = str.__format__

    @property
    def rank(self) -> int:
        """Higher is better: candidates are ranked by verdict first."""
        return _FACTS[self][0]

    @property
    def number(self) -> int:
        """1 / 0 / -1 for `dvc metrics diff`, where only numbers diff well."""
        return _FACTS[self][1]

    @property
    def marker(self) -> str:
        return _FACTS[self][2]

    @property
    def colour(self) -> str:
        """The pictures' colour for this verdict."""
        return _FACTS[self][3]


_FACTS = {Status.PASS: (2, 1, GOOD, "#2e7d32"), Status.WARN: (1, 0, LOOK, "#ef6c00"),
          Status.FAIL: (0, -1, BAD, "#c62828")}
