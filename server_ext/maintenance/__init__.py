"""Maintenance of a workspace's store: backup, restore, doctor (``python -m
notebench.server.maintenance``, behind ``notebench backup|restore|doctor``), and the
server's periodic backups (``periodic``). docs/backup.md describes them.
"""
