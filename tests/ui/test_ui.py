"""The web page in a real headless Chromium (Debian's chromium + chromedriver through selenium),
against the session gateway (real vLLM engine). Each test loads a tab, enters the key, does the
tab's main action, checks the DOM and saves a screenshot (EVALCTL_UI_SCREENSHOTS, default a tmp dir)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from server.lora_files import write_lora_adapter
from tests.server.rundirs import write_run

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.common.exceptions import (StaleElementReferenceException, TimeoutException,  # noqa: E402
                                        WebDriverException)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def shots() -> Path:
    out = Path(os.environ.get("EVALCTL_UI_SCREENSHOTS") or tempfile.mkdtemp(prefix="evalctl-ui-"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    except WebDriverException as e:
        pytest.skip(f"chromium did not start: {e.msg}")
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


class Page:
    def __init__(self, driver, gateway, shots: Path):
        self.d, self.gw, self.shots = driver, gateway, shots

    def open(self, tab: str, key: str | None = None) -> "Page":
        if key is not None:  # stored before the page loads, as a returning user has it: no 401s first
            self.d.get(f"{self.gw.url}/health")
            self.d.execute_script("localStorage.setItem('evalctl.apiKey', arguments[0])", key)
        self.d.get(f"{self.gw.url}/ui/#/{tab}")
        self.wait(lambda d: d.execute_script("return document.body.dataset.tab") == tab.split("/")[0])
        self.settled()
        return self

    def set_key(self, key: str) -> None:
        box = self.find("#api-key")
        box.clear()
        box.send_keys(key)
        self.find("#key-form button[type=submit]").click()
        self.wait(lambda d: d.execute_script("return localStorage.getItem('evalctl.apiKey')") == key)
        self.settled()

    def settled(self) -> None:
        """Wait until no list is loading: a key change re-renders the tab, and rows found before that go stale."""
        self.wait(lambda d: not d.execute_script("return document.querySelector('[data-state=loading]')"))

    def find(self, css: str):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait(self, cond, timeout: float = 60):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.2,
                                 ignored_exceptions=[StaleElementReferenceException]).until(cond)
        except TimeoutException:
            self.shot("timeout")
            raise

    def wait_css(self, css: str, timeout: float = 60):
        return self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, css), timeout)[0]

    def attrs(self, css: str, name: str) -> list[str]:
        """One attribute of every match, read in one step (the page may re-render between two reads)."""
        return self.d.execute_script("return [...document.querySelectorAll(arguments[0])]"
                                     ".map(e => e.getAttribute(arguments[1]))", css, name)

    def text(self, css: str) -> str:
        """An element's text read in one step: the Jobs tab re-renders its rows every 2 s poll."""
        return self.d.execute_script("return document.querySelector(arguments[0]).innerText", css)

    def choose(self, css: str, value: str) -> None:
        self.wait(lambda d: any(o.get_attribute("value") == value for o in Select(self.find(css)).options))
        Select(self.find(css)).select_by_value(value)

    def fill(self, css: str, text: str) -> None:
        box = self.find(css)
        box.clear()
        box.send_keys(text)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def errors(self) -> list[str]:
        """Console errors: a failing module import or script error shows up here."""
        return [e["message"] for e in self.d.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture
def page(browser, gateway, shots):
    p = Page(browser, gateway, shots)
    browser.get_log("browser")  # start each test with an empty console
    yield p
    assert not [e for e in p.errors() if "favicon" not in e]


def test_key_is_asked_for_kept_and_sent(page):
    page.d.get(f"{page.gw.url}/ui/#/playground")
    page.d.execute_script("localStorage.clear()")
    page.open("playground")
    banner = page.wait_css("#banner:not([hidden])")
    assert "missing API key" in banner.text and "paste a valid key" in banner.text
    page.d.get_log("browser")  # the 401 itself is logged by Chromium; expected here
    page.set_key("wrong-key")
    page.wait(lambda d: "invalid API key" in page.find("#banner").text)
    page.d.get_log("browser")
    page.set_key(page.gw.api_key)
    page.wait(lambda d: page.find("#banner").get_attribute("hidden") is not None)
    page.d.refresh()  # the key survives a reload (localStorage) and models load with it
    page.choose("#pg-model", "tiny")
    assert page.find("#api-key").get_attribute("value") == page.gw.api_key
    labels = [o.text for o in Select(page.find("#pg-model")).options]
    assert "tiny" in labels and any("alias of tiny" in t for t in labels)


def test_playground_streams_a_chat(page):
    page.open("playground", key=page.gw.api_key)
    page.choose("#pg-model", "tiny")
    page.fill("#pg-sampling input[name=max_tokens]", "24")
    page.fill("#pg-sampling input[name=seed]", "7")
    page.fill("#pg-input", "Ann has 3 apples and buys 4 more. How many apples?")
    page.find("#pg-send").click()
    reply = page.wait_css(".msg.assistant[data-state=done]", timeout=120)
    text = reply.find_element(By.CSS_SELECTOR, ".text").text
    assert text.strip() and text != "(empty completion)"
    assert int(reply.get_attribute("data-chunks")) > 1  # arrived in pieces: streamed, not one body
    stats = page.find("#pg-stats").text
    assert stats.startswith("tiny · ") and "tok/s" in stats and "finish:" in stats
    assert page.find(".msg.user .text").text.startswith("Ann has 3 apples")
    # A second turn carries the history; the page sends both user turns and the reply.
    page.fill("#pg-input", "And then?")
    page.find("#pg-send").click()
    page.wait(lambda d: len(page.all(".msg.assistant[data-state=done]")) == 2, timeout=120)
    page.shot("playground")


def test_compare_two_models_side_by_side(page, gateway, tmp_path):
    adapter = write_lora_adapter(gateway.model_dir, tmp_path / "cmp", rank=8, scale=0.5, seed=5)
    with gateway.admin() as admin:
        admin.post("/v1/load_lora_adapter", json={"lora_name": "ui-cmp", "lora_path": str(adapter)}).raise_for_status()
        try:
            page.open("compare", key=page.gw.api_key)
            page.choose("#cmp-a", "tiny")
            page.choose("#cmp-b", "ui-cmp")
            page.fill("#cmp-sampling input[name=max_tokens]", "24")
            page.fill("#cmp-input", "Bob has 5 pens and buys 2 more. How many pens?")
            page.find("#cmp-send").click()
            a = page.wait_css("#cmp-pane-a[data-state=done]", timeout=120)
            b = page.wait_css("#cmp-pane-b[data-state=done]", timeout=120)
            out_a, out_b = (p.find_element(By.CSS_SELECTOR, ".out").text for p in (a, b))
            assert out_a.strip() and out_b.strip()
            assert a.find_element(By.CSS_SELECTOR, ".pane-title").text == "tiny"
            assert b.find_element(By.CSS_SELECTOR, ".pane-title").text == "ui-cmp"
            assert "adapter v1" in b.find_element(By.CSS_SELECTOR, ".stats").text
            assert out_a != out_b  # greedy on both: a random adapter changes the tokens
            page.shot("compare")
        finally:
            admin.post("/v1/unload_lora_adapter", json={"lora_name": "ui-cmp"})


@pytest.fixture(scope="module")
def runs(gateway):
    root = gateway.results_dir
    write_run(root / "ui-base", "base", [0, 9, None, 9, 1, 2])
    write_run(root / "ui-sft", "sft", [3, 4, 5, 6, 1, 8], error_at=4)
    return root


def test_results_table_compare_and_samples(page, runs):
    page.open("results", key=page.gw.api_key)
    page.wait_css("#res-table tr[data-run='ui-sft']")
    rows = {tr.get_attribute("data-run"): tr.text for tr in page.all("#res-table tbody tr[data-run]")}
    assert "ui-base" in rows and "avg_reward 0.0000 ± 0.0000" in rows["ui-base"]
    assert "gsm8k" in rows["ui-sft"] and "avg_reward 0.8333 ± 0.1667" in rows["ui-sft"]
    for rid in ("ui-base", "ui-sft"):
        page.find(f"#res-table tr[data-run='{rid}'] input[type=checkbox]").click()
    page.find("#res-compare").click()
    table = page.wait_css("#res-compare-table")
    sft_row = table.find_element(By.CSS_SELECTOR, "tr[data-run='ui-sft']").text
    assert "0.8333 ± 0.1667" in sft_row and "(p=" in sft_row
    metrics = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")][1:]
    assert metrics[:3] == ["format_rate", "accuracy", "avg_reward"]
    charts = page.all("#res-compare-out svg.chart-svg")
    assert [c.find_element(By.CSS_SELECTOR, "text.chart-title").text for c in charts] == metrics
    assert len(page.all("#res-compare-out svg.chart-svg rect")) == 2 * len(metrics)  # one bar per run, zeros too
    page.shot("results")
    page.find("#res-table a[href='#/results/ui-sft']").click()
    page.wait(lambda d: len(page.all("#res-samples tr.sample")) == 6)
    assert page.find("#res-title").text == "ui-sft"
    assert "accuracy" in page.find("#res-metrics").text
    first = page.find("#res-samples tr.sample[data-id='q0']")
    first.click()
    full = page.find("#res-samples tr.sample-full")
    assert full.is_displayed() and "#### 3" in full.text and "<answer> 3 </answer>" in full.text
    page.find("#res-errors").click()
    page.wait(lambda d: page.attrs("#res-samples tr.sample", "data-id") == ["q4"])
    assert "engine timed out" in page.find("#res-samples tr.sample").text
    page.shot("results-samples")


def test_slow_stale_list_response_does_not_overwrite_a_newer_one(page, runs):
    page.open("results", key=page.gw.api_key)
    page.wait_css("#res-table[data-state=ready] tr[data-run='ui-sft']")
    # Hold back the next runs listing once its response has arrived, then start a newer load
    # that sees one more run. Without the generation guard the held, older list wins.
    page.d.execute_script("""
        const real = window.fetch;
        window.__held = "no";
        window.fetch = async (url, init) => {
          const resp = await real(url, init);
          if (window.__held === "no" && String(url).includes('/v1/evalctl/runs')) {
            window.__held = "holding";
            await new Promise((r) => setTimeout(r, 2000));
            window.__held = "released";
          }
          return resp;
        };""")
    page.find("#key-form button[type=submit]").click()  # load 1 (re-route on key submit)
    page.wait(lambda d: d.execute_script("return window.__held") == "holding")
    write_run(runs / "ui-late", "late", [1, 2, 3])
    page.d.execute_script("window.dispatchEvent(new HashChangeEvent('hashchange'))")  # load 2
    page.wait_css("#res-table tr[data-run='ui-late']")
    page.wait(lambda d: d.execute_script("return window.__held") == "released")
    time.sleep(0.5)  # the held list is parsed and (unguarded) rendered within milliseconds
    page.settled()
    assert "ui-late" in page.attrs("#res-table tbody tr[data-run]", "data-run")
    assert page.find("#res-table").get_attribute("data-state") == "ready"


def test_adapters_load_list_unload(page, gateway, tmp_path):
    zero = write_lora_adapter(gateway.model_dir, tmp_path / "zero", rank=8, scale=0.0)
    page.open("adapters", key=page.gw.api_key)  # the user key is not enough
    page.wait(lambda d: "needs the admin key" in page.find("#ad-table tbody").text)
    page.d.get_log("browser")  # the 403 is logged by Chromium; expected here
    page.set_key(page.gw.admin_key)
    page.fill("#ad-name", "ui-zero")
    page.fill("#ad-path", str(zero))
    page.choose("#ad-base", "tiny")
    page.find("#ad-load").click()
    row = page.wait_css("#ad-table tr[data-adapter='ui-zero']")
    assert "tiny" in row.text and str(zero)[:40] in row.text and "1/1 loaded" in row.text  # one engine replica
    assert "added successfully" in page.find("#ad-status").text
    with gateway.admin() as admin:
        assert "ui-zero" in [a["name"] for a in admin.get("/v1/adapters").json()["data"]]
    page.fill("#ad-path", str(tmp_path / "missing"))
    page.fill("#ad-name", "ui-missing")
    page.find("#ad-load").click()
    page.wait(lambda d: page.find("#ad-status").get_attribute("data-kind") == "error")
    page.d.get_log("browser")  # the 400 is expected
    page.shot("adapters")
    page.find("#ad-table button[data-unload='ui-zero']").click()
    page.wait(lambda d: not page.all("#ad-table tr[data-adapter='ui-zero']"))
    assert "unloaded ui-zero" in page.find("#ad-status").text
    with gateway.admin() as admin:
        assert "ui-zero" not in [a["name"] for a in admin.get("/v1/adapters").json()["data"]]


ROWS = [{"messages": [{"role": "user", "content": f"{n} has {i} pens. How many pens?"},
                      {"role": "assistant", "content": f"<answer> {i} </answer>"}]}
        for i, n in enumerate(["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gita", "Hugo"])]


def test_jobs_upload_train_follow_and_cancel(page, gateway, tmp_path):
    data = tmp_path / "pens.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    page.open("jobs", key=page.gw.admin_key)
    page.find("#job-file").send_keys(str(data))
    page.choose("#job-model", "tiny")
    page.fill("#job-steps", "6")
    page.fill("#job-batch", "2")
    page.fill("#job-suffix", "ui")
    page.find("#job-start").click()
    page.wait(lambda d: d.execute_script("return location.hash").startswith("#/jobs/ftjob"))
    job_id = page.d.execute_script("return location.hash").split("/")[-1]
    page.wait_css(f"#job-table tr[data-job='{job_id}']")  # the list re-renders on the next poll
    page.wait(lambda d: page.find("#job-detail").get_attribute("data-status") in ("succeeded", "failed"), timeout=600)
    fields = page.find("#job-fields").text
    assert page.find("#job-detail").get_attribute("data-status") == "succeeded", fields
    assert "step 6 / 6" in fields
    assert len(page.all("#job-chart svg circle")) >= 3  # a loss point per logged step
    with gateway.admin() as admin:
        job = admin.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        file_id = job["training_file"]
    assert job["fine_tuned_model"] and job["fine_tuned_model"] in page.text(f"#job-table tr[data-job='{job_id}']")
    assert page.find("#job-cancel").get_attribute("hidden") is not None  # nothing to cancel any more
    page.shot("jobs")

    page.choose("#job-existing", file_id)  # a second, long job on the same upload, cancelled while it runs
    page.fill("#job-steps", "5000")
    page.fill("#job-suffix", "ui-cancel")
    page.find("#job-start").click()
    page.wait(lambda d: d.execute_script("return location.hash") not in ("", f"#/jobs/{job_id}"))
    second = page.d.execute_script("return location.hash").split("/")[-1]
    page.wait(lambda d: page.find("#job-detail").get_attribute("data-status") == "running", timeout=300)
    page.find("#job-cancel").click()
    page.wait(lambda d: page.find("#job-detail").get_attribute("data-status") == "cancelled", timeout=120)
    with gateway.admin() as admin:
        assert admin.get(f"/v1/fine_tuning/jobs/{second}").json()["status"] == "cancelled"
    page.open("playground")  # the finished job's adapter is served and offered in the model list
    page.choose("#pg-model", job["fine_tuned_model"])


RFT_ROWS = [{"messages": [{"role": "user", "content": f"{n} has {i} pens. How many pens?"}], "answer": str(i)}
            for i, n in enumerate(["Ann", "Bob", "Carla", "Dev"])]


def test_jobs_reinforcement_with_a_grader_from_the_page(page, gateway, tmp_path):
    train, valid = tmp_path / "rft.jsonl", tmp_path / "rft-valid.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in RFT_ROWS))
    valid.write_text(json.dumps(RFT_ROWS[0]) + "\n")
    with gateway.admin() as admin:
        valid_id = admin.post("/v1/files", data={"purpose": "fine-tune"},
                              files={"file": ("rft-valid.jsonl", valid.read_bytes())}).json()["id"]
    page.open("jobs", key=page.gw.admin_key)
    page.find("#job-file").send_keys(str(train))
    page.choose("#job-model", "tiny")
    page.choose("#job-method", "reinforcement")
    page.wait(lambda d: page.find("#job-rft").is_displayed())
    assert json.loads(page.find("#job-grader").get_attribute("value"))["type"] == "string_check"  # an example
    grader = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}} pens", "evaluation_metric": "fuzzy_match"}
    page.fill("#job-grader", json.dumps({**grader, "evaluation_metric": "fuzzy"}))
    page.find("#job-grader-check").click()
    page.wait(lambda d: "grader.evaluation_metric" in page.text("#job-grader-status"))
    # the console logs that refused request; reading the log clears it for the fixture's check
    assert all("400" in e for e in page.errors() if "favicon" not in e)
    page.fill("#job-grader", "{not json")
    page.find("#job-start").click()  # refused before anything is uploaded
    page.wait(lambda d: "not valid JSON" in page.text("#job-form-status"))
    page.fill("#job-grader", json.dumps(grader))
    page.choose("#job-valid", valid_id)
    page.fill("#job-steps", "2")
    page.fill("#job-batch", "2")
    page.fill("#job-eval-interval", "1")
    page.fill("#job-max-tokens", "8")
    page.find("#job-start").click()
    page.wait(lambda d: d.execute_script("return location.hash").startswith("#/jobs/ftjob"))
    job_id = page.d.execute_script("return location.hash").split("/")[-1]
    page.wait(lambda d: page.find("#job-detail").get_attribute("data-status") in ("succeeded", "failed"), timeout=600)
    fields = page.find("#job-fields").text
    assert page.find("#job-detail").get_attribute("data-status") == "succeeded", fields
    assert "reinforcement" in fields and "step 2 / 2" in fields
    charts = page.all("#job-chart svg")
    assert len(charts) == 2  # train and validation reward curves, a point per step each
    assert all(len(c.find_elements("css selector", "circle")) == 2 for c in charts)
    with gateway.admin() as admin:
        job = admin.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["method"]["reinforcement"]["grader"]["name"] == "sim" and job["validation_file"] == valid_id
    page.shot("jobs-reinforcement")
