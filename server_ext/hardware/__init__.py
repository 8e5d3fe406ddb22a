"""The hardware capability of the server."""
