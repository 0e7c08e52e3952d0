#!/usr/bin/env python3
"""Times every console page over HTTP with a session cookie (scripts/bench, scenario 7).

console_pages.py URL API_KEY SERVER_ID REQUESTS BACKEND

Signs in through the sign-in form, then requests each page REQUESTS times in a row on one
keep-alive connection (after two warm-up requests) and measures each answer's time to its last
byte and its size. Prints the bench's rows (scenario|backend|value|p50|p99|baseline|ratio|target|met)
on stdout and a table (page, p50, p99, bytes) on stderr. Targets: p99 <= 50 ms (a figure, not
asserted) and <= 100 KB per page (asserted: the exit status is 1 when a page is larger, or when
a page does not answer 200).
"""
import os
import re
import statistics
import sys
import time
from html import unescape
from urllib.parse import parse_qs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from tests.console.web import Api, Pages

P99_MS = 50.0
MAX_BYTES = 100 * 1024


def next_link(html: str, path: str) -> str | None:
    """The page's link to its next page (an href on the same path with a cursor)."""
    for m in re.finditer(r'href="([^"]*)"', html):
        href = unescape(m.group(1))
        base, _, query = href.partition("?")
        if base in (path, "") and "cursor" in parse_qs(query):
            return href if href.startswith("/") else path + href
    return None


def pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


def main() -> int:
    url, key, server, n, backend = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    api = Api(url, key)
    owners = api.ok("GET", "/v1/groups/Owners")
    user = owners["members"][0]
    pages = Pages(url)
    pages.sign_in(key)

    paths = [
        ("overview", "/ui/"),
        ("servers", "/ui/servers"),
        ("server (10k tokens)", f"/ui/servers/{server}"),
        ("server, tokens page 2", None),
        ("server new", "/ui/servers/new"),
        ("token new", f"/ui/servers/{server}/tokens/new"),
        ("groups", "/ui/groups"),
        ("group", f"/ui/groups/{owners['id']}"),
        ("vaults", "/ui/vaults"),
        ("users", "/ui/users"),
        ("user", f"/ui/users/{user}"),
        ("audit (100k events)", "/ui/audit"),
        ("audit page 2", None),
        ("audit by action", "/ui/audit?action=token.revoke"),
        ("audit by actor", f"/ui/audit?actor={user}"),
    ]
    # The "page 2" rows follow the page's own next link.
    first = pages.get(f"/ui/servers/{server}")
    paths[3] = (paths[3][0], next_link(first.text, f"/ui/servers/{server}"))
    first = pages.get("/ui/audit")
    paths[12] = (paths[12][0], next_link(first.text, "/ui/audit"))

    rows = []
    failed = []
    for label, path in paths:
        if path is None:
            failed.append(f"{label}: no next-page link found")
            continue
        times: list[float] = []
        size = 0
        for i in range(n + 2):
            start = time.perf_counter()
            r = pages.get(path)
            elapsed = (time.perf_counter() - start) * 1000
            if r.status != 200:
                failed.append(f"{label} ({path}): HTTP {r.status}")
                break
            size = len(r.raw)
            if i >= 2:
                times.append(elapsed)
        else:
            times.sort()
            rows.append((label, path, statistics.median(times), pct(times, 0.99), size))
    # The sign-in page, without a session (its own connection).
    anon = Pages(url)
    times = []
    for i in range(n + 2):
        start = time.perf_counter()
        r = anon.get("/ui/sign-in")
        elapsed = (time.perf_counter() - start) * 1000
        if i >= 2:
            times.append(elapsed)
    times.sort()
    rows.insert(0, ("sign-in", "/ui/sign-in", statistics.median(times), pct(times, 0.99), len(r.raw)))

    widths = (max(len(r[0]) for r in rows), 8, 8, 9)
    print(f"[{backend}] console pages, {n} requests each:", file=sys.stderr)
    print(f"  {'page'.ljust(widths[0])}  {'p50 ms':>8}  {'p99 ms':>8}  {'bytes':>9}", file=sys.stderr)
    for label, _path, p50, p99, size in rows:
        print(f"  {label.ljust(widths[0])}  {p50:8.2f}  {p99:8.2f}  {size:9d}", file=sys.stderr)
        met = "yes" if p99 <= P99_MS and size <= MAX_BYTES else "NO"
        print(f"7 console: {label}|{backend}|{size} B|{p50:.2f}|{p99:.2f}||| p99 <= 50 ms, <= 100 KB|{met}")
        if size > MAX_BYTES:
            failed.append(f"{label}: {size} bytes > {MAX_BYTES}")
    for f in failed:
        print(f"console pages: FAIL: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
