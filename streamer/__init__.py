"""Serve SQL reports as streamed downloads from a child process per download."""

__version__ = "0.1.0"
