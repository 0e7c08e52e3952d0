"""Drill: disk full (issue 12, item 15): the file system holding the database fills under
write load (SQLite on a small tmpfs, a PostgreSQL cluster of its own on another); refused writes
are 503 storage_full, reads keep working, and everything recovers by itself once space is freed.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from typing import Any

from .common import PG_BIN, PG_RUNAS, TMP, Resp, Verdict, call, free_port, is_envelope, say
from .fixtures import Load, create_server, create_vault, read_back
from .pg import pg_checks, sqlite_checks
from .service import Service, stop_all

# Its own block, with its own small file systems and its own PostgreSQL cluster: nothing in the
# other drills is changed by it. scripts/drill's cleanup stops the cluster and unmounts the file
# systems on every exit path, from what this block records in DRILL_TMP (disk-full.clusters,
# disk-full.mounts, disk-full.dirs) before it creates each of them.

DISK_FULL_RECOVERY_S = 5.0  # space freed -> writes succeed again within this, with no restart


def _df_record(kind: str, line: str) -> None:
    with open(os.path.join(TMP, f"disk-full.{kind}"), "a") as f:
        f.write(line + "\n")


def _df_as_pg(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    if PG_RUNAS:
        cmd = ["runuser", "-u", PG_RUNAS, "--", *cmd]
    return subprocess.run(cmd, cwd="/", **kw)


def _df_mount(parent: str, size: str) -> str:
    """A tmpfs of `size` at parent/fs."""
    mount = os.path.join(parent, "fs")
    os.makedirs(mount)
    _df_record("mounts", mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", mount],
                   check=True)
    return mount


def _df_fill(path: str) -> int:
    """Appends to `path` until its file system is full; the bytes written."""
    n = 0
    with open(path, "ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            buf = os.urandom(chunk)
            while True:
                try:
                    w = f.write(buf) or 0
                except OSError as e:
                    if e.errno != 28:  # ENOSPC
                        raise
                    break
                n += w
                if w < chunk:
                    break
    return n


def _df_free_kib(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // 1024


def _df_code(r: Resp) -> str:
    return r.body["error"]["code"] if is_envelope(r.body) else ""


def _df_pg_cluster(parent: str) -> tuple[int, str]:
    """A throwaway cluster whose data directory is on a tmpfs under `parent` (its WAL beside it,
    on the ordinary disk: the data directory is what fills, not pg_wal, whose loss PostgreSQL
    meets with a PANIC by design). Returns its port and data dir."""
    if PG_RUNAS:
        subprocess.run(["chown", "-R", PG_RUNAS, parent], check=True)
    data = os.path.join(parent, "fs", "pgdata")
    wal = os.path.join(parent, "pgwal")
    sock = os.path.join(parent, "sock")
    _df_as_pg(["mkdir", "-p", sock], check=True)
    _df_as_pg([os.path.join(PG_BIN, "initdb"), "-D", data, f"--waldir={wal}", "--auth=trust",
               "-U", "postgres", "--encoding=UTF8", "--no-locale", "-N"],
              check=True, capture_output=True)
    port = free_port()
    _df_as_pg(["sh", "-c", f"cat >> {data}/postgresql.conf"], check=True, text=True,
              input=f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\n"
                    f"port = {port}\n")
    _df_record("clusters", f"{PG_BIN} {data}")
    _df_as_pg([os.path.join(PG_BIN, "pg_ctl"), "start", "-D", data, "-l",
               os.path.join(parent, "postgres.log"), "-w", "-t", "60"],
              check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return port, data


def _df_pg_stop(data: str) -> None:
    _df_as_pg([os.path.join(PG_BIN, "pg_ctl"), "stop", "-D", data, "-m", "fast", "-w", "-t", "60"],
              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _df_round(v: Verdict, svc: Service, load: Load, mount: str, label: str, full_s: float) -> None:
    """Fills the file system under the running load, keeps it full for `full_s`, frees it."""
    base = svc.base
    ballast = os.path.join(mount, "ballast")
    t_fill = time.monotonic()
    filled = _df_fill(ballast)
    ready_during: list[Resp] = []
    t_end = time.monotonic() + full_s
    while time.monotonic() < t_end:
        filled += _df_fill(ballast)  # whatever a rollback or a checkpoint gave back
        ready_during.append(call(base, "GET", "/readyz", token=None, timeout=10))
        time.sleep(0.2)
    t_free = time.monotonic()
    os.unlink(ballast)
    # Recovery: readiness, and writes, with nothing done to the service.
    t_ready = None
    ready_after: list[Resp] = []
    while time.monotonic() - t_free < 15:
        r = call(base, "GET", "/readyz", token=None, timeout=10)
        ready_after.append(r)
        if r.status == 200:
            t_ready = time.monotonic() - t_free
            break
        time.sleep(0.05)
    time.sleep(2.0)  # load keeps writing after the recovery
    with load.lock:
        results = list(load.results)
    writes = [(k, r) for k, r in results if k != "server.get"]
    during = [(k, r) for k, r in writes if r.started >= t_fill and r.ended <= t_free]
    refused = [r for _, r in during if r.status >= 300]
    after = sorted((r for _, r in writes if r.started >= t_free), key=lambda r: r.started)
    first_ok = next((r.ended - t_free for r in after if 200 <= r.status < 300), None)
    # Once one write succeeded again, every write that started after it did too.
    t_first_ok = t_free + first_ok if first_ok is not None else float("inf")
    after_ok = [r for r in after if r.started >= t_first_ok]
    say(f"  {label}: filled with {filled // 1024} KiB of ballast ({_df_free_kib(mount)} KiB free"
        f" after freeing it); {len(during)} writes while full ({len(refused)} refused),"
        f" {len(after)} after")
    v.check(len(refused) > 0, f"{label}: the disk filled up under the write load"
                               f" ({len(refused)} writes refused while it was full)")
    bad = [r for r in refused if not (r.status == 503 and _df_code(r) == "storage_full")]
    v.check(not bad, f"{label}: every write refused while full is a 503 storage_full envelope"
                     f" ({len(refused) - len(bad)} of {len(refused)}; others:"
                     f" {sorted({(r.status, _df_code(r) or r.error[:40]) for r in bad})})")
    five = [r for _, r in results if r.status >= 500 and _df_code(r) != "storage_full"]
    v.check(not five, f"{label}: no other 5xx and no 500 at any time ({len(five)}:"
                      f" {sorted({(r.status, _df_code(r)) for r in five})})")
    cut = [r for _, r in results if r.status == 0]
    v.check(not cut, f"{label}: every request answered ({len(cut)} without an HTTP answer)")
    reads = [r for k, r in results if k == "server.get"]
    v.check(all(r.status == 200 for r in reads),
            f"{label}: reads kept working ({sum(r.status == 200 for r in reads)}/{len(reads)} 200)")
    said = [r for r in ready_during if r.status == 503 and _df_code(r) == "storage_full"]
    v.check(len(said) > 0, f"{label}: /readyz said storage_full while full ({len(said)} of"
                           f" {len(ready_during)} probes; others:"
                           f" {sorted({(r.status, _df_code(r)) for r in ready_during if r not in said})})")
    v.check(t_ready is not None, f"{label}: /readyz 200 again {t_ready if t_ready is None else round(t_ready, 2)} s"
                                 f" after space was freed (by itself, no restart)")
    v.check(first_ok is not None and first_ok <= DISK_FULL_RECOVERY_S,
            f"{label}: writes succeed again {first_ok if first_ok is None else round(first_ok, 2)} s"
            f" after space was freed (bound {DISK_FULL_RECOVERY_S:.0f} s)")
    v.check(bool(after_ok) and all(200 <= r.status < 300 for r in after_ok),
            f"{label}: every write after the first success succeeded"
            f" ({sum(200 <= r.status < 300 for r in after_ok)}/{len(after_ok)})")
    v.check(svc.proc is not None and svc.proc.poll() is None and svc.starts == 1,
            f"{label}: the service was never restarted")


def drill_disk_full(long: bool) -> Verdict:
    v = Verdict("disk-full")
    rounds = 3 if long else 1
    full_s = 5.0 if long else 2.0
    say(f"== disk-full: the database's file system fills under write load and is freed again,"
        f" {rounds} round(s) per backend")
    if os.geteuid() != 0:
        v.check(False, "running as root (mount -t tmpfs)")
        return v
    backends = ["sqlite"] + (["postgres"] if PG_BIN else [])
    if not PG_BIN:
        v.check(False, "PostgreSQL binaries available")
    for backend in backends:
        parent = tempfile.mkdtemp(prefix=f"connect-manager-diskfull-{backend}.", dir="/tmp")
        _df_record("dirs", parent)
        data = None
        try:
            if backend == "sqlite":
                # The service's data directory (the SQLite file, its WAL and shared memory).
                mount = _df_mount(parent, "8m")
                svc = Service("disk-full-sqlite", None, data_dir=os.path.join(mount, "data"))
            else:
                mount = _df_mount(parent, "96m")
                port, data = _df_pg_cluster(parent)
                svc = Service("disk-full-postgres",
                              f"postgres://postgres@127.0.0.1:{port}/postgres")
            svc.start()
            svc.wait_ready()
            vault = create_vault(svc.base, "disk-full-vault")
            server, _ = create_server(svc.base, "disk-full-server", [vault])
            load = Load([svc.base], server, vault, workers=4, with_servers=True)
            load.run()
            time.sleep(0.5)
            for rnd in range(1, rounds + 1):
                _df_round(v, svc, load, mount, f"{backend} round {rnd}", full_s)
            load.finish()
            read_back(svc.base, load, v, backend)
            svc.stop()
            if backend == "sqlite":
                results = sqlite_checks(os.path.join(svc.data_dir, "connect-manager.db"))
            else:
                results = pg_checks("postgres", str(port))
            for what, ok, detail in results:
                v.check(ok, f"{backend}: {what} ({detail})")
        finally:
            stop_all()
            if data:
                _df_pg_stop(data)
            subprocess.run(["umount", os.path.join(parent, "fs")], check=False,
                           stderr=subprocess.DEVNULL)
    return v
