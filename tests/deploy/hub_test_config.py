"""The test site's overrides of deploy/jupyterhub_config.py (``NOTEBENCH_HUB_EXTRA_CONFIG``):
anyone may log in (DummyAuthenticator), servers run as the Hub's user with a home of their
own, and a ``test-driver`` service creates users, starts servers and issues their tokens."""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821

c.JupyterHub.authenticator_class = "jupyterhub.auth.DummyAuthenticator"
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = os.environ["NOTEBENCH_TEST_HOMES"] + "/{username}"
# the tests run as root; the servers run as the Hub's user
c.Spawner.args.append("--allow-root")
c.JupyterHub.services.append({
    "name": "test-driver", "api_token": os.environ["NOTEBENCH_TEST_DRIVER_TOKEN"]})
c.JupyterHub.load_roles.append({
    "name": "test-driver", "services": ["test-driver"],
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]})
