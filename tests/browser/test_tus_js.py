"""tus-js-client (npm, ``tests/browser/tus``) in Debian's Chromium uploads 20 MiB to the
resumable upload route: aborted part way, resumed from its stored URL
(``findPreviousUploads``), and the registered asset has the right size and sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server_process import ServerProcess

TUS_JS = Path(__file__).resolve().parent / "tus" / "node_modules" / "tus-js-client" / "dist" / \
    "tus.min.js"
if not TUS_JS.exists():
    pytest.skip("tus-js-client is not installed (npm ci in tests/browser/tus)",
                allow_module_level=True)

MIB = 1 << 20
SIZE = 20 * MIB
CHUNK = 4 * MIB
NAME = "tusjs-20mib.bin"

# The page's bytes: byte i is the top byte of i * 2654435761 (mod 2**32), as numpy makes them.
MAKE_FILE = """({size, name}) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = Math.imul(i, 2654435761) >>> 24;
  window.tusFile = new File([bytes], name, {type: 'application/octet-stream', lastModified: 1});
}"""

OPTIONS = """window.tusOptions = (endpoint, token, chunk, name, callbacks) => Object.assign({
  endpoint, chunkSize: chunk, retryDelays: [0, 250, 500, 1000, 2000],
  headers: {Authorization: 'token ' + token},
  metadata: {filename: name, category: 'artifacts'},
}, callbacks);"""

START_AND_ABORT = """async ({endpoint, token, chunk, name}) => {
  const options = window.tusOptions;
  return await new Promise((resolve, reject) => {
    let upload = null;
    let aborting = false;
    upload = new tus.Upload(window.tusFile, options(endpoint, token, chunk, name, {
      onProgress: (sent, total) => {
        if (!aborting && sent > chunk && sent < total) {
          aborting = true;  // once the second chunk went out (Chromium tells it in one piece)
          upload.abort().then(() => resolve({url: upload.url, sent}), reject);
        }
      },
      onError: reject,
      onSuccess: () => reject(new Error('the upload finished before it was aborted')),
    }));
    upload.start();
  });
}"""

RESUME = """async ({endpoint, token, chunk, name}) => {
  const options = window.tusOptions;
  const seen = [];
  return await new Promise((resolve, reject) => {
    const upload = new tus.Upload(window.tusFile, options(endpoint, token, chunk, name, {
      onProgress: (sent) => seen.push(sent),
      onError: reject,
      onSuccess: () => resolve({url: upload.url, previous: window.tusPrevious,
                                firstProgress: seen[0], lastProgress: seen[seen.length - 1]}),
    }));
    upload.findPreviousUploads().then((previous) => {
      window.tusPrevious = previous.length;
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, reject);
  });
}"""


def expected_bytes() -> bytes:
    index = np.arange(SIZE, dtype=np.uint64)
    return (((index * 2654435761) & 0xFFFFFFFF) >> 24).astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tusjs") / "root"
    root.mkdir()
    proc = ServerProcess(root)
    try:
        yield proc.start()
    finally:
        proc.stop()


def head_offset(server: ServerProcess, url: str) -> int:
    import urllib.request

    request = urllib.request.Request(url, method="HEAD", headers={
        "Authorization": f"token {server.token}", "Tus-Resumable": "1.0.0"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.headers["Upload-Offset"])


def test_tus_js_client_uploads_aborts_and_resumes(page: Any, console: Any,
                                                  server: ServerProcess) -> None:
    origin_page = f"{server.url}tus-test.html"  # a page of the server's origin, served here
    page.route(origin_page, lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>tus</title>"))
    page.goto(origin_page)
    page.add_script_tag(path=str(TUS_JS))
    assert page.evaluate("typeof tus.Upload") == "function"
    assert page.evaluate("tus.isSupported") is True
    page.evaluate(MAKE_FILE, {"size": SIZE, "name": NAME})
    page.evaluate(OPTIONS)
    args = {"endpoint": f"{server.url}notebench/api/assets/uploads", "token": server.token,
            "chunk": CHUNK, "name": NAME}

    aborted = page.evaluate(START_AND_ABORT, args)
    url = aborted["url"]
    assert "/notebench/api/assets/uploads/" in url
    status, page_of = server.request("GET", f"assets/list/artifacts?name={NAME}")
    assert status == 200 and page_of["items"] == []  # not finished
    reached = head_offset(server, url)
    assert CHUNK <= reached < SIZE  # the first chunk at least is kept on the server

    resumed = page.evaluate(RESUME, args)
    assert resumed["previous"] >= 1 and resumed["url"] == url  # the same upload, resumed
    assert resumed["firstProgress"] >= CHUNK  # it went on from the offset, not from 0
    assert resumed["lastProgress"] == SIZE

    status, listing = server.request("GET", f"assets/list/artifacts?name={NAME}")
    assert status == 200
    [asset] = [item for item in listing["items"] if item["name"] == NAME]
    assert asset["size"] == SIZE
    assert asset["sha256"] == hashlib.sha256(expected_bytes()).hexdigest()
    assert console.errors() == []
