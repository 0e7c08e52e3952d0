"""axe-core (npm, pinned in tests/console/package.json and package-lock.json; `npm ci` installs it)
injected into a page with execute_script, then `axe.run()`: its violations by impact.

Injected through the driver, not served by the console: the console's Content-Security-Policy
(default-src 'self') stays as it is, and the console never ships the test's script.
"""

from __future__ import annotations

import json
import os
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
AXE_JS = os.path.join(HERE, "node_modules", "axe-core", "axe.min.js")
IMPACTS = ("critical", "serious", "moderate", "minor")
FAILING = ("critical", "serious")

_source: str | None = None


def axe_version() -> str:
    try:
        with open(os.path.join(HERE, "node_modules", "axe-core", "package.json")) as f:
            return json.load(f)["version"]
    except OSError:
        return "missing"


def missing() -> str | None:
    if not os.path.isfile(AXE_JS):
        return f"{AXE_JS} not found (run `npm ci` in tests/console)"
    return None


def run(driver: Any) -> list[dict[str, Any]]:
    """axe.run() on the current page (WCAG 2.x A and AA rules and axe's best practices): a list of
    violations, each {id, impact, help, count, nodes: [the first five targets]}."""
    global _source
    if _source is None:
        with open(AXE_JS, encoding="utf-8") as f:
            _source = f.read()
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(_source)
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
          .then(r => done({ok: true, violations: r.violations.map(v => ({
              id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
              nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))}))
          .catch(e => done({ok: false, error: String(e)}));
        """
    )
    if not result.get("ok"):
        raise AssertionError(f"axe.run failed: {result.get('error')}")
    return result["violations"]


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """A table of violations (rule instances) by impact per page."""
    header = ("page",) + IMPACTS + ("rules",)
    rows = [header]
    for page, violations in results.items():
        counts = {i: 0 for i in IMPACTS}
        for v in violations:
            impact = v.get("impact") or "minor"
            counts[impact] = counts.get(impact, 0) + max(1, int(v.get("count") or 0))
        rules = ", ".join(sorted({v["id"] for v in violations})) or "-"
        rows.append((page,) + tuple(str(counts[i]) for i in IMPACTS) + (rules,))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
