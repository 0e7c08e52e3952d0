"""A small HTTP client (standard library only): the JSON API with an API key or a server's HTTP
Basic credentials, and console pages with a session cookie outside the browser (for what a
browser will not do: a form without its CSRF token, an old cookie after sign-out; and for
scripts/bench's page timings). Also used by scripts/bench.d/console_pages.py.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    raw: bytes
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


def request(
    base: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 30.0,
) -> Resp:
    u = urllib.parse.urlparse(base)
    own = conn is None
    c = conn or http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        return Resp(r.status, hdrs, raw, cookies)
    finally:
        if own:
            c.close()


class Api:
    """The JSON API as one caller: a user's API key (Bearer) or a server's credentials (Basic)."""

    def __init__(self, base: str, key: str | None = None, basic: tuple[str, str] | None = None) -> None:
        self.base = base
        self.key = key
        self.basic = basic

    def call(self, method: str, path: str, body: Any = None) -> Resp:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.basic is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{self.basic[0]}:{self.basic[1]}".encode()
            ).decode()
        elif self.key is not None:
            headers["Authorization"] = f"Bearer {self.key}"
        return request(self.base, method, path, body=data, headers=headers)

    def ok(self, method: str, path: str, body: Any = None, status: int | tuple[int, ...] = (200, 201, 204)) -> Any:
        r = self.call(method, path, body)
        want = (status,) if isinstance(status, int) else status
        if r.status not in want:
            raise AssertionError(f"{method} {path}: HTTP {r.status}, expected {want}: {r.text[:500]}")
        return r.json()


class _Forms(HTMLParser):
    """Collects forms: action, method and their inputs' names and values (hidden ones included)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._in: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._in = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": {}}
            self.forms.append(self._in)
        elif tag == "input" and self._in is not None and a.get("name"):
            self._in["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in = None


def forms(html: str) -> list[dict[str, Any]]:
    p = _Forms()
    p.feed(html)
    return p.forms


def h1(html: str) -> str:
    m = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.DOTALL | re.IGNORECASE)
    return re.sub(r"<[^>]+>|\s+", " ", m.group(1)).strip() if m else ""


class Pages:
    """Console pages with a session cookie, over one keep-alive connection (no redirects followed)."""

    def __init__(self, base: str) -> None:
        self.base = base
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.cookies: dict[str, str] = {}

    def close(self) -> None:
        self.conn.close()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": "text/html"}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        h.update(extra or {})
        return h

    def _keep(self, r: Resp) -> Resp:
        for c in r.set_cookies:
            name, _, rest = c.partition("=")
            value = rest.split(";", 1)[0]
            attrs = rest.lower()
            if value == "" or "max-age=0" in attrs or "expires=thu, 01 jan 1970" in attrs:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return r

    def get(self, path: str) -> Resp:
        return self._keep(request(self.base, "GET", path, headers=self._headers(), conn=self.conn))

    def post(self, path: str, fields: dict[str, str]) -> Resp:
        body = urllib.parse.urlencode(fields).encode()
        h = self._headers({"Content-Type": "application/x-www-form-urlencoded", "Origin": self.base})
        return self._keep(request(self.base, "POST", path, body=body, headers=h, conn=self.conn))

    def sign_in(self, api_key: str) -> None:
        """Signs in as the sign-in form does (its hidden fields, the CSRF token among them)."""
        page = self.get("/ui/sign-in")
        if page.status != 200:
            raise AssertionError(f"GET /ui/sign-in: HTTP {page.status}")
        form = next((f for f in forms(page.text) if "api_key" in f["fields"]), None)
        if form is None:
            raise AssertionError("GET /ui/sign-in has no form with an api_key field")
        fields = dict(form["fields"])
        fields["api_key"] = api_key
        r = self.post(form["action"] or "/ui/sign-in", fields)
        if r.status not in (302, 303) or r.headers.get("location", "").endswith("/sign-in"):
            raise AssertionError(f"POST /ui/sign-in: HTTP {r.status} to {r.headers.get('location')!r}")
