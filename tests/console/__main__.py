"""Runs the console's browser scenarios: python3 -m tests.console [options] (from the repository root).

  --bin PATH        the connect-manager binary (default target/debug/connect-manager)
  --pg-url URL      a PostgreSQL server (postgres://user@host:port) to run on as well as SQLite;
                    databases console_main and console_expiry are created on it
  --backend NAME    sqlite or postgres only (default: sqlite, and postgres when --pg-url is given)
  --only NAME       run only the scenarios whose name contains NAME (repeatable)
  --photos DIR      where the screenshots go (default docs/console); --no-photos: none, and no axe

Axe-core and the screenshots run on the first backend only: the pages' markup does not depend on
the database. Prints [ok]/[FAIL] per scenario and backend, the axe table, and closes with
"console-check: N passed, N failed". Exit status 0 when everything passed, 1 otherwise; a missing
browser or axe-core is a failure under CI=true and a skip (exit 0) elsewhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from . import a11y, browser
from .scenarios import SCENARIOS, Ctx, sign_in
from .service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def say(msg: str) -> None:
    print(msg, flush=True)


def make_db(pg_url: str, name: str) -> str:
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", f"{pg_url}/postgres", "-c", f"DROP DATABASE IF EXISTS {name}",
         "-c", f"CREATE DATABASE {name}"],
        check=True, capture_output=True, timeout=60,
    )
    return f"{pg_url}/{name}"


def failure_notes(ctx: Ctx, name: str) -> str:
    b = ctx.browser
    notes = []
    try:
        shot = os.path.join(ctx.work, f"failed-{ctx.backend}-{name}.png")
        b.driver.save_screenshot(shot)
        alerts = [a.text for a in b.all("[role=alert]")]
        notes.append(f"at {b.driver.current_url} (h1 {b.h1()!r}{', alert ' + repr(alerts[0]) if alerts else ''})")
        notes.append("page text: " + b.text()[:400].replace("\n", " | "))
    except Exception as e:  # the browser itself may be what failed
        notes.append(f"(no page: {type(e).__name__})")
    return "\n      ".join(notes)


def run_backend(args: argparse.Namespace, backend: str, work: str, photos: str | None) -> tuple[int, int, dict]:
    main_db = expiry_db = None
    if backend == "postgres":
        main_db = make_db(args.pg_url, "console_main")
        expiry_db = make_db(args.pg_url, "console_expiry")
    service = Service(args.bin, f"{backend}-main", work, main_db)
    expiry = Service(args.bin, f"{backend}-expiry", work, expiry_db, {"CONNECT_MANAGER_CONSOLE_IDLE_TIMEOUT": "4s"})
    passed = failed = 0
    b = None
    try:
        service.start()
        expiry.start()
        b = browser.Browser(service.base, work)
        ctx = Ctx(backend, service, expiry, b, work, args.bin, photos)
        if args.only:
            sign_in(ctx)  # the scenarios after the first expect a signed-in browser
        for scenario in SCENARIOS:
            name = scenario.__name__
            if args.only and not any(o in name for o in args.only):
                continue
            if getattr(scenario, "needs_photos", False) and photos is None:
                say(f"[skip] {backend} {name} (axe-core runs on the first backend only)")
                continue
            start = time.monotonic()
            try:
                scenario(ctx)
            except Exception as e:  # a failed check, a missing element, a timeout
                failed += 1
                detail = str(e).strip() or type(e).__name__
                if not isinstance(e, AssertionError):
                    detail = f"{type(e).__name__}: {detail.splitlines()[0] if detail else ''}"
                say(f"[FAIL] {backend} {name} ({time.monotonic() - start:.1f} s): {detail}")
                say("      " + failure_notes(ctx, name))
                if os.environ.get("CONSOLE_TRACEBACK"):
                    traceback.print_exc()
            else:
                passed += 1
                say(f"[ok]   {backend} {name} ({time.monotonic() - start:.1f} s)")
        return passed, failed, ctx.axe
    except Exception as e:
        say(f"[FAIL] {backend}: could not run the scenarios: {type(e).__name__}: {e}")
        say(service.log_tail())
        return passed, failed + 1, {}
    finally:
        if b is not None:
            b.quit()
        service.stop()
        expiry.stop()


def main() -> int:
    p = argparse.ArgumentParser(prog="python3 -m tests.console")
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "connect-manager"))
    p.add_argument("--pg-url", default=os.environ.get("CONSOLE_PG_URL", ""))
    p.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--photos", default=os.path.join(ROOT, "docs", "console"))
    p.add_argument("--no-photos", action="store_true")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    ci = os.environ.get("CI", "") == "true"

    for what in (browser.missing(), a11y.missing()):
        if what:
            if ci:
                say(f"console-check: FAIL: {what}")
                say("console-check: 0 passed, 1 failed")
                return 1
            say(f"console-check: SKIPPED (not CI): {what}")
            return 0
    if not os.access(args.bin, os.X_OK):
        say(f"console-check: FAIL: no binary at {args.bin}")
        return 1
    backends = args.backend or (["sqlite", "postgres"] if args.pg_url else ["sqlite"])
    if "postgres" in backends and not args.pg_url:
        say("console-check: FAIL: --backend postgres needs --pg-url")
        return 1
    photos = None if args.no_photos else args.photos
    if photos:
        os.makedirs(photos, exist_ok=True)

    work = tempfile.mkdtemp(prefix="connect-manager-console-")
    say(f"console-check: Chromium {browser_version()} via {browser.CHROMEDRIVER}, axe-core {a11y.axe_version()}, "
        f"browser TZ={browser.BROWSER_TZ}, backends {', '.join(backends)}")
    total_pass = total_fail = 0
    axe_results: dict = {}
    started = time.monotonic()
    keep = False
    try:
        for i, backend in enumerate(backends):
            passed, failed, axe = run_backend(args, backend, work, photos if i == 0 else None)
            total_pass += passed
            total_fail += failed
            axe_results = axe_results or axe
        keep = total_fail > 0 and bool(os.environ.get("CONSOLE_KEEP"))
    finally:
        if keep:
            say(f"console-check: work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if axe_results:
        say("\naxe-core violations (elements) by impact per page; serious and critical fail:")
        say(a11y.table(axe_results))
        if photos:
            say(f"screenshots: {len(axe_results)} pages in {os.path.relpath(photos, ROOT)}/")
    say(f"\nconsole-check: {time.monotonic() - started:.0f} s")
    say(f"console-check: {total_pass} passed, {total_fail} failed")
    return 0 if total_fail == 0 else 1


def browser_version() -> str:
    try:
        out = subprocess.run([browser.CHROMIUM, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip().removeprefix("Chromium ").split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
