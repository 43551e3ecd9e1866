"""What a browser may do to the server: cross-site writes, DNS rebinding, framing, and the
security headers; each against a real `assistant serve`, with real multipart uploads and,
where it matters, a real browser (Debian's Chromium driven by Playwright)."""

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

import tests.web_helpers  # noqa: F401  (the page tests are skipped where Chromium is missing)
from assistant.runtime import Runtime
from tests.conftest import ServerProcess, free_port, seeded_data

SEED = "lavrov-visite-coree-du-nord.md"
FORGED = "# Faux\n\nLe ministre annule sa visite et la Russie rompt toute relation avec la Corée du Nord.\n"
NOTE = "# Note\n\nLe port de Rason accueille désormais des cargos russes chaque semaine, selon le port.\n"
EVIL = "https://evil.example"
APP = "https://app.example"
ASK = {"question": "Qui est Sergueï Lavrov ?"}
CHAT = {"model": "document-assistant", "messages": [{"role": "user", "content": "Qui est Sergueï Lavrov ?"}]}


def upload(url: str, name: str, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A multipart upload of one Markdown file, as a form or a page's fetch would send it."""
    files = {"files": (name, text.encode(), "text/markdown")}
    return httpx.post(f"{url}/api/documents", files=files, headers=headers or {}, timeout=60)


def document_text(url: str, name: str) -> str:
    response = httpx.get(f"{url}/api/documents/{name}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["text"]


def error_type(response: httpx.Response) -> str:
    return response.json()["error"]["type"]


def csp(response: httpx.Response) -> dict[str, str]:
    """The response's Content-Security-Policy, directive by directive."""
    policy = response.headers["content-security-policy"]
    directives = (part.strip().partition(" ") for part in policy.split(";") if part.strip())
    return {name: value.strip() for name, _, value in directives}


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An open server with the defaults: no keys, no CORS, the loopback host names."""
    server = ServerProcess(seeded_data(tmp_path_factory.mktemp("open")), ASSISTANT_RATE_LIMIT_PER_MINUTE="0").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def listed_server(tmp_path_factory: pytest.TempPathFactory, attacker: "AttackerSite") -> Iterator[ServerProcess]:
    """A server listening on every address, answering to one listed name, without the
    documentation pages, whose CORS allows an app's origin and (to show what CORS lets through)
    the test attacker's."""
    server = ServerProcess(
        seeded_data(tmp_path_factory.mktemp("listed")),
        ASSISTANT_HOST="0.0.0.0",
        ASSISTANT_ALLOWED_HOSTS="assistant.test",
        ASSISTANT_CORS_ORIGINS=f"{APP},{attacker.url}",
        ASSISTANT_API_DOCS="false",
        ASSISTANT_RATE_LIMIT_PER_MINUTE="0",
    ).start()
    yield server
    server.stop()


# --- cross-site writes ---------------------------------------------------------------------

BROWSERS_ON_ANOTHER_SITE = {
    "fetch metadata and origin": {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    "origin only (older browsers)": {"Origin": EVIL},
    "fetch metadata only": {"Sec-Fetch-Site": "cross-site"},
    "sandboxed or file page": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    "another app on this machine": {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
}


@pytest.mark.parametrize("headers", BROWSERS_ON_ANOTHER_SITE.values(), ids=BROWSERS_ON_ANOTHER_SITE.keys())
def test_a_page_of_another_site_cannot_replace_a_document(open_server: str, headers: dict[str, str]) -> None:
    before = document_text(open_server, SEED)
    response = upload(open_server, SEED, FORGED, headers)
    assert response.status_code == 403 and error_type(response) == "cross_site"
    if "Origin" in headers:
        assert "ASSISTANT_CORS_ORIGINS" in response.json()["error"]["message"]
    assert document_text(open_server, SEED) == before


def test_a_page_of_another_site_cannot_delete_or_drive_the_answers(open_server: str) -> None:
    evil = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    deleted = httpx.delete(f"{open_server}/api/documents/{SEED}", headers=evil, timeout=30)
    assert deleted.status_code == 403 and error_type(deleted) == "cross_site"
    assert document_text(open_server, SEED)
    for path, body in (("/api/answer", ASK), ("/api/answer/stream", ASK), ("/v1/chat/completions", CHAT)):
        response = httpx.post(f"{open_server}{path}", json=body, headers=evil, timeout=60)
        assert response.status_code == 403 and error_type(response) == "cross_site", path


def test_the_page_itself_and_clients_without_a_browser_still_change_documents(open_server: str) -> None:
    port = urlsplit(open_server).port
    same_origin = {"Origin": open_server, "Sec-Fetch-Site": "same-origin"}
    added = upload(open_server, "note.md", NOTE, same_origin)
    assert added.status_code == 201 and added.json()["documents"][0]["status"] == "added"
    # The page reached by another of the server's names sends that name as Origin and Host.
    by_name = {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
    assert httpx.post(f"{open_server}/api/answer", json=ASK, headers=by_name, timeout=60).status_code == 200
    # A proxy that rewrites Host: the browser still vouches for the page's origin.
    proxied = {"Origin": "https://assistant.example", "Sec-Fetch-Site": "same-origin"}
    assert httpx.post(f"{open_server}/api/answer", json=ASK, headers=proxied, timeout=60).status_code == 200
    # curl, scripts and other servers send neither Origin nor Sec-Fetch-Site.
    updated = upload(open_server, "note.md", NOTE + "\nUne seconde phrase assez longue pour compter ici.\n")
    assert updated.status_code == 201 and updated.json()["documents"][0]["status"] == "updated"
    assert httpx.delete(f"{open_server}/api/documents/note.md", timeout=30).status_code == 204


def test_an_origin_allowed_by_cors_may_change_documents(listed_server: ServerProcess) -> None:
    url = listed_server.url
    allowed = upload(url, "note.md", NOTE, {"Origin": APP, "Sec-Fetch-Site": "cross-site"})
    assert allowed.status_code == 201, allowed.text
    assert allowed.headers["access-control-allow-origin"] == APP
    refused = upload(url, "note.md", FORGED, {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403 and error_type(refused) == "cross_site"
    assert document_text(url, "note.md").startswith("# Note")
    assert httpx.delete(f"{url}/api/documents/note.md", headers={"Origin": APP}, timeout=30).status_code == 204


# --- host names (DNS rebinding) ------------------------------------------------------------


def test_a_name_the_server_does_not_answer_to_is_refused_before_any_route(open_server: str) -> None:
    before = document_text(open_server, SEED)
    rebound = {"Host": "rebind.attacker.example"}
    for path in ("/", "/healthz", "/api/documents", f"/api/documents/{SEED}"):
        response = httpx.get(f"{open_server}{path}", headers=rebound, timeout=30)
        assert response.status_code == 400 and error_type(response) == "invalid_host", path
        message = response.json()["error"]["message"]
        assert "rebind.attacker.example" in message and "ASSISTANT_ALLOWED_HOSTS" in message
    # The attacker's page is then same-origin with the rebound name: the host check stops it.
    forged = upload(open_server, SEED, FORGED, {**rebound, "Sec-Fetch-Site": "same-origin"})
    assert forged.status_code == 400 and error_type(forged) == "invalid_host"
    assert document_text(open_server, SEED) == before


def test_the_loopback_names_are_served_by_default(open_server: str) -> None:
    port = urlsplit(open_server).port
    for host in (f"localhost:{port}", f"LOCALHOST:{port}", "localhost.", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{open_server}/healthz", headers={"Host": host}, timeout=30).status_code == 200, host


def test_listed_names_and_the_address_reached_are_served_on_every_address(listed_server: ServerProcess) -> None:
    port = listed_server.port
    assert httpx.get(f"{listed_server.url}/healthz", headers={"Host": f"assistant.test:{port}"}).status_code == 200
    # Listening on 0.0.0.0, the server is reached by an address it was not told about.
    assert httpx.get(f"http://127.0.0.2:{port}/healthz", timeout=30).status_code == 200
    # The listed names replace the default ones.
    refused = httpx.get(f"{listed_server.url}/healthz", headers={"Host": f"localhost:{port}"}, timeout=30)
    assert refused.status_code == 400 and error_type(refused) == "invalid_host"
    assert "'localhost'" in refused.json()["error"]["message"]


# --- security headers and the documentation pages -------------------------------------------


def test_every_response_carries_the_security_headers(open_server: str) -> None:
    responses = {
        "page": httpx.get(f"{open_server}/"),
        "script": httpx.get(f"{open_server}/app.js"),
        "api": httpx.get(f"{open_server}/api/documents"),
        "health": httpx.get(f"{open_server}/healthz"),
        "not found": httpx.get(f"{open_server}/api/nothing"),
        "invalid": httpx.post(f"{open_server}/api/answer", json={}),
        "wrong host": httpx.get(f"{open_server}/", headers={"Host": "rebind.attacker.example"}),
        "cross-site": httpx.post(f"{open_server}/api/answer", json=ASK, headers={"Origin": EVIL}),
        "docs": httpx.get(f"{open_server}/docs"),
        "openapi": httpx.get(f"{open_server}/openapi.json"),
    }
    assert [r.status_code for r in responses.values()] == [200, 200, 200, 200, 404, 422, 400, 403, 200, 200]
    for what, response in responses.items():
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["x-frame-options"] == "DENY", what
        assert headers["referrer-policy"] == "no-referrer", what
        policy = csp(response)
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'", what
        assert policy["default-src"] == "'none'" and policy["base-uri"] == "'none'", what
    page = csp(responses["page"])
    assert page["style-src"] == "'self'" and page["connect-src"] == "'self'" and page["img-src"] == "'self'"


def test_an_unexpected_failure_carries_the_security_headers_too(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from assistant.http.app import create_app

    def broken() -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(runtime.store, "documents", broken)
    with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=False) as client:
        response = client.get("/api/documents")
    assert response.status_code == 500 and error_type(response) == "internal_error"
    assert csp(response)["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY"


def test_the_documentation_pages_can_be_turned_off_and_the_schema_stays(listed_server: ServerProcess) -> None:
    for path in ("/docs", "/redoc"):
        assert httpx.get(f"{listed_server.url}{path}", timeout=30).status_code == 404, path
    assert httpx.get(f"{listed_server.url}/openapi.json", timeout=30).json()["info"]["title"]


# --- in a real browser ---------------------------------------------------------------------

# Records what the Content-Security-Policy blocked, in every page and frame.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push({directive: e.effectiveDirective, blocked: e.blockedURI}));
"""


class AttackerSite:
    """Pages of another site (http://evil.test:<port>), served from this machine."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://evil.test:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    yield site
    site.close()


def test_a_page_on_another_site_cannot_upload_through_the_browser(
    browser, attacker: AttackerSite, open_server: str, listed_server: ServerProcess
) -> None:
    before = document_text(open_server, SEED)
    # No preflight: a multipart POST is a "simple" request, sent whatever CORS says. The same
    # upload also goes to a server whose CORS allows the attacker's site, where it gets through.
    attacker.pages["/upload.html"] = f"""<!doctype html><title>win a prize</title><script>
      function send(server, mode) {{
        const form = new FormData();
        form.append("files", new Blob([{json.dumps(FORGED)}], {{type: "text/markdown"}}), {json.dumps(SEED)});
        return fetch(server + "/api/documents", {{method: "POST", body: form, mode}})
          .then((response) => response.status, () => "failed");
      }}
      Promise.all([send("{open_server}", "no-cors"), send("{listed_server.url}", "cors")])
        .then((statuses) => {{ window.statuses = statuses; }});
    </script>"""
    page = browser.new_page()
    page.goto(f"{attacker.url}/upload.html")
    statuses = page.wait_for_function("window.statuses").json_value()
    assert statuses[1] == 201 and "rompt toute relation" in document_text(listed_server.url, SEED)
    assert document_text(open_server, SEED) == before
    page.close()


def test_a_rebound_name_gets_no_page(browser, open_server: str) -> None:
    page = browser.new_page()
    response = page.goto(f"http://rebind.attacker.test:{urlsplit(open_server).port}/")
    assert response is not None and response.status == 400
    assert "ASSISTANT_ALLOWED_HOSTS" in page.content() and page.locator("#composer").count() == 0
    page.close()


def test_the_page_cannot_be_framed_by_another_site(browser, attacker: AttackerSite, open_server: str) -> None:
    attacker.pages["/frame.html"] = f'<!doctype html><iframe src="{open_server}/" width="800" height="600"></iframe>'
    page = browser.new_page()
    with page.expect_response(f"{open_server}/") as framed:
        page.goto(f"{attacker.url}/frame.html")
    assert framed.value.status == 200  # the server answered; the browser would not show it
    page.wait_for_load_state("load")
    assert all(frame.query_selector("#composer") is None for frame in page.frames)
    page.close()


@contextlib.contextmanager
def offline_page(browser, origin: str) -> Iterator:
    """A page that can reach nothing but the server, recording CSP violations and script errors."""
    context = browser.new_context()
    outside: list[str] = []

    def only_the_server(route) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.outside = outside  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()


def test_the_chat_page_works_under_its_policy(browser, open_server: str) -> None:
    with offline_page(browser, open_server) as page:
        page.goto(f"{open_server}/")
        page.locator("#starters li button").first.click()
        answer = page.locator(".message.assistant").first
        answer.and_(page.locator(":not(.streaming)")).wait_for()
        if answer.locator(".text .cite").count():
            answer.locator(".text .cite").first.click()
            page.locator("#panel-text mark").wait_for()
        page.fill("#question", "Une question\nsur deux lignes, pour agrandir la zone de saisie.")
        assert page.evaluate("window.__violations") == []
        assert page.errors == [] and page.outside == []


def test_the_documentation_pages_work_offline_under_their_policy(browser, open_server: str) -> None:
    with offline_page(browser, open_server) as page:
        page.goto(f"{open_server}/docs")
        page.locator("#operations-documents-upload_documents_api_documents_post").wait_for()
        assert page.evaluate("window.__violations") == [] and page.errors == [] and page.outside == []
    with offline_page(browser, open_server) as page:
        page.goto(f"{open_server}/redoc")
        page.get_by_role("heading", name="Document assistant").first.wait_for()
        page.get_by_role("heading", name="Upload Documents").first.wait_for()
        assert page.errors == []
        # Only ReDoc's vendor logo, fetched from its makers' site, is held back.
        blocked = page.evaluate("window.__violations")
        assert all(not v["blocked"].startswith((open_server, "inline", "eval", "blob", "data")) for v in blocked)
