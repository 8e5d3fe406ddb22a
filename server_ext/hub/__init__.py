"""What a JupyterHub deployment of notebench runs beside the Hub (not in a user's server):
``prometheus_sd``, the Prometheus service discovery of every running user's notebench.
Needs ``jupyterhub`` installed, as the Hub's host has it."""
