"""``python -m notebench.server``, the same as ``jupyter notebench``: a Jupyter server with
notebench, launched as its app.

``--help-all`` lists every option of notebench's configurable classes with its help and
``--generate-config`` writes them to ``jupyter_notebench_config.py`` in the Jupyter config
folder (read by the extension); ``jupyter server --help-all`` shows the server's own classes
only (it answers before any extension is loaded).
"""

from .app import main

if __name__ == "__main__":
    main()
