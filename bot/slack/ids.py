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

# Watches and alerts
BLOCK_ALERT_ACTIONS = "alert_actions"
BLOCK_WATCH_ACTIONS = "watch_actions"

# Fix it: the modal, its inputs (every input's action_id starts with FIX_INPUT_PREFIX, and its
# block_id is the same string), and the Verify button on a posted plan
CALLBACK_FIX_MODAL = "fixit_modal"
FIX_INPUT_PREFIX = "fixit_in_"
ACTION_FIX_VERIFY = "fixit_verify"
BLOCK_FIX_PLAN_ACTIONS = "fixit_plan_actions"

# Applying a plan: the Apply and Roll back buttons on a posted plan (in its actions block, beside
# Verify) and the confirmation modal they open
ACTION_FIX_APPLY = "fixit_apply"
ACTION_FIX_ROLLBACK = "fixit_rollback"
CALLBACK_APPLY_MODAL = "fixit_apply_modal"
