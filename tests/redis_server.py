"""Real redis-server processes of a test's own (AUTH, TLS, Sentinel, killed mid-test), on given ports.

    with RedisServer(18201, "--requirepass", "s3cret") as server:
        ...
        server.kill()  # Redis is down from here on

Skips the test with a reason when the redis-server binary is not on PATH.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH: these tests start Redis processes of their own")
    return binary


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port`` with ``args``; ``--port 0`` in ``args`` for TLS only (then
    ``ready_port`` is the TLS port, probed by a plain TCP connect)."""

    def __init__(self, port: int, *args: str, sentinel: bool = False) -> None:
        self.port = port
        self.args = args
        self.sentinel = sentinel
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory()

    def __enter__(self) -> RedisServer:
        command = [redis_binary()]
        if self.sentinel:
            config = Path(self._dir.name) / "sentinel.conf"
            config.write_text("")
            command += [str(config), "--sentinel"]
        command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self._dir.name]
        if "--port" not in self.args:
            command += ["--port", str(self.port)]
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command + list(self.args), stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {self.port} within 10 s: {self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        self._log.close()
        self._dir.cleanup()


def write_tls_files(directory: Path) -> dict[str, Path]:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def issue(
        subject: str, key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name("portcullis test CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("portcullis test CA", ca_key, ca_key, ca=True)
    files: dict[str, Path] = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(f"portcullis test {role}", key, ca_key, ca=False)
        files[f"{role}_cert"] = directory / f"{role}.crt"
        files[f"{role}_key"] = directory / f"{role}.key"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    files["ca"] = directory / "ca.crt"
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files
