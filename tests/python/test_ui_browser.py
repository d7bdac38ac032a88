"""The web UI in a real browser: Debian's chromium, headless, driven by selenium through
chromedriver, against a real `evalforge backend` seeded over OTLP by the OpenTelemetry SDK. Every
page renders real data with no console errors, filters change the results, user data cannot run
script, and each page is saved as a screenshot under .build/ui-screenshots/.

The experiment pages get a dataset and two runs made through the evaluation API: the recorded
answers, and a candidate answered by `evalforge mock-llm` (judged by it too); the pages must show
the numbers the API computes."""
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

import evalforge_backend as eb
import evalforge_harness as h

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".build", "ui-screenshots"))
MARKER = "Zebra-7731"
EVIL = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"


def find_binary(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def browser():
    chromium = find_binary("chromium", "chromium-browser")
    driver_bin = find_binary("chromedriver")
    if not chromium or not driver_bin:
        pytest.fail("chromium and chromedriver are needed: apt-get install chromium chromium-driver (scripts/setup does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1000",
              "--hide-scrollbars", "--force-color-profile=srgb", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    with eb.backend(tmp) as url:
        sent = eb.seed(url, traces=60, marker=MARKER)
        send_evil(url)
        eb.wait_for_traces(url, 61)
        os.makedirs(SHOTS, exist_ok=True)
        yield url, sent


def send_evil(url):
    """One trace whose every user-controlled field tries to inject markup."""
    import json
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import set_span_in_context
    p = TracerProvider(resource=Resource.create({"service.name": "svc" + EVIL}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {eb.API_KEY}"})))
    t = p.get_tracer("evil")
    attrs = {"user.id": "u" + EVIL, "session.id": "s" + EVIL, "evalforge.tags": [EVIL], "note" + EVIL: EVIL}
    root = t.start_span("root" + EVIL, attributes=attrs)
    llm = t.start_span("chat" + EVIL, context=set_span_in_context(root), attributes={
        **attrs, "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini" + EVIL,
        "gen_ai.input.messages": json.dumps([{"role": "user" + EVIL, "parts": [{"type": "text", "content": EVIL}]}]),
        "gen_ai.output.messages": "not json " + EVIL})
    llm.end()
    root.end()
    p.shutdown()


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def shot(driver, name, full=True):
    if full:
        height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        driver.set_window_size(1440, min(max(int(height) + 40, 900), 4000))
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    driver.set_window_size(1440, 1000)
    print(f"screenshot: {path}")
    return path


def visit(driver, url):
    driver.get(url)
    errs = console_errors(driver)
    assert not errs, f"console errors on {url}: {errs}"
    assert driver.execute_script("return window.__xss") is None, f"injected script ran on {url}"


def wait_url(driver, part, timeout=15):
    """Clicks and form submissions return before the next page loads; wait for it."""
    WebDriverWait(driver, timeout).until(lambda drv: part in drv.current_url and drv.execute_script("return document.readyState") == "complete")


def trace_rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "table#traces tbody tr")


def test_pages_filters_and_screenshots(browser, site):
    url, sent = site
    d = browser
    # Signing in: the UI redirects to /login and back.
    d.get(url + "/traces")
    assert "/login" in d.current_url
    d.find_element(By.ID, "api_key").send_keys(eb.API_KEY)
    shot(d, "00-login", full=False)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(d, 15).until(lambda drv: drv.current_url.endswith("/traces"))
    assert not console_errors(d)

    visit(d, url + "/?range=24h")
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.chart")) >= 4
    kpis = d.find_element(By.CSS_SELECTOR, ".kpis").text
    assert str(sent["traces"] + 1) in kpis  # requests, the injected trace included
    models = [r.text for r in d.find_elements(By.CSS_SELECTOR, "table#by-model tbody tr td:first-child")]
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o"} <= set(models)
    shot(d, "01-dashboard")

    visit(d, url + "/traces")
    all_rows = len(trace_rows(d))
    assert all_rows == sent["traces"] + 1
    shot(d, "02-traces")

    # Filters change the results: a model from the select box...
    Select(d.find_element(By.ID, "f-model")).select_by_value("claude-sonnet-4-5")
    d.find_element(By.CSS_SELECTOR, "#trace-filters button[type=submit]").click()
    wait_url(d, "model=claude-sonnet-4-5")
    rows = trace_rows(d)
    assert len(rows) == sent["models"]["claude-sonnet-4-5"] and len(rows) < all_rows
    assert all("claude-sonnet-4-5" in r.text for r in rows)
    assert not console_errors(d)
    shot(d, "03-traces-filtered-model")
    # ...status...
    visit(d, url + "/traces")
    Select(d.find_element(By.ID, "f-status")).select_by_value("error")
    d.find_element(By.CSS_SELECTOR, "#trace-filters button[type=submit]").click()
    wait_url(d, "status=error")
    rows = trace_rows(d)
    assert len(rows) == sent["errors"] and all("Error" in r.text for r in rows)
    # ...and text search in the content.
    visit(d, url + "/traces")
    box = d.find_element(By.ID, "f-q")
    box.send_keys(MARKER)
    box.submit()
    wait_url(d, "q=" + MARKER)
    rows = trace_rows(d)
    # The marker is in trace 3's question; its session (conv-003: traces 3, 15, 27, 39, 51) resends
    # the history, so those five traces match, and nothing else.
    assert len(rows) == 5 and all("conv-003" in r.text for r in rows)
    shot(d, "04-traces-search")

    # Trace detail: waterfall and rendered messages; clicking a span shows its details.
    rows[0].find_element(By.CSS_SELECTOR, "a.name").click()
    wait_url(d, "/traces/")
    assert not console_errors(d)
    wf = d.find_elements(By.CSS_SELECTOR, ".wf-row")
    assert len(wf) == 3
    visible = [p for p in d.find_elements(By.CSS_SELECTOR, ".span-detail") if p.is_displayed()]
    assert len(visible) == 1 and MARKER in visible[0].text  # the LLM span is selected first
    assert visible[0].find_elements(By.CSS_SELECTOR, ".msg.user") and visible[0].find_elements(By.CSS_SELECTOR, ".msg.assistant")
    shot(d, "05-trace-detail")
    wf[2].click()
    visible = [p for p in d.find_elements(By.CSS_SELECTOR, ".span-detail") if p.is_displayed()]
    assert len(visible) == 1 and "execute_tool lookup_order" in visible[0].text
    assert "sel" in wf[2].get_attribute("class")

    # Sessions and the conversation view.
    visit(d, url + "/sessions")
    assert len(d.find_elements(By.CSS_SELECTOR, "table#sessions tbody tr")) == len(sent["sessions"]) + 1
    shot(d, "06-sessions")
    visit(d, url + "/sessions/conv-003")
    bubbles = d.find_elements(By.CSS_SELECTOR, "#conversation .bubble")
    assert len(bubbles) >= 4
    assert any(MARKER in b.text for b in bubbles)
    shot(d, "07-session-conversation")

    visit(d, url + "/users")
    assert len(d.find_elements(By.CSS_SELECTOR, "table#users tbody tr")) == len(sent["users"]) + 1
    shot(d, "08-users")

    # Injected markup shows as text on every page that lists it.
    for path in ["/traces?service=" + "svc%3Cimg", "/sessions", "/users", "/?range=24h"]:
        visit(d, url + path)
    evil_row = [r for r in (visit(d, url + "/traces") or trace_rows(d)) if "root<img" in r.text]
    assert evil_row, "the injected trace's name should render as text"
    evil_row[0].find_element(By.CSS_SELECTOR, "a.name").click()
    wait_url(d, "/traces/")
    assert not console_errors(d)
    assert d.execute_script("return window.__xss") is None
    assert EVIL in d.find_element(By.TAG_NAME, "main").text
    shot(d, "09-injection-rendered-as-text")

    # Dark theme.
    visit(d, url + "/?range=24h")
    d.find_element(By.ID, "theme-toggle").click()
    time.sleep(0.2)
    assert d.execute_script("return document.documentElement.getAttribute('data-theme')") in ("dark", "light")
    if d.execute_script("return document.documentElement.getAttribute('data-theme')") != "dark":
        d.find_element(By.ID, "theme-toggle").click()
    shot(d, "10-dashboard-dark")
    visit(d, url + "/traces?q=" + MARKER)
    trace_rows(d)[0].find_element(By.CSS_SELECTOR, "a.name").click()
    wait_url(d, "/traces/")
    shot(d, "11-trace-detail-dark")
    assert not console_errors(d)


def raw_get(url, path, headers):
    """GET without following redirects: (status, Location, body)."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read().decode(errors="replace")
    c.close()
    return r.status, r.getheader("Location"), body


def test_session_cookie_csrf_and_sign_out(browser, site):
    """The sign-in starts a server-side session: the cookie is HttpOnly and SameSite=Strict and holds
    no key (the old raw-key cookie is gone), forms carry the CSRF token, the API takes the cookie only
    with X-CSRF-Token, and signing out ends the session on the server."""
    url, _ = site
    d = browser
    d.get(url + "/login")
    d.delete_all_cookies()
    # A browser signed in by an older version holds the raw key in `evalforge_key`: it signs nothing in.
    d.add_cookie({"name": "evalforge_key", "value": eb.API_KEY, "path": "/"})
    d.get(url + "/traces")
    assert "/login" in d.current_url
    assert d.find_element(By.CSS_SELECTOR, "form.login input[name=csrf_token]").get_attribute("value")
    d.find_element(By.ID, "api_key").send_keys(eb.API_KEY)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_url(d, "/traces")
    assert not console_errors(d)

    cookies = {c["name"]: c for c in d.get_cookies()}
    assert "evalforge_key" not in cookies, "the raw-key cookie of older versions is gone"
    session = cookies["evalforge_session"]
    assert session["httpOnly"] is True and session.get("sameSite") == "Strict" and session["path"] == "/"
    assert eb.API_KEY not in session["value"] and len(session["value"]) == 64
    assert "evalforge_session" not in d.execute_script("return document.cookie"), "HttpOnly: scripts cannot read it"

    # Every state-changing form carries the session's token, which the page's meta tag also holds.
    token = d.find_element(By.CSS_SELECTOR, "meta[name=csrf-token]").get_attribute("content")
    assert len(token) == 64
    for form in d.find_elements(By.CSS_SELECTOR, "form[method=post]"):
        assert form.find_element(By.CSS_SELECTOR, "input[name=csrf_token]").get_attribute("value") == token
    # The export links use the session (under /ui/export) and work.
    link = d.find_element(By.CSS_SELECTOR, ".links a").get_attribute("href")
    assert "/ui/export/" in link
    cookie = {"Cookie": "evalforge_session=" + session["value"]}
    status, _, body = raw_get(url, link[len(url):], cookie)
    assert status == 200 and body.count("\n") > 1

    # The API: the cookie alone is refused; with X-CSRF-Token it is accepted.
    status, _, body = raw_get(url, "/api/traces", cookie)
    assert status == 403 and "X-CSRF-Token" in body
    status, _, _ = raw_get(url, "/api/traces", {**cookie, "X-CSRF-Token": token})
    assert status == 200

    # Sign out: the session ends on the server, so a copy of the cookie is worthless.
    d.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait_url(d, "/login")
    assert "evalforge_session" not in {c["name"] for c in d.get_cookies()}
    status, location, _ = raw_get(url, "/traces", cookie)
    assert status == 303 and location.startswith("/login")
    status, _, _ = raw_get(url, "/api/traces", {**cookie, "X-CSRF-Token": token})
    assert status == 401


# --- Experiments: a dataset, two runs and their comparison -------------------------------------

FAQ = [
    ("How do I get a refund?", "refund", "Open Orders, pick the order and choose Request refund."),
    ("Can I change the delivery address?", "address", "Yes: open the order and choose Change address."),
    ("Where is my invoice?", "invoice", "Every invoice is under Billing, then Invoices."),
    ("How do I reset my password?", "password", "Use Forgot password on the sign-in page."),
    ("Do you ship to Norway?", "Norway", "Yes, we ship to Norway in 3 to 5 days."),
    ("Which plan has SSO?", "Team", "The Team plan includes SSO."),
    ("How do I cancel my subscription?", "cancel", "I'm sorry, but I can't help with that."),
    ("Is there a student discount?", "discount", "I'm sorry, but I can't help with that."),
    ("What payment methods do you accept?", "card", "We accept every major card and PayPal."),
    ("How do I delete my account?", "delete", "Settings, Account, then Delete account."),
    ("Can I pause deliveries?", "pause", "As an AI, I cannot answer that."),
    ("Translate 'thank you' to French. " + EVIL, "Merci", "Merci."),
]


@contextlib.contextmanager
def mock_llm():
    port = h.free_port()
    proc = subprocess.Popen([h.BIN, "mock-llm", "--port", str(port), "--seed", "7", "--latency", "uniform:1-5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def api(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {eb.API_KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def wait_run(url, run_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = api(url, "GET", f"/api/runs/{run_id}")
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


@pytest.fixture(scope="module")
def experiments(site):
    """The recorded answers (base) against the mock LLM's (candidate), scored by three heuristics
    and a relevance judge on the mock LLM."""
    url, _ = site
    with mock_llm() as llm:
        api(url, "POST", "/api/providers", {"name": "mock", "kind": "openai", "baseURL": llm + "/v1", "apiKey": "test", "model": "gpt-4o-mini", "backoffMs": 20})
        for spec in ({"name": "has_answer", "type": "contains", "ignoreCase": True}, {"name": "no_refusal", "type": "refusal"},
                     {"name": "concise", "type": "length", "max": 200}, {"name": "relevant", "type": "judge", "provider": "mock", "rubric": "relevance"}):
            api(url, "POST", "/api/evaluators", spec)
        evaluators = ["has_answer", "no_refusal", "concise", "relevant"]
        ds = api(url, "POST", "/api/datasets", {"name": "support-faq", "description": "Support answers " + EVIL,
                                                "items": [{"input": q, "expected": e, "output": o} for q, e, o in FAQ]})
        base = api(url, "POST", "/api/experiments", {"name": "recorded answers", "datasetId": ds["id"], "target": {"type": "recorded"}, "evaluators": evaluators})["run"]
        base = wait_run(url, base["id"])
        cand = api(url, "POST", "/api/experiments", {"name": "gpt-4o-mini prompt v2", "datasetId": ds["id"], "evaluators": evaluators,
                                                     "target": {"type": "provider", "provider": "mock", "model": "gpt-4o-mini", "system": "Answer in one sentence."}})["run"]
        cand = wait_run(url, cand["id"])
    assert base["status"] == "completed" and cand["status"] == "completed", (base, cand)
    comparison = api(url, "GET", f"/api/runs/{base['id']}/compare/{cand['id']}")
    return {"dataset": ds, "base": base, "candidate": cand, "compare": comparison}


def sign_in(d, url, path):
    d.get(url + path)
    if "/login" in d.current_url:
        d.find_element(By.ID, "api_key").send_keys(eb.API_KEY)
        d.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait_url(d, path)
    # Light theme for these screenshots (the first test leaves the browser dark).
    d.execute_script("localStorage.removeItem('evalforge-theme'); document.documentElement.removeAttribute('data-theme')")


def score(v):
    return "–" if v is None else f"{v:.3f}"


def delta(v):
    if v is None:
        return "–"
    if abs(v) < 0.0005:
        return "0.000"
    return ("+" if v > 0 else "−") + f"{abs(v):.3f}"


def p_value(p):
    return "–" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def test_experiment_pages(browser, site, experiments):
    url, _ = site
    d = browser
    base, cand, cmp = experiments["base"], experiments["candidate"], experiments["compare"]
    sign_in(d, url, "/experiments")

    # The list: the dataset with its item count, both runs newest first with their aggregates.
    visit(d, url + "/experiments")
    ds_rows = d.find_elements(By.CSS_SELECTOR, "table#datasets tbody tr")
    assert len(ds_rows) == 1 and "support-faq" in ds_rows[0].text and str(len(FAQ)) in ds_rows[0].text
    assert EVIL in ds_rows[0].text  # the description, as text
    runs = d.find_elements(By.CSS_SELECTOR, "table#runs tbody tr")
    assert [r.get_attribute("data-run") for r in runs] == [cand["id"], base["id"]]
    for row, run in zip(runs, [cand, base]):
        assert "Completed" in row.text and f"{len(FAQ)}/{len(FAQ)}" in row.text
        for agg in run["aggregates"]:
            assert f"{agg['evaluator']} {score(agg.get('mean'))}" in row.text, (agg, row.text)
    assert cand["judge"]["calls"] > 0 and f"{cand['judge']['calls']} calls" in runs[0].text
    shot(d, "12-experiments")

    # One run: per-evaluator aggregates and every item with each evaluator's result.
    runs[1].find_element(By.CSS_SELECTOR, "a.name").click()
    wait_url(d, "/experiments/runs/" + base["id"])
    assert not console_errors(d)
    aggs = d.find_elements(By.CSS_SELECTOR, "table#aggregates tbody tr")
    assert len(aggs) == len(base["aggregates"]) == 4
    for row, agg in zip(aggs, base["aggregates"]):
        assert row.text.startswith(agg["evaluator"]) and score(agg.get("mean")) in row.text
    items = d.find_elements(By.CSS_SELECTOR, "table#items tbody tr")
    assert len(items) == len(FAQ)
    assert EVIL in items[-1].text and d.execute_script("return window.__xss") is None
    assert "I'm sorry, but I can't help with that." in items[6].text and "fail" in items[6].text
    shot(d, "13-experiment-run")
    visit(d, url + "/experiments/runs/" + cand["id"])
    assert len(d.find_elements(By.CSS_SELECTOR, "table#items tbody tr")) == len(FAQ)
    assert d.find_elements(By.CSS_SELECTOR, "table#items td.result .expl")  # the judge's explanations
    shot(d, "14-experiment-run-candidate")

    # Compare: picked in the form, the numbers of GET /api/runs/{base}/compare/{candidate}.
    visit(d, url + "/experiments/compare")
    Select(d.find_element(By.ID, "f-base")).select_by_value(base["id"])
    Select(d.find_element(By.ID, "f-candidate")).select_by_value(cand["id"])
    d.find_element(By.CSS_SELECTOR, "#compare-form button[type=submit]").click()
    wait_url(d, f"base={base['id']}&candidate={cand['id']}")
    assert not console_errors(d)
    rows = d.find_elements(By.CSS_SELECTOR, "table#deltas tbody tr")
    assert [r.get_attribute("data-evaluator") for r in rows] == [e["evaluator"] for e in cmp["evaluators"]]
    for row, e in zip(rows, cmp["evaluators"]):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == str(e["pairs"])
        assert cells[2:5] == [score(e.get("baseMean")), score(e.get("candidateMean")), delta(e.get("meanDelta"))], cells
        assert cells[6] == p_value(e.get("pValue")), cells
        if e.get("ci95"):
            assert cells[5] == f"[{delta(e['ci95'][0])}, {delta(e['ci95'][1])}]"
        assert cells[7:10] == [str(e["improved"]), str(e["regressed"]), str(e["unchanged"])]
        assert cells[10]  # the verdict
    regressed = [r.get_attribute("data-item") for r in d.find_elements(By.CSS_SELECTOR, "table#regressions tbody tr")]
    improved = [r.get_attribute("data-item") for r in d.find_elements(By.CSS_SELECTOR, "table#improvements tbody tr")]
    assert regressed == [x["itemID"] for x in cmp["regressions"]] and regressed, cmp["regressions"]
    assert improved == [x["itemID"] for x in cmp["improvements"]]
    # The recorded refusals are answered by the candidate: improvements on no_refusal.
    assert any(x["evaluator"] == "no_refusal" for x in cmp["improvements"])
    assert d.find_element(By.ID, "kpi-regressions").text == str(sum(e["regressed"] for e in cmp["evaluators"]))
    assert d.find_element(By.ID, "kpi-unchanged").text == str(sum(e["unchanged"] for e in cmp["evaluators"]))
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.chart.deltas rect")) == len(cmp["evaluators"])
    assert d.find_element(By.ID, "verdict").text
    assert d.execute_script("return window.__xss") is None
    shot(d, "15-experiment-compare")

    # Bad and unknown ids: error pages, not crashes. (The browser logs the page's own 404/400 status;
    # nothing else may appear.)
    for path, status, text in [("/experiments/runs/run_00000000deadbeef", 404, "does not exist"),
                               ("/experiments/compare?base=" + base["id"] + "&candidate=%3Cimg%20src%3Dx%3E", 400, "not a run id")]:
        d.get(url + path)
        errs = [e for e in console_errors(d) if f"status of {status}" not in e["message"]]
        assert not errs, errs
        assert text in d.find_element(By.ID, "error").text
        assert d.execute_script("return window.__xss") is None
    shot(d, "16-experiment-error", full=False)
