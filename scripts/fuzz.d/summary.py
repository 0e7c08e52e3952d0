#!/usr/bin/env python3
"""One line of figures from schemathesis' JSON run report, for scripts/fuzz.

    summary.py REPORT.json
"""

import json
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    report = json.load(f)
ops = report["operations"]
cases = report["test_cases"]
phases = ", ".join(f"{name} {p['status']}" for name, p in report["phases"].items())
print(
    f"{ops['tested']}/{ops['total']} operations tested, "
    f"{cases['generated']} test cases generated, "
    f"{cases['unique_failures']} unique failures in {cases['with_failures']} test cases, "
    f"{len(report['errors'])} errors, "
    f"{report.get('filtered', 0)} state-dependent rejections accepted by the hooks; "
    f"phases: {phases}"
)
