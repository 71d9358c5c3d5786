"""What rayfn shows in Ray's own tools: tasks named app.function in the state API
(what the dashboard and `ray list tasks` read), actors under rayfn's names, and call
metrics on the Prometheus endpoint Ray exports; `rayfn dashboard` points there."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import ray
from playwright.sync_api import Browser, Page, expect, sync_playwright
from ray.util.state import list_actors, list_tasks

import rayfn
from rayfn.exception import CancelledError
from rayfn.serve.deploy import deploy_api, stop_api
from tests.conftest import ROOT, Cluster, free_port

pytestmark = [
    pytest.mark.timeout(240),
    # The dashboard (the state API needs it) and metrics reported every second; and
    # no other module's calls in the counts.
    pytest.mark.own_cluster(
        include_dashboard=True, extra_env={"RAY_metrics_report_interval_ms": "1000"}
    ),
]

app = rayfn.App("test-observe")


@app.function()
def work(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x


@app.function(retries=rayfn.Retries(1, initial_delay=0.1))
def always_fails() -> None:
    raise RuntimeError("again")


@app.function()
def nap(seconds: float) -> None:
    time.sleep(seconds)


@pytest.fixture(scope="module", autouse=True)
def deployed(cluster: Cluster) -> None:
    app.deploy()


@pytest.fixture(scope="module")
def ran(cluster: Cluster) -> None:
    """3 calls succeed, 1 fails, 1 fails after a retry, 1 is cancelled."""
    assert list(work.map([1, 2, 3])) == [1, 2, 3]
    with pytest.raises(ValueError):
        work.remote(-1)
    with pytest.raises(RuntimeError):
        always_fails.remote()
    sleeping = nap.spawn(60)
    sleeping.cancel()
    with pytest.raises(CancelledError):
        sleeping.get(timeout=10)


def test_tasks_and_actors_have_readable_names(cluster: Cluster, ran: None) -> None:
    address = cluster.record.dashboard_url
    deadline = time.monotonic() + 30  # Ray reports task events about once a second
    while len(list_tasks(address=address, filters=[("name", "=", "test-observe.work")])) < 4:
        assert time.monotonic() < deadline, "the 4 calls of work never showed as tasks"
        time.sleep(0.5)
    names = {a.name for a in list_actors(address=address, filters=[("state", "=", "ALIVE")])}
    assert {"rayfn:registry:0", "rayfn:control"} <= names


def _scrape() -> str:
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    return httpx.get(url, timeout=10).text


def _sample(text: str, name: str, function: str) -> float | None:
    pattern = rf'^ray_{name}\{{[^}}]*function="{function}"[^}}]*\}} ([0-9.e+]+)$'
    found = [float(m) for m in re.findall(pattern, text, flags=re.M)]
    return sum(found) if found else None


def test_call_metrics_reach_prometheus(cluster: Cluster, ran: None) -> None:
    expected = {
        ("rayfn_calls_spawned_total", "work"): 4,
        ("rayfn_calls_succeeded_total", "work"): 3,
        ("rayfn_calls_failed_total", "work"): 1,
        ("rayfn_calls_failed_total", "always_fails"): 1,
        ("rayfn_calls_retried_total", "always_fails"): 1,
        ("rayfn_calls_cancelled_total", "nap"): 1,
        ("rayfn_run_seconds_count", "work"): 4,
        ("rayfn_queue_wait_seconds_count", "work"): 4,
    }
    deadline = time.monotonic() + 60
    while True:
        text = _scrape()
        seen = {key: _sample(text, *key) for key in expected}
        if seen == expected:
            break
        assert time.monotonic() < deadline, f"metrics never matched: {seen}"
        time.sleep(1)
    assert 'app="test-observe"' in text
    assert _sample(text, "rayfn_queue_depth", "work") == 0


def test_rayfn_dashboard_prints_a_url_that_answers(cluster: Cluster) -> None:
    printed = cluster.cli("dashboard")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert url == cluster.record.dashboard_url
    assert httpx.get(url, timeout=10).status_code == 200


@app.function()
def chatty(word: str) -> None:
    print(f"chatty says {word}")


def test_app_logs_prints_what_the_apps_tasks_wrote(cluster: Cluster) -> None:
    chatty.remote("[bold]hello[/bold]")
    deadline = time.monotonic() + 60
    while True:
        logs = cluster.cli("app", "logs", "test-observe")
        assert logs.returncode == 0, logs.stderr
        if "chatty says [bold]hello[/bold]" in logs.stdout:
            break
        assert time.monotonic() < deadline, logs.stdout
        time.sleep(1)
    assert "test-observe.chatty" in logs.stdout
    missing = cluster.cli("app", "logs", "no-such-app")
    assert missing.returncode == 1 and "No deployed app named 'no-such-app'" in missing.stderr


@app.function()
def talker(word: str) -> str:
    print(f"talker says {word}")
    print(f"talker warns {word}", file=sys.stderr)
    return word


@app.cls()
class Speaker:
    @rayfn.method()
    def speak(self, word: str) -> str:
        print(f"speaker says {word}")
        return word


def _logs_of(cluster: Cluster, call_id: str, expected: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        logs = cluster.cli("call", "logs", call_id)
        assert logs.returncode == 0, logs.stderr
        if expected in logs.stdout:
            return logs.stdout
        assert time.monotonic() < deadline, (logs.stdout, logs.stderr)
        time.sleep(1)


def test_call_logs_prints_what_that_call_printed_and_nothing_else(cluster: Cluster) -> None:
    first, second = talker.spawn("first"), talker.spawn("second")
    spoken = Speaker().speak.spawn("up")
    assert (first.get(timeout=60), second.get(timeout=60), spoken.get(timeout=60)) == (
        "first",
        "second",
        "up",
    )
    printed = _logs_of(cluster, first.object_id, "talker says first")
    assert "talker warns first" in printed  # stderr too
    assert "second" not in printed  # another call's lines, even from the same worker
    assert first.status().attempts[0].task_id is not None
    # A container's call: read from its actor's log, cut to the call's own lines.
    assert "speaker says up" in _logs_of(cluster, spoken.object_id, "speaker says up")


# -- the console, in a real browser ------------------------------------------------------

SHOTS = ROOT / ".artifacts" / "console"  # screenshots of each page, kept by every run
TOKEN = "console-t0ken"


@app.function()
def job(x: int) -> dict[str, int]:
    print(f"working on {x}")
    if x < 0:
        print("about to fail", file=sys.stderr)
        raise ValueError(f"negative input {x}")
    return {"x": x}


@app.function(max_containers=1)
def gate(name: str) -> str:
    while not rayfn.Dict.from_name("console-gate", create_if_missing=True).get("open"):
        time.sleep(0.1)
    return name


@pytest.fixture(scope="module")
def console(cluster: Cluster) -> Iterator[str]:
    """The job API with a token, on a free loopback port; the console's URL."""
    os.environ["RAYFN_HTTP_PORT"] = str(free_port())
    os.environ["RAYFN_API_TOKEN"] = TOKEN
    try:
        base = deploy_api()
        yield f"{base}/ui/"
    finally:
        stop_api()
        os.environ.pop("RAYFN_HTTP_PORT")
        os.environ.pop("RAYFN_API_TOKEN")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "make setup installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_console_shows_follows_and_acts_on_calls(
    cluster: Cluster, console: str, browser: Browser
) -> None:
    port = os.environ["RAYFN_HTTP_PORT"]
    printed = cluster.cli("ui", env={"RAYFN_HTTP_PORT": port})
    assert printed.stdout.strip() == console, printed.stderr
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(console)
    # Without the token: a sign-in field and no data.
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#view")).to_be_empty()
    page.fill("#token", "wrong")
    page.click("#sign-in-form button")
    expect(page.locator("#sign-in-error")).to_have_text("That token was refused.")
    _shot(page, "sign-in")
    page.fill("#token", TOKEN)
    page.click("#sign-in-form button")
    # Apps and functions, with their options.
    row = page.locator('[data-app="test-observe"] tr[data-function="gate"]')
    expect(row).to_contain_text("max_containers 1")
    _shot(page, "apps")

    ok, bad = job.spawn(1), job.spawn(-1)
    blocker = gate.spawn("first")
    queued = gate.spawn("second")
    page.goto(f"{console}#/calls?app=test-observe&function=job")
    loaded_at = page.evaluate("performance.timeOrigin")
    # Live: the rows change state with no reload.
    expect(page.locator(f'tr[data-call="{ok.object_id}"] [data-status]')).to_have_text("SUCCEEDED")
    expect(page.locator(f'tr[data-call="{bad.object_id}"] [data-status]')).to_have_text("FAILED")
    assert page.evaluate("performance.timeOrigin") == loaded_at
    copy = page.locator(f'tr[data-call="{bad.object_id}"] [data-copy]')
    assert copy.get_attribute("data-copy") == bad.object_id  # the whole id
    _shot(page, "calls")

    # A failed call: its traceback and what it printed.
    page.click(f'a[href="#/calls/{bad.object_id}"]')
    expect(page.locator("#error")).to_contain_text("ValueError: negative input -1")
    expect(page.locator("#error")).to_contain_text("Traceback")
    expect(page.locator("#logs")).to_contain_text("about to fail", timeout=60_000)
    expect(page.locator("#logs")).to_contain_text("working on -1")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    _shot(page, "call-failed")

    # A queued call, cancelled from its page after a confirmation.
    page.goto(f"{console}#/calls/{queued.object_id}")
    expect(page.locator("[data-status]").first).to_have_text("QUEUED")
    page.click("#cancel")
    page.click("#confirm-yes")
    expect(page.locator("[data-status]").first).to_have_text("CANCELLED")
    assert queued.status().status == "CANCELLED"
    _shot(page, "call-cancelled")
    rayfn.Dict.from_name("console-gate").put("open", True)
    assert blocker.get(timeout=60) == "first"
    page.close()
