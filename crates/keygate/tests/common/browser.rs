//! A headless Chromium driven through chromedriver with fantoccini, for the suites that test a
//! page as a person uses it. Blocking methods, so that a test reads top to bottom and mixes
//! freely with the harness's blocking HTTP client.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`).
//! With `KEYGATE_UPDATE_SCREENSHOTS=1` screenshots go to `docs/screenshots/`; otherwise to a
//! directory under the system temp dir.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::{free_port, skip_outside_ci, Server};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any explicit wait polls before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Whether the browser is installed; outside CI a missing one skips `test` loudly, in CI it
/// fails it.
pub fn browser_installed(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip_outside_ci(
        test,
        &format!(
            "{} not installed (apt-get install chromium chromium-driver); NOTHING was tested in \
             a browser",
            missing.join(" and ")
        ),
    );
    false
}

/// chromedriver on a port of its own, stopped when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::blocking::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command on the current WebDriver session that fantoccini has no method for, such as
/// chromedriver's `POST /session/{id}/se/log` and `GET /session/{id}/element/{id}/computedlabel`.
#[derive(Debug)]
struct SessionCommand {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

/// A headless Chromium session on one keygate server.
pub struct Browser {
    pub client: Client,
    _driver: Chromedriver,
    rt: tokio::runtime::Runtime,
    /// The keygate server's base URL.
    base: String,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.client.clone().close());
    }
}

impl Browser {
    pub fn open(server: &Server) -> Browser {
        let driver = Chromedriver::start();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                ],
            },
            // The console, to catch script errors and Content-Security-Policy violations.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        // Plain HTTP on loopback: no TLS connector, so no OpenSSL.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt
            .block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&driver.url),
            )
            .expect("a chromedriver session");
        let shots = if std::env::var("KEYGATE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            // crates/keygate -> the repository root.
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .unwrap();
            root.join("docs/screenshots")
        } else {
            std::env::temp_dir().join("keygate-screenshots")
        };
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            _driver: driver,
            rt,
            base: server.url.clone(),
            shots,
        }
    }

    pub fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn goto(&self, path: &str) {
        self.run(self.client.goto(&format!("{}{path}", self.base)))
            .unwrap();
    }

    /// Polls `probe` until it gives a value, at most `WAIT`; a WebDriver error (a stale or not
    /// yet interactable element) counts as "not yet".
    pub fn wait<T>(
        &self,
        what: &str,
        mut probe: impl FnMut(&Self) -> Result<Option<T>, CmdError>,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        let mut last_error = String::new();
        loop {
            match probe(self) {
                Ok(Some(v)) => return v,
                Ok(None) => {}
                Err(e) => last_error = e.to_string(),
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {WAIT:?} for {what} in vain (last WebDriver error: {last_error:?}); \
                     the page says:\n{}\nconsole: {:#?}",
                    self.page_text(),
                    self.console_problems()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn page_text(&self) -> String {
        self.run(async { self.client.find(Locator::Css("body")).await?.text().await })
            .unwrap_or_else(|e| format!("<unreadable: {e}>"))
    }

    /// The first displayed element matching `xpath`, if any, right now.
    pub fn displayed(&self, xpath: &str) -> Result<Option<Element>, CmdError> {
        self.run(async {
            for e in self.client.find_all(Locator::XPath(xpath)).await? {
                if e.is_displayed().await? {
                    return Ok(Some(e));
                }
            }
            Ok(None)
        })
    }

    /// Waits until an element matching `xpath` is displayed.
    pub fn visible(&self, xpath: &str) -> Element {
        self.wait(&format!("{xpath} to be displayed"), |b| b.displayed(xpath))
    }

    /// Waits until nothing matching `xpath` is displayed.
    pub fn gone(&self, xpath: &str) {
        self.wait(&format!("{xpath} to disappear"), |b| {
            Ok(b.displayed(xpath)?.is_none().then_some(()))
        })
    }

    /// Whether something matching `xpath` is displayed now (no waiting).
    pub fn is_shown(&self, xpath: &str) -> bool {
        self.displayed(xpath).unwrap().is_some()
    }

    /// Clicks what matches `xpath`, scrolled to the middle first as a person would: chromedriver
    /// scrolls only what is outside the window, so a control in view but under a dialog's
    /// sticky button bar would not get the click.
    pub fn click(&self, xpath: &str) {
        self.wait(&format!("clicking {xpath}"), |b| {
            match b.displayed(xpath)? {
                Some(e) => b
                    .run(async {
                        let arg = serde_json::to_value(&e).expect("an element reference");
                        b.client
                            .execute("arguments[0].scrollIntoView({block: 'center'})", vec![arg])
                            .await?;
                        e.click().await
                    })
                    .map(Some),
                None => Ok(None),
            }
        })
    }

    /// Replaces the text of the field matching `xpath` by typing `text`.
    pub fn fill(&self, xpath: &str, text: &str) {
        self.wait(&format!("typing into {xpath}"), |b| {
            match b.displayed(xpath)? {
                Some(e) => b
                    .run(async {
                        e.clear().await?;
                        e.send_keys(text).await
                    })
                    .map(Some),
                None => Ok(None),
            }
        })
    }

    pub fn press(&self, xpath: &str, key: Key) {
        let e = self.visible(xpath);
        self.run(e.send_keys(&key)).unwrap();
    }

    /// Presses a key in whatever has keyboard focus, e.g. Escape in a dialog.
    pub fn press_in_focus(&self, key: Key) {
        let e = self.run(self.client.active_element()).unwrap();
        self.run(e.send_keys(&key)).unwrap();
    }

    /// The text of the element matching `xpath` once it is displayed.
    pub fn text(&self, xpath: &str) -> String {
        let e = self.visible(xpath);
        self.run(e.text()).unwrap()
    }

    pub fn attr(&self, xpath: &str, name: &str) -> Option<String> {
        let e = self.visible(xpath);
        self.run(e.attr(name)).unwrap()
    }

    /// Chooses the option with this text in the select matching `xpath`.
    pub fn choose(&self, xpath: &str, option: &str) {
        let select = self.visible(xpath);
        self.run(select.select_by_label(option)).unwrap();
    }

    /// Whether the checkbox matching `xpath` is ticked.
    pub fn checked(&self, xpath: &str) -> bool {
        let e = self.visible(xpath);
        self.run(e.prop("checked")).unwrap().as_deref() == Some("true")
    }

    pub fn script(&self, js: &str) -> Value {
        self.run(self.client.execute(js, vec![])).unwrap()
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.run(self.client.set_window_size(width, height))
            .unwrap();
    }

    /// The accessible name Chromium computes for `e`, as a screen reader would announce it.
    pub fn accessible_name(&self, e: &Element) -> String {
        let v = self.session_command(
            http::Method::GET,
            format!("element/{}/computedlabel", e.element_id()),
            None,
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Asserts that the displayed element matching `xpath` is announced as `expected`.
    pub fn assert_name(&self, xpath: &str, expected: &str) {
        let e = self.visible(xpath);
        assert_eq!(
            self.accessible_name(&e),
            expected,
            "accessible name of {xpath}"
        );
    }

    /// The accessible name of the element that has keyboard focus.
    pub fn focused_name(&self) -> String {
        let e = self.run(self.client.active_element()).unwrap();
        self.accessible_name(&e)
    }

    fn session_command(&self, method: http::Method, path: String, body: Option<Value>) -> Value {
        self.run(self.client.issue_cmd(SessionCommand { method, path, body }))
            .unwrap_or_else(|e| panic!("WebDriver command failed: {e}"))
    }

    pub fn screenshot(&self, name: &str) {
        let png = self.run(self.client.screenshot()).unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Console messages since the last call that mean the page is broken: script errors and
    /// anything the Content-Security-Policy blocked. (Failed requests, such as a 401 the page
    /// asked for, are expected and not reported.)
    pub fn console_problems(&self) -> Vec<String> {
        let log = self.session_command(
            http::Method::POST,
            "se/log".to_owned(),
            Some(json!({ "type": "browser" })),
        );
        log.as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["message"].as_str())
            .filter(|m| m.contains("Content Security Policy") || m.contains("Uncaught"))
            .map(str::to_owned)
            .collect()
    }
}
