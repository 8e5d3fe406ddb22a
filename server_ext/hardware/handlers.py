"""Routes of the hardware capability."""

from __future__ import annotations

from ..handlers import NotebenchHandler


class HardwareRoute(NotebenchHandler):
    """The hardware routes' ``?kernel_name=``: whose environment's torch facts to use."""

    auth_area = "hardware"

    def kernel_name(self) -> str | None:
        return self.get_query_argument("kernel_name", None) or None


class HardwareHandler(HardwareRoute):
    """``GET hardware[?kernel_name=]``: the profile."""

    async def get(self) -> None:
        self.write_json(await self.services.hardware.profile(self.kernel_name()))


class RecommendationsHandler(HardwareRoute):
    """``GET hardware/recommendations[?kernel_name=]``: settings derived from the profile."""

    async def get(self) -> None:
        self.write_json(await self.services.hardware.recommendations(self.kernel_name()))


class BenchmarkHandler(HardwareRoute):
    """``POST hardware/benchmark[?kernel_name=]`` starts a run (202); ``GET`` tells its
    state or result."""

    execute_methods = frozenset({"POST"})

    async def get(self) -> None:
        self.write_json(await self.services.hardware.benchmark_status(self.kernel_name()))

    async def post(self) -> None:
        self.require_writable()
        run = await self.services.hardware.start_benchmark(self.kernel_name())
        self.set_header("Location", self.request.path)
        self.write_json(run, status=202)


def hardware_routes() -> list[tuple[str, type]]:
    return [
        (r"hardware", HardwareHandler),
        (r"hardware/recommendations", RecommendationsHandler),
        (r"hardware/benchmark", BenchmarkHandler),
    ]
