"""Text from outside (DNS, a message, a report) made safe to print on a terminal.

A TXT record, a header or a report's org_name can hold ESC sequences that clear the screen,
recolour it, retitle the window or move the cursor, and so fake a verdict. Every control
character (C0, DEL, C1) and every bidirectional override is shown as a visible escape instead:
`\\x1b`, `\\u202e`. A newline and a tab are kept only where the output is several lines anyway.
"""

from __future__ import annotations

import re

# C0 but \t and \n, DEL, C1; and the Unicode bidi controls that reorder what a line appears to say
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters shown as escapes; with `one_line`, \\n and \\t too."""
    return (_UNSAFE_IN_A_LINE if one_line else _UNSAFE).sub(_visible, text)


__all__ = ["terminal_safe"]
