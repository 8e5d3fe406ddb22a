"""The runs tests reuse the job tests' server configuration, tiny notebooks and waiting."""

from tests.integration.jobs.conftest import (  # noqa: F401 (fixtures)
    TERMINAL,
    _no_job_outlives_its_test,
    jobs_api,
    jobs_config,
    jp_server_config,
    wait_for,
    write_notebook,
)
