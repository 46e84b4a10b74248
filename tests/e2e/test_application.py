"""The clinicians' application at `/`, in real headless Chromium (Debian's, driven by Playwright)
through nginx on the native stack.

A clinician signs in; uploads MIT-BIH record 208 as WFDB 212 (`.hea` + `.dat` + `.atr`, the
database's own files) and as EDF+ (written here with pyedflib); waits for the analyses; sees
labelled beats on the strip, the reference row and the per-class agreement; "next V" lands on a V
beat; the CSV export has one row per beat; the printable report shows the model version, the
counts, strips on paper and prints to a PDF; another clinician cannot open the recording; an ended
session sends the page back to sign-in and the pending upload goes through after signing in
again; a reload keeps the session; signing out ends it. The screenshots in docs/images/ are made
here (``HEARTEYE_SCREENSHOTS=docs/images`` writes them there; by default they go to
test-artifacts/).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import ml, nginx_client, note, on_stack, quick_train, share_beat_cache
from tests.integration.chromium import chromium_binary
from tests.integration.conftest import ARTIFACTS
from tests.integration.native_stack import NativeStack
from tests.recordings.files import copy_record, write_edf
from tests.settings import SuiteSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.data]

XGB = "ecg-xgboost"
PASSWORD = "app-e2e-password-0123"
RECORD = "208"  # 2955 beats, 992 V, 373 F, 2 S: every row of the page has something to show
ANALYSIS_TIMEOUT_MS = 180_000


@dataclass(frozen=True)
class AppStack:
    stack: NativeStack
    clinician: str
    other: str
    version: str


@pytest.fixture(scope="module")
def app_stack(
    stack: NativeStack,
    mitdb_dir: Path,
    beat_cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AppStack:
    """A quick XGBoost in production on the stack, and two clinicians."""
    home = tmp_path_factory.mktemp("app-e2e-home")
    share_beat_cache(home, beat_cache_dir)
    suffix = f"{int(time.time()) % 100_000:05d}"
    clinician, other = f"app-clinician-{suffix}", f"app-other-{suffix}"
    with on_stack(stack, home, mitdb_dir):
        version, _, took = quick_train("xgboost")
        note(f"application: trained {XGB} v{version} (quick) in {took:.0f} s")
        ml("promote", XGB, version, "--yes", "--force", "--reason", "e2e: application")
        for username in (clinician, other):
            ml(
                "users",
                "add",
                username,
                "--role",
                "clinician",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
    with nginx_client(stack) as http:
        token = _token(http, clinician)
        deadline = time.monotonic() + 120
        while True:
            models = http.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"})
            loaded = {
                m["name"]: (m["loaded"] or {}).get("version") for m in models.json()["models"]
            }
            if loaded.get(XGB) == version:
                break
            assert time.monotonic() < deadline, f"{XGB} v{version} never loaded: {loaded}"
            time.sleep(1)
    return AppStack(stack=stack, clinician=clinician, other=other, version=version)


def _token(http: httpx.Client, username: str) -> str:
    answer = http.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is not installed: `make system` (scripts/ensure-system.sh chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=binary, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def upload_dir(mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Record 208 as WFDB 212 with its annotations (the database's files) and as EDF+ (5 min)."""
    out = tmp_path_factory.mktemp("uploads")
    copy_record(mitdb_dir, RECORD, out)
    write_edf(mitdb_dir, RECORD, out / f"{RECORD}-edf.edf", seconds=300.0)
    return out


def _screenshots() -> Path:
    target = Path(SuiteSettings().screenshots or ARTIFACTS / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def _sign_in(page: Any, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who").wait_for(state="visible")


def _wait_for_analysis(page: Any) -> None:
    page.locator("#counts tr").first.wait_for(timeout=ANALYSIS_TIMEOUT_MS)
    page.locator("#beat-list button").first.wait_for(timeout=30_000)


def test_the_application(app_stack: AppStack, browser: Any, upload_dir: Path) -> None:
    stack = app_stack.stack
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # -- sign in; the token is in an HttpOnly cookie no script can read -------------------------
    page.goto(stack.url)
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.get_by_role("note").inner_text().startswith("Not for diagnostic use.")
    page.screenshot(path=_screenshots() / "application-sign-in.png")
    _sign_in(page, app_stack.clinician)
    assert app_stack.clinician in page.locator("#who-name").inner_text()
    cookie = next(c for c in context.cookies() if c["name"] == "hearteye_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert "hearteye_session" not in page.evaluate("document.cookie")

    # -- upload 208 as .hea + .dat + .atr; the analysis runs -------------------------------------
    wfdb_files = [upload_dir / f"{RECORD}.{ext}" for ext in ("hea", "dat", "atr")]
    page.locator("#files").set_input_files(wfdb_files)
    assert page.locator("#file-list li").count() == 3
    page.get_by_role("button", name="Upload and analyse").click()
    _wait_for_analysis(page)
    assert page.locator("#rec-title").inner_text() == RECORD
    model_info = page.locator("#model-info").inner_text()
    assert f"Model {XGB}, version {app_stack.version}" in model_info
    labels = set(page.locator("#beat-list button").all_inner_texts())
    assert labels
    assert labels <= {"N", "S", "V", "F", "Q"}
    assert page.locator("#strip").is_visible()

    # The reference row's agreement table.
    agreement = page.locator("#agreement")
    agreement.wait_for(state="visible")
    assert "sensitivity" in agreement.inner_text()
    assert "V" in agreement.inner_text()

    # -- next V moves the strip to a V beat ------------------------------------------------------
    before = page.locator("#time-text").inner_text()
    page.get_by_role("button", name="Next V").click()
    current = page.locator("#current-beat")
    current.filter(has_text="labelled").wait_for()
    first = re.match(r"V beat (\d+) of (\d+) at [0-9:.]+: labelled V", current.inner_text())
    assert first, current.inner_text()  # the first V after the middle of the screen
    assert page.locator("#time-text").inner_text() != before
    page.get_by_role("button", name="Next V").click()
    following = f"V beat {int(first[1]) + 1} of {first[2]}"
    current.filter(has_text=following).filter(has_text="labelled V").wait_for()
    page.locator("#beat-list button.beat-V").first.focus()  # probability on focus
    assert "V " in page.locator("#tip").inner_text()
    page.screenshot(path=_screenshots() / "application.png", full_page=True)

    # -- the CSV export: one row per beat --------------------------------------------------------
    recordings = page.request.get(f"{stack.url}/api/v1/recordings").json()["items"]
    record_id = next(r["id"] for r in recordings if r["name"] == RECORD)
    csv_href = page.locator("#csv-link").get_attribute("href")
    analysis_id = csv_href.split("/")[-2]
    analysis = page.request.get(f"{stack.url}/api/v1/analyses/{analysis_id}").json()
    csv = page.request.get(f"{stack.url}{csv_href}")
    assert csv.ok
    rows = csv.text().strip().splitlines()
    assert rows[0].startswith("sample,time_s,label")
    assert len(rows) - 1 == analysis["n_beats"] > 2000

    # -- the printable report: header, counts, strips on paper, a PDF -----------------------------
    _check_report(page, app_stack, analysis)

    # -- re-analyse (lead V1) and compare the two analyses --------------------------------------
    page.locator("#lead-select").select_option("V1")
    page.get_by_role("button", name="Analyse again").click()
    page.locator("#model-info", has_text="lead V1").wait_for(timeout=ANALYSIS_TIMEOUT_MS)
    page.locator("#model-info", has_text=f"version {app_stack.version},").wait_for(
        timeout=ANALYSIS_TIMEOUT_MS
    )
    page.locator("#compare-select").select_option(analysis_id)
    compare = page.locator("#compare")
    compare.wait_for(state="visible", timeout=ANALYSIS_TIMEOUT_MS)
    assert "difference" in compare.inner_text()
    assert page.locator("#analysis-select option").count() == 2

    # -- another clinician cannot open it --------------------------------------------------------
    with nginx_client(stack) as http:
        other = {"Authorization": f"Bearer {_token(http, app_stack.other)}"}
        assert http.get(f"/api/v1/recordings/{record_id}", headers=other).status_code == 404

    # -- a reload keeps the session --------------------------------------------------------------
    page.reload()
    page.locator("#who").wait_for(state="visible")
    assert page.locator("#signin").is_hidden()
    page.locator("#recordings tr").first.wait_for()

    # -- an ended session: back to sign-in, the pending upload kept and sent after it -------------
    page.locator("#files").set_input_files(upload_dir / f"{RECORD}-edf.edf")
    context.clear_cookies()  # as if the session had expired
    page.get_by_role("button", name="Upload and analyse").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert "selected file(s) are kept" in page.locator("#signin-reason").inner_text()
    _sign_in(page, app_stack.clinician)
    page.locator("#rec-title", has_text=f"{RECORD}-edf").wait_for(timeout=60_000)
    _wait_for_analysis(page)
    assert "EDF" in page.locator("#rec-meta").inner_text()
    assert page.locator("#agreement").is_hidden()  # no reference annotations in an EDF
    page.screenshot(path=_screenshots() / "application-edf.png", full_page=True)

    # -- sign out: the session ends (a reload shows the sign-in form) -----------------------------
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.reload()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.locator("#app").is_hidden()

    csp = [p for p in problems if "Content Security Policy" in p]
    assert not csp, csp
    context.close()


def _pdf_pages(pdf: bytes) -> int:
    """Page objects in a PDF (Chromium's are plain dictionaries, not in object streams)."""
    return len(re.findall(rb"/Type\s*/Page(?![s])", pdf))


def _check_report(page: Any, app_stack: AppStack, analysis: dict[str, Any]) -> None:
    """The report of the analysis shown: its header, counts and strips; printed to a PDF."""
    page.evaluate(  # a function, not the assignment (whose value Playwright would call)
        "() => { window.print = () => { window.hearteyePrinted = (window.hearteyePrinted || 0) + 1; }; }"
    )
    page.get_by_role("button", name="Printable report").click()
    # "Report ready" is said just before window.print() (no wait_for_function: the CSP forbids eval)
    page.locator("#report-status", has_text="Report ready").wait_for(timeout=120_000)
    assert page.evaluate("window.hearteyePrinted") == 1
    assert page.locator("#app").is_hidden()
    header = page.locator("#report-header").inner_text()
    assert f"Model {XGB}, version {app_stack.version}, run " in header
    assert f"analysis {analysis['id']}" in header
    assert "Not for diagnostic use." in page.locator("#report").inner_text()
    for label in ("N", "S", "V", "F", "Q"):
        shown = page.locator(f"#report-counts td[data-class='{label}']").inner_text()
        assert int(shown) == analysis["counts"].get(label, 0), label
    assert "sensitivity" in page.locator("#report-agreement").inner_text()
    cap = int(page.evaluate("import('/static/app/report.js').then((m) => m.MAX_STRIPS)"))
    strips = page.locator("#report-body img.strip-img")
    n_strips = strips.count()
    assert 1 <= n_strips <= cap
    assert f"at most {cap} strips: {n_strips} shown" in page.locator("#report-scope").inner_text()
    loaded = strips.evaluate_all("(imgs) => imgs.every((i) => i.complete && i.naturalWidth > 1000)")
    assert loaded
    assert page.locator("#report-body .report-strip figcaption", has_text=" V").count() >= 1
    page.screenshot(  # the header and the first strip page
        path=_screenshots() / "application-report.png",
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": 1400},
    )
    # Printed, a strip is true to size: 10 s at 25 mm/s plus the 10-mm pulse margin = 260 mm.
    page.emulate_media(media="print")
    width_px = strips.first.bounding_box()["width"]
    assert abs(width_px - 260 * 96 / 25.4) < 1.5, width_px
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = page.pdf(path=ARTIFACTS / "application-report.pdf", prefer_css_page_size=True)
    pages = _pdf_pages(pdf)
    page.emulate_media(media="null")  # back to the screen (not "screen": page.pdf would use it)
    per_page = int(page.evaluate("import('/static/app/report.js').then((m) => m.STRIPS_PER_PAGE)"))
    note(f"application: report of {RECORD}: {n_strips} strips (cap {cap}), {pages} PDF pages")
    assert pages >= 1 + -(-n_strips // per_page)  # the header, then the strip pages
    page.get_by_role("button", name="Close the report").click()
    page.locator("#app").wait_for(state="visible")
    assert page.locator("#report").is_hidden()


def test_api_docs_render_offline_under_the_csp(app_stack: AppStack, browser: Any) -> None:
    """Swagger UI comes from this origin and starts under script-src 'self'."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.goto(f"{app_stack.stack.url}/api/docs")
    page.locator(".swagger-ui .info .title", has_text="HeartEye API").wait_for(timeout=30_000)
    page.get_by_text("/api/v1/auth/session", exact=True).first.wait_for()
    assert not problems, problems
    page.close()
