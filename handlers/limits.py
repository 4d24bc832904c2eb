"""Hard caps on what an outsider can make the bot do: one place, each with the reason for its value.

Anyone can publish a DNS record, mail a report to a `rua=` address or paste headers into `why`.
Each cap below bounds the work one such input can cause; every refusal names the cap that applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# --- DKIM (RFC 6376, RFC 8301) ------------------------------------------------------------------

# RFC 8301 §3.2 asks verifiers to handle RSA keys of 1,024 to 4,096 bits; 8,192 leaves room for
# any signer in use. dkimpy verifies with Python's pow() while holding the GIL, and a
# 40,000-bit modulus and exponent stalls every thread for minutes, so a larger key is refused
# unverified, before dkimpy reads it.
MAX_RSA_KEY_BITS = 8192
# Signers use 65,537 (RFC 8017 §3.1 only requires an odd e >= 3); the cost of verifying grows with
# the exponent's length, so a longer one is refused the same way.
MAX_RSA_EXPONENT = 2**32

# The longest b= a key within MAX_RSA_KEY_BITS produces: 1,024 bytes of signature in base64
# (RFC 6376 §3.5), whitespace removed. dkimpy's str2int is quadratic in the length, so a longer
# value is refused before it is decoded.
MAX_DKIM_B_CHARS = 4 * ((MAX_RSA_KEY_BITS // 8 + 2) // 3)  # 1,368
# The longest bh=: a SHA-256 digest (32 bytes) in base64 (RFC 6376 §3.7, RFC 8301 §3.1).
MAX_DKIM_BH_CHARS = 44

# DKIM-Signatures verified per message. A message rarely carries more than three (the author's
# domain, a provider, a list); the rest are named unverified.
MAX_DKIM_SIGNATURES = 5
# Verification runs on a worker thread; with the caps above a signature takes milliseconds. The
# budget is a backstop: past it the signature is reported as not verified instead of waited for.
VERIFY_SECONDS_PER_SIGNATURE = 5.0

# --- DMARC --------------------------------------------------------------------------------------

# External rua=/ruf= destinations whose authorization record (RFC 9989 §3.3, <domain>._report.
# _dmarc.<destination>) is looked up. Each costs a query or more; a record naming 2,000 would cost
# thousands. The rest are named in the finding as not checked.
MAX_REPORT_AUTHORIZATION_LOOKUPS = 10

# --- Aggregate reports (RFC 9990) ---------------------------------------------------------------

# A record's <count> must fit in 32 bits: no receiver sends four billion messages from one source
# in one report, and sums of such counts must stay inside SQLite's 64-bit integers.
MAX_REPORT_RECORD_COUNT = 2**32 - 1
# DMARC aggregate reporting did not exist before 2012 (the DMARC.org specification's first
# release); a date range starting earlier is not a real report.
EARLIEST_REPORT_DATE = datetime(2012, 1, 1, tzinfo=UTC)
# A report's range may end a little ahead of our clock (the reporter's clock, time zones), never
# more than a day.
MAX_REPORT_FUTURE = timedelta(days=1)

# --- Mail transport: MX hosts, MTA-STS, TLS-RPT ---------------------------------------------------

# MX hosts whose addresses and reverse names are checked. A domain rarely lists more than five;
# a hostile zone listing hundreds would cost three lookups or more for each. The rest are named
# as not checked.
MAX_MX_HOSTS_CHECKED = 10
# Addresses per MX host whose reverse name is checked (each costs a PTR lookup and a forward one).
MAX_ADDRESSES_PER_MX = 4
# Reverse names per address followed back to their addresses: one is the rule (RFC 1912 §2.1);
# a few more are tolerated, the rest ignored.
MAX_REVERSE_NAMES = 3
# TLSA records read per MX host (RFC 7672): one per certificate or key in use, two during a
# rollover; the rest of a larger set are counted, not judged. One TLSA question is asked per
# checked MX host (MAX_MX_HOSTS_CHECKED), never more.
MAX_TLSA_RECORDS = 8
# An MTA-STS policy is a few hundred bytes (RFC 8461 §3.2); RFC 8461 §3.3 lets senders cap the
# size they read, and 64 KB is the cap common senders use.
MAX_HTTPS_BODY = 64 * 1024
# HTTP response headers read before the body: a server sending more is not serving a policy.
MAX_HTTPS_HEADERS = 16 * 1024
# Seconds for the whole HTTPS fetch (connect, TLS, request, response). RFC 8461 §3.3 asks senders
# to use a short timeout; a check must not wait on a stalled policy host.
HTTPS_TIMEOUT = 5.0
# MX patterns read from one MTA-STS policy: a real one names a handful.
MAX_MTA_STS_MX_PATTERNS = 50
# The STARTTLS probe (`check --smtp`): MX hosts probed, each at its first addresses only. A
# stranger's MX list must not make the check open dozens of connections.
MAX_SMTP_HOSTS_PROBED = 5
MAX_SMTP_ADDRESSES_PER_HOST = 2
# Seconds for one host's whole dialogue (connect, greeting, EHLO, STARTTLS, handshake). RFC 5321
# §4.5.3.2 lets a sender wait minutes; a check waiting on a tarpit must not.
SMTP_TIMEOUT = 10.0
# Bytes read from one host in all: a greeting and an EHLO reply are a few hundred bytes (a reply
# line is at most 512, RFC 5321 §4.5.3.1.5); a server sending more is not answering in SMTP.
MAX_SMTP_BYTES = 16 * 1024
# A BIMI logo (SVG Tiny PS) is at most 32 KB: the size the BIMI draft recommends and mailbox
# providers enforce; a larger file is refused, so it is also the most read of one.
MAX_BIMI_LOGO_BYTES = 32 * 1024


__all__ = [
    "EARLIEST_REPORT_DATE",
    "HTTPS_TIMEOUT",
    "MAX_ADDRESSES_PER_MX",
    "MAX_BIMI_LOGO_BYTES",
    "MAX_DKIM_BH_CHARS",
    "MAX_DKIM_B_CHARS",
    "MAX_DKIM_SIGNATURES",
    "MAX_HTTPS_BODY",
    "MAX_HTTPS_HEADERS",
    "MAX_MTA_STS_MX_PATTERNS",
    "MAX_MX_HOSTS_CHECKED",
    "MAX_REPORT_AUTHORIZATION_LOOKUPS",
    "MAX_REPORT_FUTURE",
    "MAX_REPORT_RECORD_COUNT",
    "MAX_REVERSE_NAMES",
    "MAX_RSA_EXPONENT",
    "MAX_RSA_KEY_BITS",
    "MAX_SMTP_ADDRESSES_PER_HOST",
    "MAX_SMTP_BYTES",
    "MAX_SMTP_HOSTS_PROBED",
    "MAX_TLSA_RECORDS",
    "SMTP_TIMEOUT",
    "VERIFY_SECONDS_PER_SIGNATURE",
]
