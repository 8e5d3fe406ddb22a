"""A cell that fails without an error output still gives the job the kernel's error."""

from __future__ import annotations


async def test_unknown_line_magic_fails_with_the_kernels_usage_error(jobs_api, write_notebook,
                                                                     api):
    # IPython prints a UsageError to stderr and names it only in the execute reply
    path = write_notebook("magic", ["x = 1", "%notamagic", "print('never')"], "n = 1")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "failed"
    error = done["error"]
    assert error["ename"] == "UsageError"
    assert "notamagic" in error["evalue"] and "not found" in error["evalue"]
    # cells: parameters, injected parameters, x = 1, the magic
    assert error["cell_index"] == 3
    assert done["reason"] == f"UsageError: {error['evalue']}"
    output = (await api("GET", f"lifecycle/jobs/{job['id']}/output")).body
    assert not any(o.get("output_type") == "error" for c in output["cells"]
                   for o in c.get("outputs") or [])
