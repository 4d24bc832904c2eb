"""The Slack listeners, one module per surface: commands, buttons, modals, shortcuts, App Home."""
