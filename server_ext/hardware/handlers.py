"""Routes of the hardware capability."""

from __future__ import annotations

from ..handlers import NotebenchHandler


class HardwareHandler(NotebenchHandler):
    """``GET hardware``: the profile."""

    auth_area = "hardware"

    async def get(self) -> None:
        self.write_json(await self.services.hardware.profile())


class RecommendationsHandler(NotebenchHandler):
    """``GET hardware/recommendations``: settings derived from the profile."""

    auth_area = "hardware"

    async def get(self) -> None:
        self.write_json(await self.services.hardware.recommendations())


class BenchmarkHandler(NotebenchHandler):
    """``POST hardware/benchmark`` starts a run (202); ``GET`` tells its state or result."""

    auth_area = "hardware"
    execute_methods = frozenset({"POST"})

    async def get(self) -> None:
        self.write_json(await self.services.hardware.benchmark_status())

    async def post(self) -> None:
        self.require_writable()
        run = await self.services.hardware.start_benchmark()
        self.set_header("Location", self.request.path)
        self.write_json(run, status=202)


def hardware_routes() -> list[tuple[str, type]]:
    return [
        (r"hardware", HardwareHandler),
        (r"hardware/recommendations", RecommendationsHandler),
        (r"hardware/benchmark", BenchmarkHandler),
    ]
