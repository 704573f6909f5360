"""A real S3 API on loopback for tests, examples and benchmarks: moto's server.

:func:`moto_server` starts ``python -m moto.server`` in a subprocess on a free
port of 127.0.0.1, waits (bounded) until it answers, and stops it on exit. It
needs ``moto[server]`` installed (``pip install "moto[server]"``); it is not a
dependency of asm-fsspec.

>>> with moto_server() as server:  # doctest: +SKIP
...     server.create_bucket("artifacts")
...     store = FsspecArtifactStore("s3://artifacts/asm", storage_options=server.storage_options)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import attrs

__all__ = ["MotoServer", "MotoUnavailable", "moto_server"]

#: The credentials moto accepts when it does not check them (any would do).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoUnavailable(RuntimeError):
    """moto's server could not be started (not installed, or it did not answer)."""


@attrs.frozen
class MotoServer:
    """A running moto server: its endpoint and the storage options that reach it."""

    endpoint_url: str
    process: subprocess.Popen[bytes]

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs storage options for this server. Credentials are not among
        them: s3fs takes them from the environment, like any AWS client."""
        return {"endpoint_url": self.endpoint_url}

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A boto3 client of ``service`` on this server (boto3 comes with moto)."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name="us-east-1", **credentials)

    def create_bucket(self, name: str) -> None:
        """Create the bucket ``name`` (an error if it exists)."""
        self.client().create_bucket(Bucket=name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def moto_server(
    *, start_timeout: float = 60.0, env: dict[str, str] | None = None, set_credentials: bool = True
) -> Iterator[MotoServer]:
    """Run moto's S3 (and IAM, STS, ...) server on a free loopback port for the ``with`` block.

    ``env`` adds variables to the server's environment (e.g.
    ``INITIAL_NO_AUTH_ACTION_COUNT`` to make it check credentials).
    ``set_credentials`` puts fake AWS credentials in *this* process's
    environment (where unset) so AWS clients find them the usual way.
    Raises :class:`MotoUnavailable`, saying why, if the server cannot start
    within ``start_timeout`` seconds.
    """
    try:
        import moto.server  # noqa: F401 - only to fail early and clearly
    except ImportError as exc:
        raise MotoUnavailable(f"moto is not installed ({exc}); pip install 'moto[server]'") from None
    if set_credentials:
        for name, value in FAKE_CREDENTIALS.items():
            os.environ.setdefault(name, value)
    problem = "it did not start"
    for _attempt in range(3):  # another process may take the free port between our check and moto's bind
        port = _free_port()
        # The server logs every request: to a file, since a pipe nobody reads would fill and stall it.
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
            try:
                endpoint = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + start_timeout
                while process.poll() is None and time.monotonic() < deadline:
                    if _answers(f"{endpoint}/moto-api/data.json"):
                        yield MotoServer(endpoint, process)
                        return
                    time.sleep(0.1)
                if process.poll() is None:
                    problem = f"it did not answer on {endpoint} within {start_timeout:g} s"
                    break
                log.seek(0)
                output = log.read().decode(errors="replace")
                problem = f"it exited with status {process.returncode}: {output.strip()[-500:]}"
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    raise MotoUnavailable(f"moto's S3 server could not be started: {problem}")
