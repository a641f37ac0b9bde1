"""Archive download against a loopback HTTP server: resume, checksum, clean failure."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from aerialseg.core.errors import DataError
from aerialseg.prepare.sources.fetch import download, partial_path

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD with Range support; can cut the first N responses off halfway."""

    def __init__(self, cut_first: int = 0, ranges: bool = True) -> None:
        self.cut_left = cut_first
        self.ranges = ranges
        self.requests: list[str | None] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                header = self.headers.get("Range")
                owner.requests.append(header)
                start = int(header.split("=")[1].rstrip("-")) if header and owner.ranges else 0
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.end_headers()
                if owner.cut_left > 0:
                    owner.cut_left -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-transfer
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/2_Ortho_RGB.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def start(**kwargs) -> Server:
        servers.append(Server(**kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    srv = server(cut_first=1)
    target = tmp_path / "potsdam" / "2_Ortho_RGB.zip"
    assert download(srv.url, target, DIGEST) == target
    assert target.read_bytes() == PAYLOAD
    assert not partial_path(target).exists()
    # the second request asked only for the missing half
    assert srv.requests[0] is None and srv.requests[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_a_part_left_by_a_killed_process_is_continued(server, tmp_path):
    srv = server()
    target = tmp_path / "2_Ortho_RGB.zip"
    partial_path(target).write_bytes(PAYLOAD[:1000])
    download(srv.url, target, DIGEST)
    assert target.read_bytes() == PAYLOAD and srv.requests == ["bytes=1000-"]


def test_server_without_ranges_is_read_from_the_start(server, tmp_path):
    srv = server(ranges=False)
    target = tmp_path / "2_Ortho_RGB.zip"
    partial_path(target).write_bytes(b"stale bytes")
    download(srv.url, target, DIGEST)
    assert target.read_bytes() == PAYLOAD


def test_wrong_checksum_fails_clearly_and_leaves_nothing(server, tmp_path):
    srv = server()
    target = tmp_path / "dest" / "2_Ortho_RGB.zip"
    with pytest.raises(DataError, match=r"sha256 mismatch: got [0-9a-f]{64}, expected 0{64} \(data.potsdam.sha256\)"):
        download(srv.url, target, "0" * 64)
    assert list((tmp_path / "dest").iterdir()) == []


def test_a_verified_copy_is_not_downloaded_again_and_a_bad_one_is_named(server, tmp_path):
    srv = server()
    target = tmp_path / "2_Ortho_RGB.zip"
    target.write_bytes(PAYLOAD)
    download(srv.url, target, DIGEST)
    assert srv.requests == []
    target.write_bytes(b"tampered")
    with pytest.raises(DataError, match="exists but its sha256 is"):
        download(srv.url, target, DIGEST)


def test_http_errors_and_unreachable_servers_are_one_line(server, tmp_path):
    srv = server()
    srv.httpd.RequestHandlerClass.do_GET = lambda self: self.send_error(404)
    with pytest.raises(DataError, match=r"2_Ortho_RGB.zip: HTTP 404"):
        download(srv.url, tmp_path / "x.zip", DIGEST)
    srv.close()
    with pytest.raises(DataError, match=r"download interrupted after 0 bytes .* run the stage again to resume"):
        download(srv.url, tmp_path / "y.zip", DIGEST, attempts=2, timeout=2)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "y.zip").exists()
