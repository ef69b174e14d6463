//! What the browser suites share: chromedriver on a port of its own, a blocking wrapper around
//! fantoccini with waits and the page's locators, and what a person does on the page (log in,
//! generate a token, …).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`).
//! Outside CI a missing browser skips the tests with a loud message; in CI (`CI=true`) it fails
//! them. With `KEYGATE_UPDATE_SCREENSHOTS=1` the screenshots go to `docs/screenshots/`;
//! otherwise to a directory under the system temp dir.
// Each browser suite uses only part of this.
#![allow(dead_code)]

use crate::common::*;

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

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any explicit wait polls before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);
pub const SCOPE_ARGS: &[&str] = &[
    "--scope",
    "metrics:read=Read metrics",
    "--scope",
    "metrics:write=Write metrics",
];

/// Whether the browser is installed; outside CI a missing one skips loudly.
pub fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip_outside_ci(
        "the browser tests",
        &format!(
            "{} not installed (apt-get install chromium chromium-driver); the web page was NOT \
             tested in a browser",
            missing.join(" and ")
        ),
    );
    false
}

// ---------------------------------------------------------------------------------------------
// XPath locators by what a person sees: labels, button texts, headings.

/// An XPath string literal. The texts this test looks for never contain an apostrophe.
pub fn lit(s: &str) -> String {
    assert!(!s.contains('\''), "no apostrophes in locators: {s}");
    format!("'{s}'")
}

/// The control a `<label for>` with exactly this text names.
pub fn field(label: &str) -> String {
    format!("//*[@id=//label[normalize-space()={}]/@for]", lit(label))
}

/// A button by its text, or by its `aria-label` when it has one (the row buttons: the page
/// labels them "Deactivate ci-deploy", "Rotate ci-deploy", … with the token's name).
pub fn button(name: &str) -> String {
    let l = lit(name);
    format!("//button[normalize-space()={l} and not(@aria-label) or @aria-label={l}]")
}

/// A button in the open modal dialog.
pub fn dialog_button(name: &str) -> String {
    format!("//dialog[@open]//button[normalize-space()={}]", lit(name))
}

pub fn heading(text: &str) -> String {
    format!("//h1[normalize-space()={}]", lit(text))
}

/// The token list's row for the token with this name.
pub fn row(name: &str) -> String {
    format!("//tbody/tr[th[normalize-space()={}]]", lit(name))
}

/// The control labelled `label` in the form's rate limit `n` (1-based, as its legend says).
pub fn in_limit(n: usize, label: &str) -> String {
    format!(
        "//fieldset[legend[normalize-space()={}]]{}",
        lit(&format!("Rate limit {n}")),
        field(label)
    )
}

/// The token list once its latest load has finished.
pub const TOKENS_LOADED: &str = "//table[caption and @aria-busy='false']";

// ---------------------------------------------------------------------------------------------
// chromedriver and a blocking wrapper around fantoccini

/// chromedriver on a port of its own, stopped when dropped.
pub struct Chromedriver {
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

/// Any command on the current WebDriver session that fantoccini has no method for, such as
/// chromedriver's `GET /session/{id}/element/{id}/computedlabel`.
#[derive(Debug)]
pub struct SessionCommand {
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

/// A headless Chromium session, with blocking methods so that the test reads top to bottom and
/// mixes freely with the harness's blocking HTTP client.
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
                     the page says:\n{}",
                    self.page_text()
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
    /// scrolls only what is outside the window, so a control in view but under the dialog's
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

    pub fn script(&self, js: &str) -> Value {
        self.run(self.client.execute(js, vec![])).unwrap()
    }

    pub fn session_command(
        &self,
        method: http::Method,
        path: String,
        body: Option<Value>,
    ) -> Value {
        self.run(self.client.issue_cmd(SessionCommand { method, path, body }))
            .unwrap_or_else(|e| panic!("WebDriver command failed: {e}"))
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

    pub fn resize(&self, width: u32, height: u32) {
        self.run(self.client.set_window_size(width, height))
            .unwrap();
    }

    pub fn screenshot(&self, name: &str) {
        let png = self.run(self.client.screenshot()).unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Console messages that mean the page is broken: script errors and anything the
    /// Content-Security-Policy blocked. (Failed requests, such as the 401 of a wrong password,
    /// are expected and not reported.)
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

    // -----------------------------------------------------------------------------------------
    // What a person does on the page

    /// Logs in, with the Enter key in the Password field or with the "Log in" button, and waits
    /// for the token list.
    pub fn log_in(&self, username: &str, password: &str, with_enter: bool) {
        self.fill(&field("Username"), username);
        self.fill(&field("Password"), password);
        if with_enter {
            self.press(&field("Password"), Key::Enter);
        } else {
            self.click(&button("Log in"));
        }
        self.visible(&heading("Access tokens"));
        self.visible(TOKENS_LOADED);
    }

    pub fn log_out(&self) {
        self.click(&button("Log out"));
        self.visible(&button("Log in"));
    }

    /// Opens "Generate new token", fills it in and returns the plaintext from "New token".
    pub fn generate(&self, name: &str, scopes: &[&str], expires: &str) -> String {
        self.open_generate_form(name, scopes, expires);
        self.click(&dialog_button("Generate"));
        self.read_new_token()
    }

    pub fn open_generate_form(&self, name: &str, scopes: &[&str], expires: &str) {
        self.click(&button("Generate new token"));
        self.visible("//dialog[@open]");
        assert_eq!(
            self.focused_name(),
            "Name",
            "focus moves to the form's first field"
        );
        self.fill(&field("Name"), name);
        for scope in scopes {
            self.click(&field(scope));
        }
        let expires_select = self.visible(&field("Expires"));
        self.run(expires_select.select_by_label(expires)).unwrap();
    }

    /// Waits for the shown-once token and reads it from the "New token" field.
    pub fn read_new_token(&self) -> String {
        self.gone("//dialog[@open]");
        let token = self.wait("a value in the New token field", |b| {
            let Some(e) = b.displayed(&field("New token"))? else {
                return Ok(None);
            };
            let v = b.run(e.prop("value"))?.unwrap_or_default();
            Ok((!v.is_empty()).then_some(v))
        });
        assert!(
            self.is_shown("//*[contains(normalize-space(), 'will not be shown again')]"),
            "the page warns that the token is shown once"
        );
        assert_eq!(
            self.focused_name(),
            "New token",
            "focus moves to the new token"
        );
        token
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

    /// The alert of the open dialog once it says something.
    pub fn dialog_alert(&self) -> String {
        self.wait("the dialog's alert", |b| {
            let Some(e) = b.displayed("//dialog[@open]//*[@role='alert']")? else {
                return Ok(None);
            };
            let text = b.run(e.text())?;
            Ok((!text.is_empty()).then_some(text))
        })
    }

    pub fn dismiss_new_token(&self) {
        self.click(&button("Done"));
        self.gone(&field("New token"));
    }
}
