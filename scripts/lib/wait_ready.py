"""Waits for GET <url> to answer 200, or for the process <pid> to die (scripts/lib/service.sh).

    wait_ready.py URL PID TIMEOUT_SECONDS

Exit status: 0 ready, 1 not within the timeout, 2 the process exited first.
"""
import os
import sys
import time
import urllib.request

url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
last = "no answer"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        print(f"the service exited before it was ready (last probe: {last})", file=sys.stderr)
        sys.exit(2)
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
            last = f"HTTP {r.status}"
    except Exception as err:  # refused while starting, 503 while the database is not ready
        last = str(err)
    time.sleep(0.2)
print(f"GET /readyz not 200 within {timeout:.0f} s (last probe: {last})", file=sys.stderr)
sys.exit(1)
