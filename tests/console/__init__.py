"""The console (issue 17) tested in a real browser: Debian's Chromium driven headless through
selenium and Debian's chromedriver, against the built binary on SQLite and on PostgreSQL.

Run through scripts/console-check (which starts a throwaway PostgreSQL and installs axe-core), or
directly as `python3 -m tests.console --bin target/debug/connect-manager` from the repository root
(SQLite only unless --pg-url is given). See docs/console.md ("How it is tested").

Modules: service (the service under test), http (a small HTTP client for the API and for pages
with a session cookie), browser (Chromium through selenium), a11y (axe-core injected into pages),
scenarios (the named test functions), __main__ (runs them and prints the counts).
"""
