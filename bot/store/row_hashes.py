"""A stable 64-bit hash of a stored report row's outcome and identifiers, for grouping rows fast.

The summary of a window sums every stored row with the same outcome and identifiers (sixteen
columns, bot.store.reports.RowKey). Grouping a million rows by sixteen text columns is a sort of
the million; grouping them by this one integer, read from an index, is not. Equal keys always
hash equal (the hash never depends on the process, unlike Python's `hash`); two different keys
sharing a hash is a 1 in 2^64 chance per pair (about 3 in 10^10 for 100,000 distinct rows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def row_hash(values: Sequence[object]) -> int:
    """The signed 64-bit hash (an SQLite INTEGER) of a row's key values, in RowKey's field order."""
    text = "\x1f".join("\x00" if value is None else str(value) for value in values)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)
