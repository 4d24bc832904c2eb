"""The one exception hierarchy: every error dmarcbot raises on purpose, and the kinds it handles.

Each carries, as its message, the sentence a user is shown: what was wrong, and where it helps,
what would be right.

    DmarcbotError
    ├── BadInput (ValueError)           what a person typed, pasted or shared cannot be used:
    │   │                               answered at once (exit 2, an ephemeral message, a form field)
    │   ├── InvalidDomain               handlers.dns.domain_name
    │   ├── InvalidSelector             handlers.domain.dkim_keys
    │   ├── MessageError                handlers.message.parse
    │   ├── FixInputError               handlers.fixes.records (names the form field)
    │   └── FileRefused                 bot.slack.files
    ├── UnreadableValue (ValueError)    a button value or view metadata that we did not write
    │                                   (forged, or from an older version): "press Re-check"
    ├── ConfigurationError (ValueError) a setting is wrong: refuses to start, listing every problem
    │   ├── SettingsError               bot.config
    │   ├── NameserverError             handlers.dns.resolver
    │   └── DatabaseUnavailable         bot.store.database: DMARCBOT_DB cannot be opened or written
    └── ReportError                     a report file or mail is refused, the reason stored and shown
        ├── ReportRefused               handlers.reports.archive: a cap or a safety rule
        └── ReportInvalid               handlers.reports.archive: not a valid report

Each kind is one the code handles differently; a subclass exists only where a caller catches it
narrowly (a domain argument, a selector list, a pasted message). Exceptions from libraries are
translated into these at the boundary that knows what the user asked for.
"""

from __future__ import annotations


class DmarcbotError(Exception):
    """Base of every error dmarcbot raises on purpose; str(error) is fit to show a user as is."""


class BadInput(DmarcbotError, ValueError):
    """Input from a person (a command line, a slash command, a form, a shared file) that cannot be
    used; the message says what was wrong and what would be right."""


class UnreadableValue(DmarcbotError, ValueError):
    """A button value or view metadata that does not read back as what we wrote."""


class ConfigurationError(DmarcbotError, ValueError):
    """A setting is wrong; the message names the setting and what it must be."""


class ReportError(DmarcbotError):
    """A report refused; the message is fit to show a user as is."""
