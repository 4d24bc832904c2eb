"""Everything with a side effect: the CLI, the Slack app, rendering, storage and the monitor."""
