"""The console's scenarios in Chromium, each a named function taking the run's context (Ctx).

They run in the order of SCENARIOS against one service (and one browser) per backend; each sets
up over the API what it needs and an earlier scenario did not leave (ensure_*), so that one
failure does not fail the rest. `ctx.look(name)` runs axe-core on the page in the browser and
saves its screenshot (on the backend that takes the pictures); the last scenario fails on any
serious or critical violation found on any page looked at.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from . import a11y
from .browser import BROWSER_TZ, Browser, submit
from .service import Service
from .web import Api, Pages, forms, h1

READ_ACL = ["view_items", "view_and_copy_passwords"]
WRITE_ACL = ["create_items", "edit_items", "archive_items", "delete_items"]
COOKIE = "cm_session"

# Every page the console has (issue 17), by the name its screenshot takes in docs/console/.
PAGES = (
    "sign-in",
    "overview-empty",
    "servers-empty",
    "vaults-empty",
    "overview",
    "servers",
    "server-new",
    "server-created",
    "server",
    "token-new",
    "token-created",
    "groups",
    "group",
    "vaults",
    "vault-import",
    "users",
    "user",
    "key-created",
    "audit",
    "not-found",
    "request-refused",
)


@dataclass
class Ctx:
    backend: str
    service: Service
    expiry: Service  # the same binary with a 4 s console idle timeout (room for a slow first page after sign-in)
    browser: Browser
    work: str
    bin: str
    photos: str | None  # docs/console when this backend takes the pictures (and runs axe)
    owner: Api = field(init=False)
    state: dict[str, Any] = field(default_factory=dict)
    axe: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owner = Api(self.service.base, self.service.owner_key)

    @property
    def b(self) -> Browser:
        return self.browser

    def look(self, name: str) -> None:
        """axe-core on the page in the browser, and its screenshot as docs/console/<name>.png."""
        if self.photos is None or name in self.axe:
            return
        self.b.wait_loaded()
        self.axe[name] = a11y.run(self.b.driver)
        self.b.screenshot(os.path.join(self.photos, f"{name}.png"))


# ---- helpers ------------------------------------------------------------------------------------


def check(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


def sign_in(ctx: Ctx, key: str | None = None, base: str | None = None) -> None:
    """Signs in through the sign-in form (a fresh start: no cookie from before)."""
    b = ctx.b
    base = base or ctx.service.base
    b.driver.get(base + "/ui/sign-in")
    b.driver.delete_all_cookies()
    b.driver.get(base + "/ui/sign-in")
    field_ = b.css("input[name=api_key]")
    field_.send_keys(key or ctx.service.owner_key)
    b.submit_form_of(field_)
    b.wait(lambda: not b.driver.current_url.endswith("/ui/sign-in"), message="still on the sign-in page")
    check(b.driver.current_url.rstrip("/").endswith("/ui"), f"signed in to {b.driver.current_url}, expected /ui/")


def back_to_owner(ctx: Ctx) -> None:
    """Signs the browser in as the owner again after a scenario that changed who is signed in;
    never hides the scenario's own failure."""
    try:
        sign_in(ctx)
    except Exception as e:  # the next scenario signs in again and says what is wrong
        print(f"      (signing in as the owner again failed: {type(e).__name__})", flush=True)


def form_with_action(b: Browser, suffix: str) -> Any:
    for f in b.all("form"):
        action = f.get_attribute("action") or ""
        if urllib.parse.urlparse(action).path.endswith(suffix):
            return f
    raise AssertionError(f"no form posting to …{suffix} on {b.path}")


def click_submit(form: Any) -> None:
    submit(form)


def choose(select_el: Any, value: str) -> None:
    Select(select_el).select_by_value(value)


def owner_id(ctx: Ctx) -> str:
    if "owner_id" not in ctx.state:
        owners = ctx.owner.ok("GET", "/v1/groups/Owners")
        ctx.state["owner_id"] = owners["members"][0]
    return ctx.state["owner_id"]


def ensure_vault(ctx: Ctx) -> dict[str, Any]:
    if "vault" not in ctx.state:
        ctx.state["vault"] = ctx.owner.ok("POST", "/v1/vaults", {"name": "Production", "type": "USER_CREATED"})
    return ctx.state["vault"]


def ensure_server(ctx: Ctx) -> dict[str, Any]:
    if "server" not in ctx.state:
        v = ensure_vault(ctx)
        r = ctx.owner.ok("POST", "/v1/connect/servers", {"name": "payments-api", "vaults": [v["id"]]})
        ctx.state["server"] = r["server"]
        ctx.state["secret"] = credentials_secret(ctx, r["credentials"])
    return ctx.state["server"]


def credentials_show(ctx: Ctx, path: str, reveal: bool = False) -> dict[str, str]:
    """`connect-manager credentials show <file>` as key -> value."""
    args = [ctx.bin, "credentials", "show", path] + (["--reveal"] if reveal else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, f"credentials show failed ({out.returncode}): {out.stderr.strip()}")
    fields = {}
    for line in out.stdout.splitlines():
        k, _, v = line.strip().partition(" ")
        if k:
            fields[k] = v.strip()
    return fields


def credentials_secret(ctx: Ctx, credentials: dict[str, Any]) -> str:
    path = os.path.join(ctx.work, f"api-credentials-{time.monotonic_ns()}.json")
    with open(path, "w") as f:
        json.dump(credentials, f)
    try:
        return credentials_show(ctx, path, reveal=True)["secret"]
    finally:
        os.unlink(path)


def introspect(ctx: Ctx, jwt: str) -> dict[str, Any]:
    server = ensure_server(ctx)
    return Api(ctx.service.base, basic=(server["id"], ctx.state["secret"])).ok(
        "POST", "/v1/introspect", {"token": jwt}, status=200
    )


def jwt_claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def server_page(ctx: Ctx) -> str:
    return f"/ui/servers/{ensure_server(ctx)['id']}"


# ---- scenarios ----------------------------------------------------------------------------------


def sign_in_with_an_api_key(ctx: Ctx) -> None:
    b = ctx.b
    b.get("/ui/")
    b.driver.delete_all_cookies()
    b.get("/ui/")
    check(b.path.startswith("/ui/sign-in"), f"without a session /ui/ should lead to /ui/sign-in, got {b.path}")
    ctx.look("sign-in")
    # A wrong key: the form again, with the API's message in an alert.
    field_ = b.css("input[name=api_key]")
    check(field_.get_attribute("type") == "password", "the api_key field is not type=password")
    field_.send_keys("not-a-key-" + "x" * 40)
    b.submit_form_of(field_)
    b.wait_loaded()
    alerts = b.all("[role=alert]")
    check(bool(alerts) and alerts[0].text.strip() != "", "a wrong key shows no role=alert message")
    check(b.cookie(COOKIE) is None, "a wrong key set a session cookie")
    sign_in(ctx)
    c = b.cookie(COOKIE)
    check(c is not None, "no session cookie after sign-in")
    check(c["name"] == COOKIE, f"cookie named {c['name']} over http, expected {COOKIE}")
    check(c.get("httpOnly") is True, "session cookie is not HttpOnly")
    check(c.get("sameSite") == "Strict", f"session cookie SameSite={c.get('sameSite')}, expected Strict")
    check(c.get("path") == "/", f"session cookie Path={c.get('path')}")
    check(ctx.service.owner_key not in b.driver.page_source, "the API key appears in the page")
    ctx.look("overview-empty")
    nav = " ".join(a.text for a in b.all("nav a"))
    for label in ("Overview", "Servers", "Groups", "Vaults", "Users", "Audit"):
        check(label in nav, f"the owner's nav has no {label} link (nav: {nav!r})")


def create_a_vault(ctx: Ctx) -> None:
    b = ctx.b
    b.get("/ui/vaults")
    ctx.look("vaults-empty")
    name_field = b.css("input[name=name]")
    name_field.send_keys("Production")
    type_field = name_field.find_element(By.XPATH, "./ancestor::form").find_element(By.CSS_SELECTOR, "[name=type]")
    if type_field.tag_name == "select":
        choose(type_field, "USER_CREATED")
    else:
        type_field.clear()
        type_field.send_keys("USER_CREATED")
    b.submit_form_of(name_field)
    b.wait_loaded()
    vaults = ctx.owner.ok("GET", "/v1/vaults")["items"]
    made = [v for v in vaults if v["name"] == "Production"]
    check(len(made) == 1, f"the vault is not in GET /v1/vaults: {vaults}")
    check(made[0]["type"] == "USER_CREATED", f"vault type {made[0]['type']}")
    ctx.state["vault"] = made[0]
    b.get("/ui/vaults")
    check("Production" in b.text(), "the new vault is not listed on /ui/vaults")
    # A second one, for the grant scenario (over the API: the form is tested above).
    ctx.state["vault2"] = ctx.owner.ok("POST", "/v1/vaults", {"name": "Staging", "type": "USER_CREATED"})
    ctx.owner.ok("POST", "/v1/vaults", {"name": "Private", "type": "PRIVATE"})
    b.get("/ui/vaults")
    ctx.look("vaults")


def create_a_server_and_download_its_credentials(ctx: Ctx) -> None:
    b = ctx.b
    vault = ensure_vault(ctx)
    b.get("/ui/servers")
    ctx.look("servers-empty")
    b.get("/ui/servers/new")
    ctx.look("server-new")
    name_field = b.css("input[name=name]")
    name_field.send_keys("payments-api")
    box = b.css(f"input[name=vaults][value='{vault['id']}']")
    if not box.is_selected():
        box.click()
    b.submit_form_of(name_field)
    link = b.wait(lambda: b.all("#download-credentials"), message="no #download-credentials on the created page")[0]
    ctx.look("server-created")
    text = b.text()
    check("payments-api" in text, "the created page does not name the server")
    for f in os.listdir(b.downloads):
        os.unlink(os.path.join(b.downloads, f))
    link.click()
    path = os.path.join(b.downloads, "1password-credentials.json")
    b.wait(
        lambda: os.path.isfile(path) and not any(n.endswith(".crdownload") for n in os.listdir(b.downloads)),
        15,
        f"the download did not arrive as 1password-credentials.json (have {os.listdir(b.downloads)})",
    )
    shown = credentials_show(ctx, path)
    server = ctx.owner.ok("GET", "/v1/connect/servers/payments-api")
    check(shown.get("server_id") == server["id"], f"credentials show: server_id {shown.get('server_id')} != {server['id']}")
    check(shown.get("secret", "").startswith("(hidden"), "credentials show revealed the secret without --reveal")
    check([v["id"] for v in server["vaults"]] == [vault["id"]], f"server vaults {server['vaults']}")
    ctx.state["server"] = server
    ctx.state["secret"] = credentials_show(ctx, path, reveal=True)["secret"]
    # The credentials work: introspection with them answers (a token that is not ours: inactive).
    check(introspect(ctx, "x.y.z") == {"active": False}, "introspection with the downloaded credentials")
    os.unlink(path)


def create_a_token_and_introspect_the_copied_jwt(ctx: Ctx) -> None:
    b = ctx.b
    vault = ensure_vault(ctx)
    server = ensure_server(ctx)
    b.get(server_page(ctx))
    ctx.look("server")
    b.css("a[href$='/tokens/new']").click()
    b.wait_path(f"/ui/servers/{server['id']}/tokens/new")
    ctx.look("token-new")
    b.css("input[name=name]").send_keys("deploy-bot")
    choose(b.css(f"select[name='access.{vault['id']}']"), "read")
    expires = b.css("[name=expires_in]")
    expires.clear()
    expires.send_keys("30d")
    b.submit_form_of(expires)
    code = b.wait(lambda: b.all("code#new-token"), message="no <code id=new-token> after creating a token")[0]
    ctx.look("token-created")
    jwt = code.text.strip()
    check(jwt.count(".") == 2, f"#new-token does not hold a JWT: {jwt[:40]!r}")
    check(bool(b.all("#copy-token")), "no #copy-token button")
    # The copy button puts the very JWT on the clipboard (headless Chromium has one of its own).
    b.driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": ctx.service.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    b.css("#copy-token").click()
    copied = b.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, e => done('error: ' + e));"
    )
    check(copied.strip() == jwt, f"the clipboard after #copy-token holds {copied[:40]!r}, not the JWT")
    claims = jwt_claims(copied)
    got = introspect(ctx, copied)
    check(got.get("active") is True, f"introspection of the copied JWT: {got}")
    check(got.get("name") == "deploy-bot", f"introspected name {got.get('name')}")
    check(
        got.get("vaults") == [{"id": vault["id"], "acl": READ_ACL}],
        f"introspected scope {got.get('vaults')}, expected read on {vault['id']}",
    )
    ttl = got.get("exp", 0) - got.get("iat", 0)
    check(abs(ttl - 30 * 86400) <= 5, f"exp - iat = {ttl} s, expected 30 days")
    check(claims["jti"] == got.get("jti"), "jti")
    ctx.state["token_id"] = claims["jti"]
    ctx.state["token_jwt"] = copied


def revoke_a_token_and_see_it_revoked(ctx: Ctx) -> None:
    b = ctx.b
    if "token_id" not in ctx.state:
        vault, server = ensure_vault(ctx), ensure_server(ctx)
        r = ctx.owner.ok("POST", f"/v1/connect/servers/{server['id']}/tokens",
                         {"name": "deploy-bot", "vaults": [{"vault": vault["id"], "access": "read"}]})
        ctx.state["token_id"], ctx.state["token_jwt"] = r["id"], r["token"]
    token_id = ctx.state["token_id"]
    b.get(server_page(ctx))
    click_submit(form_with_action(b, f"/ui/tokens/{token_id}/revoke"))
    b.wait_loaded()
    b.get(server_page(ctx))
    check(not any(
        urllib.parse.urlparse(f.get_attribute("action") or "").path.endswith(f"/ui/tokens/{token_id}/revoke")
        for f in b.all("form")
    ), "the revoked token still has a revoke button")
    row = b.driver.find_elements(By.XPATH, f"//*[contains(., '{token_id}') or @id='token-{token_id}']/ancestor-or-self::tr")
    page = b.text()
    check("Revoked" in page or "REVOKED" in page, "the server page does not show the token as revoked")
    if row:
        check(any("revoked" in r.text.lower() for r in row), f"the token's row does not say revoked: {row[-1].text!r}")
    listed = ctx.owner.ok("GET", f"/v1/connect/tokens?server={ensure_server(ctx)['id']}&limit=100")["items"]
    t = next((t for t in listed if t["id"] == token_id), None)
    check(t is not None, "the token is not in GET /v1/connect/tokens")
    check(t["state"] == "REVOKED" and bool(t["revoked_at"]), f"API token state {t['state']}")
    check(introspect(ctx, ctx.state["token_jwt"]) == {"active": False}, "a revoked token still introspects active")


def grant_and_revoke_a_vault(ctx: Ctx) -> None:
    b = ctx.b
    server = ensure_server(ctx)
    if "vault2" not in ctx.state:
        ctx.state["vault2"] = ctx.owner.ok("POST", "/v1/vaults", {"name": "Staging", "type": "USER_CREATED"})
    v2 = ctx.state["vault2"]
    b.get(server_page(ctx))
    sel = b.css("select[name=vault]")
    choose(sel, v2["id"])
    b.submit_form_of(sel)
    b.wait_loaded()
    got = [v["id"] for v in ctx.owner.ok("GET", f"/v1/connect/servers/{server['id']}")["vaults"]]
    check(v2["id"] in got, f"granted vault not on the server: {got}")
    b.get(server_page(ctx))
    check("Staging" in b.text(), "the granted vault is not shown on the server page")
    click_submit(form_with_action(b, f"/vaults/{v2['id']}/revoke"))
    b.wait_loaded()
    got = [v["id"] for v in ctx.owner.ok("GET", f"/v1/connect/servers/{server['id']}")["vaults"]]
    check(v2["id"] not in got, f"revoked vault still on the server: {got}")
    b.get(server_page(ctx))
    check(not any(
        urllib.parse.urlparse(f.get_attribute("action") or "").path.endswith(f"/vaults/{v2['id']}/revoke")
        for f in b.all("form")
    ), "the revoked grant still has a revoke button")


def server_grant_manager_sees_only_that_server(ctx: Ctx) -> None:
    b = ctx.b
    mine = ensure_server(ctx)
    other = ctx.owner.ok("POST", "/v1/connect/servers", {"name": "billing-worker", "vaults": []})["server"]
    user = ctx.owner.ok("POST", "/v1/users", {"name": "Mia Manager", "email": "mia@example.com"})
    key = ctx.owner.ok("POST", f"/v1/users/{user['id']}/keys")["key"]
    group = ctx.owner.ok("POST", "/v1/groups", {"name": "payments-team"})
    ctx.owner.ok("PUT", f"/v1/groups/{group['id']}/members/{user['id']}")
    ctx.owner.ok("PUT", f"/v1/connect/groups/{group['id']}/grants/servers/{mine['id']}")
    ctx.state.update(manager=user, group=group, other_server=other)
    try:
        sign_in(ctx, key)
        b.get("/ui/servers")
        text = b.text()
        check("payments-api" in text, "the manager does not see the server granted to them")
        check("billing-worker" not in text, "the manager sees a server they may not manage")
        links = [a.get_attribute("href") or "" for a in b.all("a")]
        check(not any(other["id"] in h for h in links), "a link to the other server")
        nav = " ".join(a.text for a in b.all("nav a"))
        for label in ("Users", "Audit"):
            check(label not in nav, f"a SERVER-grant manager's nav shows {label}")
        b.get(f"/ui/servers/{other['id']}")
        check(b.h1() == "Not found", f"another's server page: h1 {b.h1()!r}, expected 'Not found'")
        b.get(server_page(ctx))
        check(b.h1() != "Not found", "the manager's own server page is 'Not found'")
        pages = Pages(ctx.service.base)
        try:
            pages.sign_in(key)
            r = pages.get(f"/ui/servers/{other['id']}")
            check(r.status == 404, f"another's server page over HTTP: {r.status}, expected 404")
            check(h1(r.text) == "Not found", "the 404 page's h1")
            r = pages.get(f"/ui/servers/{other['id']}/tokens/new")
            check(r.status == 404, f"another's new-token page: {r.status}, expected 404")
        finally:
            pages.close()
    finally:
        back_to_owner(ctx)
    b.get(f"/ui/servers/{'Z' * 26}")
    ctx.look("not-found")


def form_without_csrf_token_is_refused(ctx: Ctx) -> None:
    b = ctx.b
    b.get("/ui/vaults")
    name_field = b.css("input[name=name]")
    form = name_field.find_element(By.XPATH, "./ancestor::form")
    check(bool(form.find_elements(By.CSS_SELECTOR, "input[type=hidden][name=csrf_token]")), "the form has no csrf_token")
    b.driver.execute_script(
        "arguments[0].querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())", form
    )
    name_field.send_keys("Forged")
    b.submit_form_of(name_field)
    b.wait(lambda: b.h1() != "", message="no page after the forged post")
    check(b.h1() == "Request refused", f"h1 {b.h1()!r} after a post without csrf_token")
    ctx.look("request-refused")
    names = [v["name"] for v in ctx.owner.ok("GET", "/v1/vaults")["items"]]
    check("Forged" not in names, "the refused form still created the vault")
    # Over HTTP: status 403, and a wrong token is refused like a missing one.
    pages = Pages(ctx.service.base)
    try:
        pages.sign_in(ctx.service.owner_key)
        page = pages.get("/ui/vaults")
        good = next(f for f in forms(page.text) if f["action"].endswith("/ui/vaults"))
        r = pages.post("/ui/vaults", {"name": "Forged2", "type": "USER_CREATED"})
        check(r.status == 403, f"POST without csrf_token: HTTP {r.status}, expected 403")
        check(h1(r.text) == "Request refused", "the 403 page's h1")
        r = pages.post("/ui/vaults", {"name": "Forged3", "type": "USER_CREATED", "csrf_token": "A" * 43})
        check(r.status == 403, f"POST with a wrong csrf_token: HTTP {r.status}, expected 403")
        fields = dict(good["fields"], name="Honest", type="USER_CREATED")
        r = pages.post("/ui/vaults", fields)
        check(r.status in (200, 303), f"the same POST with its csrf_token: HTTP {r.status}")
    finally:
        pages.close()
    names = [v["name"] for v in ctx.owner.ok("GET", "/v1/vaults")["items"]]
    check("Forged2" not in names and "Forged3" not in names, "a refused POST created a vault")
    check("Honest" in names, "the POST with its csrf_token did not create the vault")


def expired_session_returns_to_sign_in(ctx: Ctx) -> None:
    """On a second service whose console idle timeout is 4 s."""
    b = ctx.b
    exp = ctx.expiry
    try:
        sign_in(ctx, exp.owner_key, base=exp.base)
        b.driver.get(exp.base + "/ui/servers")
        check(urllib.parse.urlparse(b.driver.current_url).path == "/ui/servers",
              f"a fresh session on the short-timeout service: at {b.driver.current_url}")
        time.sleep(4.5)
        b.driver.get(exp.base + "/ui/servers")
        check(urllib.parse.urlparse(b.driver.current_url).path == "/ui/sign-in",
              f"after 4.5 s idle (timeout 4 s) /ui/servers did not return to sign-in: {b.driver.current_url}")
        check(b.all("input[name=api_key]") != [], "no sign-in form after the session expired")
        # A POST with an expired session goes to sign-in too (303), over HTTP.
        pages = Pages(exp.base)
        try:
            pages.sign_in(exp.owner_key)
            page = pages.get("/ui/vaults")
            form = next(f for f in forms(page.text) if f["action"].endswith("/ui/vaults"))
            time.sleep(4.5)
            r = pages.post("/ui/vaults", dict(form["fields"], name="Late", type="USER_CREATED"))
            check(r.status == 303 and r.headers.get("location", "").endswith("/ui/sign-in"),
                  f"POST with an expired session: {r.status} to {r.headers.get('location')!r}")
        finally:
            pages.close()
    finally:
        back_to_owner(ctx)


def sign_out_ends_the_session(ctx: Ctx) -> None:
    b = ctx.b
    sign_in(ctx)
    b.get("/ui/servers")
    old = b.cookie(COOKIE)
    check(old is not None, "no session cookie")
    b.css("#sign-out").click()
    b.wait_path("/ui/sign-in")
    check(b.cookie(COOKIE) is None or b.cookie(COOKIE)["value"] != old["value"], "the session cookie was kept")
    b.driver.back()
    b.wait_loaded()
    if not b.path.startswith("/ui/sign-in"):
        # A page from the back/forward cache must not be live: reloading it asks to sign in.
        b.driver.refresh()
        b.wait_loaded()
    check(b.path.startswith("/ui/sign-in"), f"back after sign-out shows {b.path}")
    b.get("/ui/servers")
    check(b.path.startswith("/ui/sign-in"), f"after sign-out /ui/servers shows {b.path}")
    # The old cookie, replayed: no longer a session.
    pages = Pages(ctx.service.base)
    try:
        pages.cookies[old["name"]] = old["value"]
        r = pages.get("/ui/servers")
        check(r.status == 303 and r.headers.get("location", "").endswith("/ui/sign-in"),
              f"the old cookie after sign-out: {r.status} to {r.headers.get('location')!r}")
    finally:
        pages.close()
    sign_in(ctx)


def _tab_to(b: Browser, pred: Callable[[Any], bool], what: str, limit: int = 60) -> Any:
    for _ in range(limit):
        ActionChains(b.driver).send_keys(Keys.TAB).perform()
        el = b.driver.switch_to.active_element
        if pred(el):
            return el
    raise AssertionError(f"{limit} Tabs did not reach {what} on {b.path}")


def keyboard_only_create_token(ctx: Ctx) -> None:
    """The create-token flow with the keyboard alone: Tab, typing, Space and Enter; no click."""
    b = ctx.b
    vault = ensure_vault(ctx)
    server = ensure_server(ctx)
    b.get(server_page(ctx))
    b.driver.execute_script("document.activeElement && document.activeElement.blur(); window.focus();")
    _tab_to(b, lambda e: (e.get_attribute("href") or "").endswith("/tokens/new"), "the new-token link")
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    b.wait_path(f"/ui/servers/{server['id']}/tokens/new")
    _tab_to(b, lambda e: e.get_attribute("name") == "name", "the name field")
    ActionChains(b.driver).send_keys("keyboard-bot").perform()
    sel = _tab_to(b, lambda e: e.get_attribute("name") == f"access.{vault['id']}", f"the access select of {vault['id']}")
    for _ in range(4):
        if sel.get_attribute("value") == "read_write":
            break
        ActionChains(b.driver).send_keys(Keys.ARROW_DOWN).perform()
    check(sel.get_attribute("value") == "read_write", f"arrow keys left the select at {sel.get_attribute('value')!r}")
    _tab_to(b, lambda e: e.get_attribute("name") == "expires_in", "the expiry field")
    ActionChains(b.driver).send_keys("7d").perform()
    _tab_to(
        b,
        lambda e: e.tag_name in ("button", "input") and (e.get_attribute("type") or "submit") == "submit"
        and e.get_attribute("id") != "sign-out",
        "the create button",
    )
    ActionChains(b.driver).send_keys(Keys.SPACE).perform()
    code = b.wait(lambda: b.all("code#new-token"), message="no <code id=new-token> after the keyboard flow")[0]
    jwt = code.text.strip()
    _tab_to(b, lambda e: e.get_attribute("id") == "copy-token", "the copy button")
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    got = introspect(ctx, jwt)
    check(got.get("active") is True and got.get("name") == "keyboard-bot", f"introspection: {got}")
    check(got.get("vaults") == [{"id": vault["id"], "acl": READ_ACL + WRITE_ACL}], f"scope {got.get('vaults')}")
    check(abs(got["exp"] - got["iat"] - 7 * 86400) <= 5, "expiry is not 7 days")


def clock_in(t: dt.datetime, text: str) -> bool:
    """Whether `text` shows t's hour and minute, on a 24-hour or a 12-hour clock (the browser's
    locale decides)."""
    h12 = t.hour % 12 or 12
    return bool(re.search(rf"(?<![0-9])({t:%H}|{t.hour}|{h12}):{t:%M}(?![0-9])", text))


def times_show_in_the_browser_zone(ctx: Ctx) -> None:
    b = ctx.b
    ensure_server(ctx)
    b.get("/ui/audit")
    b.wait_loaded()
    times = b.all("time[datetime]")
    check(len(times) > 0, "no <time datetime> on /ui/audit")
    zone = ZoneInfo(BROWSER_TZ)
    for t in times[:10]:
        attr = t.get_attribute("datetime")
        instant = dt.datetime.fromisoformat(attr.replace("Z", "+00:00"))
        check(instant.utcoffset() is not None, f"datetime={attr!r} has no offset")
        local = instant.astimezone(zone)
        utc = instant.astimezone(dt.UTC)
        text = t.text.strip()
        check(clock_in(local, text), f"<time datetime={attr}> reads {text!r}: not {local:%H:%M} in {BROWSER_TZ}")
        check(not clock_in(utc, text), f"<time datetime={attr}> still reads the UTC time: {text!r}")
        check(str(local.day) in text, f"<time datetime={attr}> reads {text!r}: not day {local.day} in {BROWSER_TZ}")
        title = t.get_attribute("title") or ""
        check(f"{utc:%Y-%m-%d}" in title and f"{utc:%H:%M:%S}" in title,
              f"title {title!r} does not give the exact UTC instant {utc:%Y-%m-%d %H:%M:%S}")


def console_change_is_audited_with_the_user_as_actor(ctx: Ctx) -> None:
    b = ctx.b
    server = ensure_server(ctx)
    uid = owner_id(ctx)
    # A change made here and now: a credentials rotation from the server page.
    b.get(server_page(ctx))
    click_submit(form_with_action(b, f"/ui/servers/{server['id']}/credentials"))
    b.wait(lambda: b.all("#download-credentials"), message="no download page after rotating credentials")
    events = ctx.owner.ok("GET", f"/v1/audit/events?actor={uid}&action=server.credentials.rotate")["items"]
    check(any(e["target_id"] == server["id"] and e["actor_id"] == uid and e["outcome"] == "success" for e in events),
          f"no server.credentials.rotate by {uid} on {server['id']} in the audit trail: {events}")
    if "token_id" in ctx.state:
        events = ctx.owner.ok("GET", f"/v1/audit/events?actor={uid}&action=token.revoke")["items"]
        check(any(e["target_id"] == ctx.state["token_id"] for e in events), "the console's token revoke is not audited")
    # The rotated file from the page: the old secret stops working at once (C3), the new one works.
    old_secret = ctx.state["secret"]
    for f in os.listdir(b.downloads):
        os.unlink(os.path.join(b.downloads, f))
    b.css("#download-credentials").click()
    path = os.path.join(b.downloads, "1password-credentials.json")
    b.wait(lambda: os.path.isfile(path) and not any(n.endswith(".crdownload") for n in os.listdir(b.downloads)),
           15, "the rotated credentials did not download")
    shown = credentials_show(ctx, path, reveal=True)
    os.unlink(path)
    check(shown.get("server_id") == server["id"] and shown.get("secret") != old_secret, "the rotated file")
    r = Api(ctx.service.base, basic=(server["id"], old_secret)).call("POST", "/v1/introspect", {"token": "x.y.z"})
    check(r.status == 401, f"the old credentials after rotation: HTTP {r.status}, expected 401")
    ctx.state["secret"] = shown["secret"]
    check(introspect(ctx, "x.y.z") == {"active": False}, "the rotated credentials do not authenticate")
    # The audit page, filtered by action and by the actor's email, shows the event with names:
    # the actor's email and the server's name, linked to its page, with the IDs on hover.
    email = ctx.owner.ok("GET", f"/v1/users/{uid}")["email"]
    b.get(f"/ui/audit?action=server.credentials.rotate&actor={urllib.parse.quote(email)}")
    rows = b.all("main tbody tr")
    check(len(rows) >= 1, "the audit page filtered by action and actor email shows no event")
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    actor = cells[1].find_element(By.TAG_NAME, "a")
    check(actor.text == email and actor.get_attribute("title") == uid,
          f"the actor shows as {actor.text!r} ({actor.get_attribute('title')!r}), expected {email} ({uid})")
    target = cells[3].find_element(By.TAG_NAME, "a")
    check(target.text == server["name"] and target.get_attribute("title") == server["id"]
          and target.get_attribute("href").endswith(f"/ui/servers/{server['id']}"),
          f"the target shows as {target.text!r}, expected the server's name {server['name']!r} linked to its page")


def the_remaining_pages(ctx: Ctx) -> None:
    """Groups, users, a new API key, the overview and the audit trail with data on them."""
    b = ctx.b
    if "group" not in ctx.state:
        ctx.state["group"] = ctx.owner.ok("POST", "/v1/groups", {"name": "payments-team"})
    b.get("/ui/groups")
    check("payments-team" in b.text(), "the group is not listed")
    ctx.look("groups")
    b.get(f"/ui/groups/{ctx.state['group']['id']}")
    check(b.h1() != "Not found", "group page")
    ctx.look("group")
    b.get("/ui/vaults/import")
    check(b.h1() not in ("", "Not found"), f"the vault import page: h1 {b.h1()!r}")
    ctx.look("vault-import")
    b.get("/ui/users")
    ctx.look("users")
    uid = owner_id(ctx)
    b.get(f"/ui/users/{uid}")
    ctx.look("user")
    before = len(ctx.owner.ok("GET", f"/v1/users/{uid}/keys")["items"])
    click_submit(form_with_action(b, f"/ui/users/{uid}/keys"))
    code = b.wait(lambda: b.all("code#new-key"), message="no <code id=new-key> after creating a key")[0]
    ctx.look("key-created")
    check(len(code.text.strip()) >= 32, "the new key shown is too short")
    after = len(ctx.owner.ok("GET", f"/v1/users/{uid}/keys")["items"])
    check(after == before + 1, f"API keys {before} -> {after}")
    b.get("/ui/")
    ctx.look("overview")
    b.get("/ui/servers")
    ctx.look("servers")
    b.get("/ui/audit")
    ctx.look("audit")


def no_serious_or_critical_axe_violation_on_any_page(ctx: Ctx) -> None:
    """Runs only on the backend that looks at the pages (the runner skips it elsewhere)."""
    missing_pages = [p for p in PAGES if p not in ctx.axe]
    bad = {
        page: [f"{v['impact']} {v['id']} ({v['help']}) at {', '.join(v['nodes'])}" for v in vs if v.get("impact") in a11y.FAILING]
        for page, vs in ctx.axe.items()
    }
    bad = {p: v for p, v in bad.items() if v}
    lines = [f"{p}: {'; '.join(v)}" for p, v in bad.items()]
    check(not bad, "serious or critical violations:\n    " + "\n    ".join(lines))
    check(not missing_pages, f"pages not checked (an earlier scenario failed before them): {missing_pages}")


no_serious_or_critical_axe_violation_on_any_page.needs_photos = True  # type: ignore[attr-defined]

SCENARIOS: list[Callable[[Ctx], None]] = [
    sign_in_with_an_api_key,
    create_a_vault,
    create_a_server_and_download_its_credentials,
    create_a_token_and_introspect_the_copied_jwt,
    revoke_a_token_and_see_it_revoked,
    grant_and_revoke_a_vault,
    server_grant_manager_sees_only_that_server,
    form_without_csrf_token_is_refused,
    expired_session_returns_to_sign_in,
    sign_out_ends_the_session,
    keyboard_only_create_token,
    times_show_in_the_browser_zone,
    console_change_is_audited_with_the_user_as_actor,
    the_remaining_pages,
    no_serious_or_critical_axe_violation_on_any_page,
]
