"""The Lab-only extensions (notebench's, jupytext's) stay out of Voila pages unless the user
chose Voila's extensions."""

from __future__ import annotations

from traitlets.config import Config

from notebench.server.app import LAB_ONLY_EXTENSIONS, keep_lab_extension_out_of_voila


def test_denied_by_default() -> None:
    config = Config()
    keep_lab_extension_out_of_voila(config)
    assert config.VoilaConfiguration.extension_denylist == ["notebench", "jupyterlab-jupytext"]
    assert list(LAB_ONLY_EXTENSIONS) == config.VoilaConfiguration.extension_denylist


def test_a_users_own_lists_win() -> None:
    config = Config()
    config.VoilaConfiguration.extension_allowlist = ["@jupyter-widgets/jupyterlab-manager"]
    keep_lab_extension_out_of_voila(config)
    assert "extension_denylist" not in config.VoilaConfiguration
    config = Config()
    config.VoilaConfiguration.extension_denylist = []
    keep_lab_extension_out_of_voila(config)
    assert config.VoilaConfiguration.extension_denylist == []
