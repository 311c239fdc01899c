"""A real ``portcullis serve`` process on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``portcullis serve`` listening on 127.0.0.1. ``public_host`` names it in the issuer URL: ``localhost``
    for browser tests of WebAuthn, whose relying party id must be a domain, never an IP address."""

    def __init__(
        self,
        data_dir: Path,
        *,
        public_host: str = "127.0.0.1",
        log_file: Path | None = None,
        port: int | None = None,
        **env: str,
    ) -> None:
        self.port = port or free_port()
        self.log_file = log_file  # where the server's stdout and stderr go (default: the test's own)
        self.url = f"http://{public_host}:{self.port}"
        if public_host != "127.0.0.1":
            env = {"PORTCULLIS_ISSUER": self.url, **env}
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        self.env = {
            **clean,
            "PORTCULLIS_PORT": str(self.port),
            "PORTCULLIS_DATA_DIR": str(data_dir),
            "PORTCULLIS_LOG_LEVEL": "warning",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def portcullis(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def __enter__(self) -> ServerProcess:
        out = open(self.log_file, "wb") if self.log_file else None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli.main", "serve"], env=self.env, stdout=out, stderr=out
            )
        finally:
            if out is not None:
                out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("server did not become ready in 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
