"""Training frameworks reporting to notebench: ``lightning`` and ``huggingface``.

Each submodule imports its framework, so it is importable only where that framework is
installed (``pip install 'notebench[lightning]'`` / ``'notebench[huggingface]'``); without
it the import raises an ``ImportError`` that names the extra. Importing this package
imports neither. docs/integrations.md describes the mapping.
"""

from __future__ import annotations

__all__ = ["huggingface", "lightning"]
