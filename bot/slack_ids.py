"""Every Slack action_id, callback_id and block_id the app uses, in one place.

Listeners and renderers import these names, so a button and the listener for it cannot disagree.
"""

COMMAND = "/dmarc"

# Buttons on a domain report
ACTION_RECHECK = "report_recheck"
ACTION_WATCH = "report_watch"
ACTION_FIX = "report_fix"

# Block ids on a domain report
BLOCK_REPORT_ACTIONS = "report_actions"

# Modals and shortcuts
CALLBACK_WHY_MODAL = "why_modal"
CALLBACK_WHY_SHORTCUT = "why_shortcut"
BLOCK_WHY_HEADERS = "why_headers"
ACTION_WHY_HEADERS = "why_headers_input"
