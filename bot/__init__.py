"""Everything with a side effect: the CLI, the Slack app, rendering, storage and the monitor."""

# The one place the version is written: pyproject.toml reads it from here when the package is built,
# and `dmarcbot --version` prints it without importlib.metadata, which reads every installed
# distribution's metadata (a tenth of a second or more, at every start).
__version__ = "0.1.0"
