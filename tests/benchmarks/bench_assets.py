"""Asset transfer benchmark: notebench upload/download vs ``cp``+``sync`` and the contents API.

    python tests/benchmarks/bench_assets.py [--size-mib 1024] [--repeats 3]
        [--chunk-sizes 65536,1048576] [--contents-repeats 1] [--files 100000]
        [--download-repeats 7] [--read-buffer-kib 1024] [--clients recv_into,splice]
        [--folder-files 8] [--skip-uploads] [--skip-downloads] [--skip-contents] [--skip-listing]
        [--tus-chunks-mib 0,64] [--skip-tus]

One notebench server subprocess per Tornado read-chunk size (``--chunk-sizes``, set with
``c.NotebenchAssetRegistry.upload_read_chunk_bytes``). A random file of ``--size-mib`` lives on the
same disk as the server's root. Measured, medians of ``--repeats`` runs:

- sha256 of the file in this process (reference);
- ``cp`` then ``sync <copy>`` of the same file (the disk's honest write speed), run right
  before each upload so both meet the disk in the same state;
- notebench raw upload (``POST assets/upload/artifacts``, the body sent with ``sendfile``,
  its sha256 checked by the server, fsync on), per chunk size;
- the same file through tus 1.0.0 on the resumable routes after each raw upload (each
  after a ``cp``+``sync`` of its own too): creation (``Upload-Metadata`` with the sha256),
  then ``PATCH`` chunks of ``--tus-chunks-mib`` (0: the whole file in one request,
  tus-js-client's default), each sent with ``sendfile``; the last one completes the upload
  (sha256 checked, registered);
- downloads, in a server of their own, of one registered copy of the file (in the page
  cache): notebench's ``GET assets/download/{id}`` and jupyter_server's ``/files/``,
  alternated run by run (``--download-repeats`` each, the order swapped every run), both
  read by the same raw-socket clients (``--clients``): ``recv_into`` a reused
  ``--read-buffer-kib`` buffer, and ``splice`` to ``/dev/null`` (no copy to user space:
  the server's own rate). The client's and the server's CPU (% of one core) are printed
  too: a path that keeps the client's core busy is client-bound. The load average is
  printed before and after (the machine may be shared);
- the file cut into ``--folder-files`` parts, registered as a folder asset and downloaded
  as a zip (MiB/s of files, CPU, server RSS growth);
- jupyter_server's contents API upload the way JupyterLab does it (1 MiB base64 JSON
  chunks, ``PUT /api/contents/<path>``), ``--contents-repeats`` runs;
- the server's peak RSS growth over notebench uploads, and over the downloads (sampled
  every 20 ms), and its worst event-loop lag during each kind of transfer
  (``_test/loop_lag``);
- ``--files`` files dropped into ``datasets/`` by hand, found by the scanner and hashed in
  the background, then ``GET assets/list/datasets`` first pages (default sort; by size;
  with a name filter), median and worst of 20.

Goals (the issue): upload >= 50 % of cp+sync and >= 6x the contents API, download >= 4x
``/files/``, RSS growth < 64 MiB, first page of 100,000 files < 100 ms.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from tests.benchmarks._common import (  # noqa: E402
    CpuMeter,
    api,
    fmt,
    log,
    machine_summary,
    print_table,
    running_server,
    wait_until,
)

MIB = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
BLOCK = MIB
GOALS = {"upload_vs_cp": 0.5, "upload_vs_contents": 6.0, "download_vs_files": 4.0,
         "rss_mib": 64.0, "first_page_ms": 100.0}


# -- helpers ---------------------------------------------------------------------------------


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(64 * MIB, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_speed(path: Path) -> float:
    start = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(4 * MIB), b""):
            digest.update(block)
    return path.stat().st_size / MIB / (time.perf_counter() - start)


def cp_sync(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)
    elapsed = time.perf_counter() - start
    dst.unlink()
    return src.stat().st_size / MIB / elapsed


def host_port(server: Any) -> tuple[str, int]:
    return "127.0.0.1", server.port


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def tus_upload(server: Any, src: Path, name: str, digest: str, chunk: int) -> float:
    """tus creation, then ``PATCH`` chunks of ``chunk`` bytes (0: one) by sendfile; MiB/s
    until the last chunk's answer (the upload completed and registered)."""
    size = src.stat().st_size
    chunk = chunk or size
    auth = f"Host: 127.0.0.1:{server.port}\r\nAuthorization: token {server.token}\r\n" \
           "Tus-Resumable: 1.0.0\r\n"
    meta = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in
                    (("filename", name), ("category", "artifacts"), ("sha256", digest)))
    with socket.create_connection(host_port(server)) as sock, src.open("rb") as handle:
        start = time.perf_counter()
        sock.sendall((f"POST {server.base_url}notebench/api/assets/uploads HTTP/1.1\r\n{auth}"
                      f"Upload-Length: {size}\r\nUpload-Metadata: {meta}\r\n"
                      "Content-Length: 0\r\n\r\n").encode())
        status, body = read_response(sock)
        if status != 201:
            raise RuntimeError(f"tus creation failed: {status} {body[:300]!r}")
        location = f"{server.base_url}notebench/api/assets/uploads/{json.loads(body)['id']}"
        for offset in range(0, size, chunk):
            count = min(chunk, size - offset)
            sock.sendall((f"PATCH {location} HTTP/1.1\r\n{auth}Upload-Offset: {offset}\r\n"
                          "Content-Type: application/offset+octet-stream\r\n"
                          f"Content-Length: {count}\r\n\r\n").encode())
            sock.sendfile(handle, offset, count)
            status, body = read_response(sock)
            if status != 204:
                raise RuntimeError(f"tus PATCH at {offset} failed: {status} {body[:300]!r}")
        elapsed = time.perf_counter() - start
    return size / MIB / elapsed


def upload(server: Any, src: Path, name: str, digest: str) -> tuple[float, dict[str, Any]]:
    """Raw streamed upload (body by sendfile); MiB/s and the asset."""
    size = src.stat().st_size
    head = (f"POST {server.base_url}notebench/api/assets/upload/artifacts?name={name} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nAuthorization: token {server.token}\r\n"
            f"Content-Type: application/octet-stream\r\nX-Content-SHA256: {digest}\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    with socket.create_connection(host_port(server)) as sock, src.open("rb") as handle:
        start = time.perf_counter()
        sock.sendall(head)
        sock.sendfile(handle)
        status, body = read_response(sock)
        elapsed = time.perf_counter() - start
    if status != 201:
        raise RuntimeError(f"upload failed: {status} {body[:300]!r}")
    return size / MIB / elapsed, json.loads(body)


class RawGet:
    """GETs over a raw socket; the body read by the same client for every server path.

    ``recv_into``: into one reused buffer (a copy to user space, nothing else);
    ``splice``: moved to ``/dev/null`` through a pipe, never copied to user space (Linux),
    so the client costs as little as it can and the server's own rate shows.
    """

    def __init__(self, server: Any, buffer_bytes: int) -> None:
        self.server = server
        self.buffer = bytearray(buffer_bytes)
        self.view = memoryview(self.buffer)
        self.pipe: tuple[int, int] | None = None
        self.null: int | None = None

    def close(self) -> None:
        for fd in (*(self.pipe or ()), self.null):
            if fd is not None:
                os.close(fd)

    def _request(self, sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
        server = self.server
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Authorization: token {server.token}\r\nConnection: close\r\n\r\n"
                     .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response")
            head += chunk
        head, body = head.split(b"\r\n\r\n", 1)
        status, headers = parse_head(head)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {headers} {body[:300]!r}")
        return status, headers, body

    def fetch(self, path: str, mode: str = "recv_into") -> tuple[float, float, int]:
        """(seconds, client CPU seconds, body bytes) of ``GET path`` (needs a length)."""
        with socket.create_connection(host_port(self.server)) as sock:
            start, cpu = time.perf_counter(), time.thread_time()
            _, headers, body = self._request(sock, path)
            if "content-length" not in headers:
                raise RuntimeError(f"GET {path}: no Content-Length")
            length = int(headers["content-length"])
            got = len(body)
            if mode == "splice":
                got += self._splice(sock, length - got)
            else:
                view = self.view
                while got < length:
                    count = sock.recv_into(view, min(len(view), length - got))
                    if not count:
                        break
                    got += count
            if got != length:
                raise ConnectionError(f"GET {path}: {got} of {length} bytes")
            return time.perf_counter() - start, time.thread_time() - cpu, got

    def _splice(self, sock: socket.socket, length: int) -> int:
        if self.pipe is None:
            self.pipe = os.pipe()
            with contextlib.suppress(OSError):  # up to /proc/sys/fs/pipe-max-size
                fcntl.fcntl(self.pipe[1], F_SETPIPE_SZ, len(self.buffer))
            self.null = os.open(os.devnull, os.O_WRONLY)
        read_end, write_end = self.pipe
        got = 0
        while got < length:
            count = os.splice(sock.fileno(), write_end, min(len(self.buffer), length - got))
            if not count:
                break
            got += count
            while count:
                count -= os.splice(read_end, self.null, count)  # type: ignore[arg-type]
        return got

    def fetch_until_closed(self, path: str) -> tuple[float, float, int]:
        """(seconds, client CPU seconds, bytes after the head) of a response without a
        length (a chunked body: its framing, about 10 bytes per piece, is counted)."""
        with socket.create_connection(host_port(self.server)) as sock:
            start, cpu = time.perf_counter(), time.thread_time()
            _, _, body = self._request(sock, path)
            got = len(body)
            while count := sock.recv_into(self.view):
                got += count
            return time.perf_counter() - start, time.thread_time() - cpu, got


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def contents_upload(server: Any, src: Path, rel: str) -> float:
    """JupyterLab's chunked upload: PUT /api/contents/<path>, 1 MiB base64 chunks."""
    size = src.stat().st_size
    conn = http.client.HTTPConnection(*host_port(server), timeout=300)
    name = rel.rsplit("/", 1)[-1]
    url = f"{server.base_url}api/contents/{rel}"
    headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    with src.open("rb") as handle:
        index = 1
        sent = 0
        while sent < size:
            block = handle.read(BLOCK)
            sent += len(block)
            chunk = -1 if sent >= size else index
            body = json.dumps({"type": "file", "format": "base64", "chunk": chunk,
                               "content": base64.b64encode(block).decode(), "name": name,
                               "path": rel})
            conn.request("PUT", url, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status not in (200, 201):
                raise RuntimeError(f"contents PUT chunk {index}: {response.status}")
            index += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return size / MIB / elapsed


class RssSampler:
    """Peak RSS of a process, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


def forget(server: Any, asset_id: str) -> None:
    """Delete an asset and purge it from the trash (frees the disk between runs)."""
    api(server, "DELETE", f"assets/{asset_id}")
    api(server, "DELETE", f"assets/trash/{asset_id}")


def asset_id(server: Any, name: str) -> str:
    """The id of the artifact called ``name``."""
    _, page = api(server, "GET", f"assets/list/artifacts?name={name}")
    [item] = [item for item in page["items"] if item["name"] == name]
    return item["id"]


def loop_lag(server: Any) -> float:
    status, body = api(server, "GET", "_test/loop_lag")
    return body["worst_lag_ms"] if status == 200 else float("nan")


# -- the phases ------------------------------------------------------------------------------


def transfers(args: argparse.Namespace, chunk: int, src: Path, digest: str,
              results: dict[str, Any], first: bool) -> None:
    """Uploads at one read-chunk size (and, the first time, the contents API)."""
    extra = [f"--NotebenchAssetRegistry.upload_read_chunk_bytes={chunk}",
             f"--NotebenchAssetRegistry.max_upload_bytes={src.stat().st_size * 2}"]
    with running_server(extra) as server:
        pid = server.proc.pid
        ups: list[float] = []
        tus: dict[int, list[float]] = {size: [] for size in args.tus_chunks}
        loop_lag(server)  # start the monitor
        time.sleep(0.5)
        loop_lag(server)
        lags: list[float] = []  # worst loop lag during notebench's uploads
        with RssSampler(pid) as rss:
            for run in range(args.repeats):
                # cp+sync right before each upload: the disk is compared in the same state
                results["cp_runs"].append(cp_sync(src, src.with_name("copy.bin")))
                loop_lag(server)
                speed, asset = upload(server, src, f"bench-{run}.bin", digest)
                ups.append(speed)
                log(f"chunk {chunk}: upload {run + 1}/{args.repeats}: {speed:.0f} MiB/s")
                if asset["sha256"] != digest:
                    raise RuntimeError("the server's sha256 differs")
                lags.append(loop_lag(server))
                forget(server, asset["id"])
                for tus_chunk, speeds in tus.items():
                    name = f"tus-{tus_chunk}-{run}.bin"
                    results["cp_runs"].append(cp_sync(src, src.with_name("copy.bin")))
                    loop_lag(server)
                    speeds.append(tus_upload(server, src, name, digest, tus_chunk))
                    log(f"chunk {chunk}: tus upload, PATCH {tus_chunk // MIB or 'all'} MiB, "
                        f"{run + 1}/{args.repeats}: {speeds[-1]:.0f} MiB/s")
                    lags.append(loop_lag(server))
                    forget(server, asset_id(server, name))
        results["upload"][chunk] = statistics.median(ups)
        for tus_chunk, speeds in tus.items():
            results["tus"][chunk, tus_chunk] = statistics.median(speeds)
        results["rss"][chunk] = rss.growth_mib
        results["lag"][chunk] = max(lags)
        if first and not args.skip_contents:
            speeds = []
            for run in range(args.contents_repeats):
                rel = f"contents-{run}.bin"
                speeds.append(contents_upload(server, src, rel))
                log(f"contents API upload {run + 1}: {speeds[-1]:.1f} MiB/s")
                (server.root_dir / rel).unlink(missing_ok=True)
            results["contents"] = statistics.median(speeds)


def artifacts(server: Any) -> Path:
    return server.root_dir / "notebench" / "artifacts"


def register(server: Any, rel: str) -> dict[str, Any]:
    status, asset = api(server, "POST", "assets/register", {"category": "artifacts",
                                                             "path": rel}, timeout=600)
    if status != 200:
        raise RuntimeError(f"register {rel}: {status} {asset}")
    return asset


def downloads(args: argparse.Namespace, src: Path, results: dict[str, Any]) -> None:
    """notebench's download and ``/files/`` of the same cached file, alternated."""
    size = src.stat().st_size
    modes = [m for m in args.clients.split(",") if m]
    with running_server() as server:
        subprocess.run(["cp", str(src), str(artifacts(server) / "dl.bin")], check=True)
        asset = register(server, "dl.bin")
        paths = {"ours": f"{server.base_url}notebench/api/assets/download/{asset['id']}",
                 "files": f"{server.base_url}files/notebench/artifacts/dl.bin"}
        client = RawGet(server, args.read_buffer_kib * 1024)
        meter = CpuMeter(server.proc.pid)
        for path in paths.values():  # warm up both paths (and the page cache)
            client.fetch(path)
        loop_lag(server)
        time.sleep(0.5)
        loop_lag(server)
        runs: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {
            (mode, which): [] for mode in modes for which in paths}
        results["load_before"] = os.getloadavg()
        with RssSampler(server.proc.pid) as rss:
            for run in range(args.download_repeats):
                for mode in modes:
                    order = ("ours", "files") if run % 2 == 0 else ("files", "ours")
                    for which in order:
                        loop_lag(server)
                        meter.start()
                        seconds, client_cpu, _ = client.fetch(paths[which], mode)
                        meter.stop()
                        runs[mode, which].append((size / MIB / seconds,
                                                  client_cpu / seconds * 100,
                                                  meter.cpu / seconds * 100, loop_lag(server)))
                    log(f"download run {run + 1}, {mode}: notebench "
                        f"{runs[mode, 'ours'][-1][0]:.0f} MiB/s, /files/ "
                        f"{runs[mode, 'files'][-1][0]:.0f} MiB/s")
        results["load_after"] = os.getloadavg()
        results["download_rss"] = rss.growth_mib
        results["downloads"] = {key: {
            "median": statistics.median(r[0] for r in values),
            "min": min(r[0] for r in values), "max": max(r[0] for r in values),
            "client_cpu": statistics.median(r[1] for r in values),
            "server_cpu": statistics.median(r[2] for r in values),
            "lag": max(r[3] for r in values), "runs": [r[0] for r in values]}
            for key, values in runs.items()}
        if args.folder_files:
            results["folder"] = folder_download(args, server, src, client)
        client.close()


def folder_download(args: argparse.Namespace, server: Any, src: Path, client: RawGet
                    ) -> dict[str, float]:
    """The file cut into ``--folder-files`` parts in a folder asset, downloaded as a zip."""
    folder = artifacts(server) / "folder"
    folder.mkdir()
    part = -(-src.stat().st_size // args.folder_files)
    with src.open("rb") as handle:
        for index in range(args.folder_files):
            with (folder / f"part-{index:02d}.bin").open("wb") as out:
                left = part
                while left and (block := handle.read(min(left, 16 * MIB))):
                    out.write(block)
                    left -= len(block)
    asset = register(server, "folder")
    path = f"{server.base_url}notebench/api/assets/download/{asset['id']}"
    runs = []
    meter = CpuMeter(server.proc.pid)
    with RssSampler(server.proc.pid) as rss:
        for run in range(3):
            meter.start()
            seconds, client_cpu, got = client.fetch_until_closed(path)
            meter.stop()
            if got < asset["size"]:
                raise RuntimeError(f"the zip has {got} bytes for {asset['size']} of files")
            runs.append((asset["size"] / MIB / seconds, client_cpu / seconds * 100,
                         meter.cpu / seconds * 100))
            log(f"folder zip {run + 1}/3: {runs[-1][0]:.0f} MiB/s of files")
    return {"median": statistics.median(r[0] for r in runs), "rss": rss.growth_mib,
            "client_cpu": statistics.median(r[1] for r in runs),
            "server_cpu": statistics.median(r[2] for r in runs),
            "size_mib": asset["size"] / MIB}


def listing(args: argparse.Namespace, results: dict[str, Any]) -> None:
    with running_server(["--NotebenchAssetRegistry.scan_interval=0"]) as server:
        root = server.root_dir / "notebench" / "datasets" / "bench100k"
        folders = max(1, args.files // 1000)
        log(f"creating {args.files:,} files in {folders} folders")
        start = time.perf_counter()
        made = 0
        for folder_index in range(folders):
            folder = root / f"d{folder_index:03d}"
            folder.mkdir(parents=True)
            for _ in range(args.files // folders):
                (folder / f"f{made:06d}.csv").write_bytes(b"x,y\n%d,%d\n" % (made, made * 2))
                made += 1
        log(f"created in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        status, page = api(server, "GET", "assets/list/datasets?limit=100", timeout=600)
        results["scan_first_list_s"] = time.perf_counter() - start
        results["scan_reconciled"] = page.get("reconciled") if status == 200 else None

        def settled() -> bool:
            _, roots = api(server, "GET", "assets/roots")
            datasets = next(r for r in roots["roots"] if r["category"] == "datasets")
            api(server, "GET", "assets/list/datasets?limit=1")  # lets a cut scan go on
            return datasets["files"] >= made and datasets["pending_hash"] == 0

        start = time.perf_counter()
        if not wait_until(settled, timeout=1800, interval=1.0):
            raise RuntimeError("the found files were not all hashed in time")
        results["hash_all_s"] = time.perf_counter() - start
        log(f"scanned and hashed {made:,} files")
        middle = f"d{folders // 2:03d}/"
        for label, query in (("first page", "limit=100"), ("by size", "limit=100&sort=-size"),
                             ("name filter", f"limit=100&name={middle}")):
            times = []
            for _ in range(20):
                start = time.perf_counter()
                status, page = api(server, "GET", f"assets/list/datasets?{query}")
                times.append((time.perf_counter() - start) * 1000)
                assert status == 200 and page["items"], page
            results["listing"][label] = (statistics.median(times), max(times))
        results["files_listed"] = made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-sizes", default="65536,1048576")
    parser.add_argument("--contents-repeats", type=int, default=1)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--download-repeats", type=int, default=7)
    parser.add_argument("--read-buffer-kib", type=int, default=1024)
    parser.add_argument("--clients", default="recv_into,splice",
                        help="download clients: recv_into, splice (Linux)")
    parser.add_argument("--folder-files", type=int, default=8)
    parser.add_argument("--skip-uploads", action="store_true")
    parser.add_argument("--skip-downloads", action="store_true")
    parser.add_argument("--skip-contents", action="store_true")
    parser.add_argument("--skip-listing", action="store_true")
    parser.add_argument("--skip-transfers", action="store_true",
                        help="skip uploads and downloads")
    parser.add_argument("--tus-chunks-mib", default="0,64",
                        help="tus PATCH sizes (MiB; 0: the whole file in one PATCH)")
    parser.add_argument("--skip-tus", action="store_true")
    args = parser.parse_args()
    args.tus_chunks = [] if args.skip_tus else [int(c) * MIB for c in
                                                 args.tus_chunks_mib.split(",") if c]
    chunks = [int(c) for c in args.chunk_sizes.split(",") if c]
    log(machine_summary())
    results: dict[str, Any] = {"upload": {}, "tus": {}, "rss": {}, "lag": {}, "listing": {},
                               "cp_runs": []}
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"notebench-bench-assets-{os.getpid()}"
    work.mkdir(parents=True)
    try:
        if not args.skip_transfers:
            src = work / "source.bin"
            size = args.size_mib * MIB
            log(f"writing a {args.size_mib} MiB random file")
            digest = make_file(src, size)
            results["sha256"] = statistics.median(sha256_speed(src) for _ in range(3))
            log(f"sha256 {results['sha256']:.0f} MiB/s")
            if not args.skip_downloads:
                downloads(args, src, results)
            if not args.skip_uploads:
                for index, chunk in enumerate(chunks):
                    transfers(args, chunk, src, digest, results, first=index == 0)
                results["cp_sync"] = statistics.median(results["cp_runs"])
                log("cp+sync runs: " + ", ".join(f"{v:.0f}" for v in results["cp_runs"]))
            src.unlink()
        if not args.skip_listing:
            listing(args, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, results)
    return 0


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if results.get("upload"):
        rows = []
        cp = results["cp_sync"]
        contents = results.get("contents")
        rows.append(["sha256 (this process)", fmt(results["sha256"]), "-", "-"])
        rows.append(["cp + sync", fmt(cp), "-", "-"])
        for chunk, speed in results["upload"].items():
            rows.append([f"notebench upload, read chunk {chunk // 1024} KiB", fmt(speed),
                         f"{speed / cp:.2f}x cp+sync (goal >= {GOALS['upload_vs_cp']})",
                         f"{speed / contents:.1f}x contents (goal >= "
                         f"{GOALS['upload_vs_contents']})" if contents else "-"])
        for (chunk, tus_chunk), speed in results["tus"].items():
            own = results["upload"][chunk]
            rows.append([f"tus upload, read chunk {chunk // 1024} KiB, PATCH "
                         f"{f'{tus_chunk // MIB} MiB' if tus_chunk else 'whole file'}",
                         fmt(speed), f"{speed / cp:.2f}x cp+sync, {speed / own:.2f}x "
                                     "notebench upload (goal >= 0.9)",
                         f"{speed / contents:.1f}x contents" if contents else "-"])
        if contents:
            rows.append(["contents API upload (1 MiB base64)", fmt(contents), "-", "-"])
        print_table(["upload", "MiB/s", "ratio", "ratio"], rows,
                    title=f"Uploads of a {args.size_mib} MiB file (median of {args.repeats})")
        print_table(["read chunk", "server RSS growth MiB (goal < 64)", "worst loop lag ms"],
                    [[f"{c // 1024} KiB", fmt(results["rss"][c]), fmt(results["lag"][c])]
                     for c in results["upload"]], title="Server during notebench uploads")
    if "downloads" in results:
        table = results["downloads"]
        modes = list(dict.fromkeys(mode for mode, _ in table))
        rows = [[f"{label} ({mode})", fmt(r["median"]), fmt(r["min"]), fmt(r["max"]),
                 fmt(r["client_cpu"]), fmt(r["server_cpu"]), fmt(r["lag"])]
                for mode in modes
                for label, r in (("notebench assets/download", table[mode, "ours"]),
                                 ("jupyter_server /files/", table[mode, "files"]))]
        print_table(["download (client)", "median MiB/s", "min", "max", "client CPU %",
                     "server CPU %", "worst loop lag ms"], rows,
                    title=f"Downloads of a cached {args.size_mib} MiB file, alternated "
                          f"({args.download_repeats} each; raw-socket client, "
                          f"{args.read_buffer_kib} KiB buffer)")
        for mode in modes:
            ours, files = table[mode, "ours"], table[mode, "files"]
            print(f"{mode}: ratio of medians {ours['median'] / files['median']:.2f}x /files/ "
                  f"(goal >= {GOALS['download_vs_files']}); per run: "
                  + ", ".join(f"{a / b:.1f}" for a, b in zip(ours["runs"], files["runs"],
                                                            strict=True)))
        print(f"server RSS growth over the downloads: {results['download_rss']:.1f} MiB; "
              "load average before: " + ", ".join(f"{x:.2f}" for x in results["load_before"])
              + ", after: " + ", ".join(f"{x:.2f}" for x in results["load_after"]))
        if "folder" in results:
            folder = results["folder"]
            print(f"folder asset ({args.folder_files} files, {folder['size_mib']:.0f} MiB) "
                  f"as a zip: {folder['median']:.0f} MiB/s of files (median of 3; client CPU "
                  f"{folder['client_cpu']:.0f} %, server CPU {folder['server_cpu']:.0f} %), "
                  f"server RSS growth {folder['rss']:.1f} MiB")
    if results.get("listing"):
        print_table(["listing of datasets", "median ms", "worst ms"],
                    [[label, fmt(m), fmt(w)] for label, (m, w) in results["listing"].items()],
                    title=f"{results['files_listed']:,} found files "
                          f"(first list with scan {results['scan_first_list_s']:.1f} s, "
                          f"reconciled: {results['scan_reconciled']}; all hashed "
                          f"{results['hash_all_s']:.1f} s later; goal first page < "
                          f"{GOALS['first_page_ms']:.0f} ms)")


if __name__ == "__main__":
    raise SystemExit(main())
