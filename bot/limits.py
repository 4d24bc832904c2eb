"""Caps on what the bot itself accepts from outside: HTTP request bodies, the import file.

One place, each with the reason for its value. The caps on aggregate reports are
`handlers.reports.archive.ReportLimits`; README's "Limits" lists both.
"""

from __future__ import annotations

MiB = 1024 * 1024

# Slack's requests are small: a slash command is a few kB, the largest interaction payload (a view
# submission carrying a 3,000-character input and the whole view) a few tens of kB. 1 MiB leaves
# wide room, and bounds what anyone on the internet can make us hold before the signature check.
MAX_REQUEST_BODY_BYTES = 1 * MiB
# A client that stops sending mid-request holds a thread; this frees it.
REQUEST_TIMEOUT_SECONDS = 30

# `dmarcbot import`: an export of 100,000 watches is about 15 MB; four times that is still a file
# a person made with `dmarcbot export`, and it is read whole.
MAX_IMPORT_BYTES = 64 * MiB
# An export nests 4 deep (the object, its watches list, a watch, its selectors). Deeper input is
# not an export, and a deep enough nest makes the JSON parser recurse until the stack gives out.
MAX_IMPORT_DEPTH = 8
