"""The connect-manager service under drill: Service (start on a free port, wait_ready, kill9,
stop, its log), and ALL_SERVICES, the one list of every service started in this run, which
stop_all stops on every exit path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .common import BIN, MASTER_KEY, OWNER_KEY, TMP, DrillFailure, call, free_port, say

# Every service started in this run, in one list: stop_all stops them on every exit path.
ALL_SERVICES: list["Service"] = []


class Service:
    def __init__(self, name: str, database_url: str | None, data_dir: str | None = None) -> None:
        self.name = name
        self.database_url = database_url
        self.data_dir = data_dir or os.path.join(TMP, f"data-{name}")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(TMP, f"{name}.log")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CONNECT_MANAGER_") and k not in ("DATABASE_URL", "RUST_LOG")
        }
        env.update(
            CONNECT_MANAGER_BIND=f"127.0.0.1:{self.port}",
            CONNECT_MANAGER_DATA_DIR=self.data_dir,
            CONNECT_MANAGER_BOOTSTRAP_KEY=OWNER_KEY,
            CONNECT_MANAGER_MASTER_KEY=MASTER_KEY,
            CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE="0",
            LOG_FORMAT="text",
            NO_COLOR="1",
            RUST_LOG="info",
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        # scripts/drill stops whatever is left of these should this script itself be killed.
        with open(os.path.join(TMP, "service.pids"), "a") as pids:
            pids.write(f"{self.proc.pid}\n")
        if self not in ALL_SERVICES:
            ALL_SERVICES.append(self)

    def wait_ready(self, timeout: float = 60.0) -> float:
        start = time.monotonic()
        last = "no answer"
        while time.monotonic() - start < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise DrillFailure(
                    f"{self.name} exited before it was ready (status {self.proc and self.proc.returncode});"
                    f" log: {self.log_path}\n{self.log_tail()}"
                )
            r = call(self.base, "GET", "/readyz", token=None, timeout=2)
            if r.status == 200:
                return time.monotonic() - start
            last = r.error or f"HTTP {r.status}"
            time.sleep(0.05)
        raise DrillFailure(f"{self.name} not ready within {timeout:.0f} s (last: {last})\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                say(f"  note: {self.name} did not stop within 10 s of SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        return "\n".join("    " + line for line in self.log_text().splitlines()[-n:])


def stop_all() -> None:
    for s in ALL_SERVICES:
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            say(f"  note: stopping {s.name}: {e}")
