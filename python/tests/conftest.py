"""Fixtures: a real `statecraft serve` on free loopback ports, and the
embedded engine.

The server binary is $STATECRAFT_BIN, else the workspace's
target/release/statecraft, else target/debug/statecraft. Missing: a skip —
except under CI=true, where it is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import statecraft

REPO = Path(__file__).resolve().parents[2]


def find_binary() -> Optional[str]:
    env = os.environ.get("STATECRAFT_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "statecraft"
        if p.exists():
            return str(p)
    return shutil.which("statecraft")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `statecraft serve` process; restartable on the same ports and data."""

    def __init__(self, binary: str, data_dir: Path, args: List[str],
                 token: Optional[str] = None, https: bool = False) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.args = args
        self.token = token
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.scheme = "https" if https else "http"
        self.proc: Optional[subprocess.Popen] = None
        self.log = data_dir.parent / f"server-{self.tcp_port}.log"

    @property
    def tcp(self) -> str:
        return f"127.0.0.1:{self.tcp_port}"

    @property
    def http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        cmd = [self.binary, "serve", "--data-dir", str(self.data_dir),
               "--http", f"127.0.0.1:{self.http_port}",
               "--tcp", f"127.0.0.1:{self.tcp_port}", *self.args]
        if self.token:
            cmd += ["--auth-token", self.token]
        env = dict(os.environ, STATECRAFT_LOG_LEVEL="warn")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, env=env)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        import ssl
        ctx = ssl._create_unverified_context()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                req = urllib.request.Request(f"{self.http}/readyz")
                if self.token:
                    req.add_header("authorization", f"Bearer {self.token}")
                with urllib.request.urlopen(req, timeout=1, context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **kw) -> statecraft.Client:
        kw.setdefault("token", self.token)
        return statecraft.Client(self.tcp, self.http, **kw)

    def aclient(self, **kw) -> statecraft.AsyncClient:
        kw.setdefault("token", self.token)
        return statecraft.AsyncClient(self.tcp, self.http, **kw)

    def http_json(self, path: str, body: Optional[bytes] = None) -> dict:
        req = urllib.request.Request(self.http + path, data=body)
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


@pytest.fixture(scope="session")
def binary() -> str:
    b = find_binary()
    if b is None or not os.path.exists(b):
        if os.environ.get("CI") == "true":
            pytest.fail("no statecraft binary (build it: cargo build --release -p statecraft)")
        pytest.skip("no statecraft binary (cargo build --release -p statecraft)")
    return b


@pytest.fixture
def make_server(binary: str, tmp_path: Path) -> Iterator:
    servers: List[Server] = []

    def make(*args: str, token: Optional[str] = None, https: bool = False,
             name: str = "data") -> Server:
        s = Server(binary, tmp_path / f"{name}{len(servers)}", list(args), token, https)
        servers.append(s)
        s.start()
        return s

    yield make
    for s in servers:
        try:
            s.stop()
        except Exception:
            if s.proc is not None:
                s.proc.kill()


@pytest.fixture(scope="module")
def shared_server(binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(binary, tmp_path_factory.mktemp("shared") / "data", ["--shards", "2"])
    s.start()
    yield s
    s.stop()


@pytest.fixture
def client(shared_server: Server) -> Iterator[statecraft.Client]:
    with shared_server.client() as c:
        yield c


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[statecraft.Engine]:
    with statecraft.Engine(data_dir=tmp_path / "engine", shards=2) as e:
        yield e


@pytest.fixture(params=["client", "engine"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """The same tests against the client and the embedded engine: only the
    line that makes the handle differs."""
    if request.param == "client":
        server = request.getfixturevalue("shared_server")
        with server.client() as c:
            yield c
    else:
        with statecraft.Engine(data_dir=tmp_path / "engine", shards=2) as e:
            yield e
