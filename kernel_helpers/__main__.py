"""``python -m notebench``: the notebench command line."""

from notebench.cli import main

raise SystemExit(main())
