"""The web UI in a real browser: Debian's chromium, headless, driven by selenium through
chromedriver, against a real `evalforge backend` seeded over OTLP by the OpenTelemetry SDK. Every
page renders real data with no console errors, filters change the results, user data cannot run
script, and each page is saved as a screenshot under .build/ui-screenshots/."""
import os
import shutil
import time

import pytest

import evalforge_backend as eb

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

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
    assert d.current_url.endswith("/traces"), d.current_url
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
    assert "model=claude-sonnet-4-5" in d.current_url
    rows = trace_rows(d)
    assert len(rows) == sent["models"]["claude-sonnet-4-5"] and len(rows) < all_rows
    assert all("claude-sonnet-4-5" in r.text for r in rows)
    assert not console_errors(d)
    shot(d, "03-traces-filtered-model")
    # ...status...
    visit(d, url + "/traces")
    Select(d.find_element(By.ID, "f-status")).select_by_value("error")
    d.find_element(By.CSS_SELECTOR, "#trace-filters button[type=submit]").click()
    rows = trace_rows(d)
    assert len(rows) == sent["errors"] and all("Error" in r.text for r in rows)
    # ...and text search in the content.
    visit(d, url + "/traces")
    box = d.find_element(By.ID, "f-q")
    box.send_keys(MARKER)
    box.submit()
    rows = trace_rows(d)
    # The marker is in trace 3's question; its session (conv-003: traces 3, 15, 27, 39, 51) resends
    # the history, so those five traces match, and nothing else.
    assert len(rows) == 5 and all("conv-003" in r.text for r in rows)
    shot(d, "04-traces-search")

    # Trace detail: waterfall and rendered messages; clicking a span shows its details.
    rows[0].find_element(By.CSS_SELECTOR, "a.name").click()
    assert "/traces/" in d.current_url
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
    shot(d, "11-trace-detail-dark")
    assert not console_errors(d)
