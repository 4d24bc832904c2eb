"""The Slack app: the Bolt factory, the server, routing, ids, files and request turns."""
