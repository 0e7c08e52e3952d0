"""The connect-manager service under test: the built binary on a free 127.0.0.1 port with a
fresh data directory, a bootstrap owner key and (on PostgreSQL) a database of its own.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


class ServiceError(Exception):
    pass


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Service:
    """One `connect-manager serve`. `extra_env` adds settings (e.g. a short console idle timeout)."""

    def __init__(
        self,
        bin_path: str,
        name: str,
        work: str,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.bin = bin_path
        self.name = name
        self.data_dir = tempfile.mkdtemp(prefix=f"data-{name}-", dir=work)
        self.log_path = os.path.join(work, f"{name}.log")
        self.database_url = database_url
        self.extra_env = extra_env or {}
        self.owner_key = "console-owner-" + secrets.token_urlsafe(32)
        self.master_key = secrets.token_urlsafe(48)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CONNECT_MANAGER_") and k not in ("DATABASE_URL", "RUST_LOG")
        }
        env.update(
            CONNECT_MANAGER_BIND=f"127.0.0.1:{self.port}",
            CONNECT_MANAGER_DATA_DIR=self.data_dir,
            CONNECT_MANAGER_BOOTSTRAP_KEY=self.owner_key,
            CONNECT_MANAGER_MASTER_KEY=self.master_key,
            CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE="0",
            LOG_FORMAT="text",
            NO_COLOR="1",
            RUST_LOG="info",
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited before it was ready (status {self.proc.returncode})\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
            time.sleep(0.1)
        raise ServiceError(f"{self.name} not ready within {timeout:.0f} s (last: {last})\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in lines[-n:])
