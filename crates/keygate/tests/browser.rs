//! The web page at `/`, driven by a real Chromium through chromedriver, the way a person uses
//! it: controls are found by their labels and button texts (and their accessible names are
//! checked with chromedriver's computed label), and every change the page makes is checked over
//! plain HTTP against the token API.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`).
//! Outside CI a missing browser skips these tests with a loud message; in CI (`CI=true`) it
//! fails them. With `KEYGATE_UPDATE_SCREENSHOTS=1` the screenshots go to `docs/screenshots/`;
//! otherwise to a directory under the system temp dir.

mod common;
use common::*;

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

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any explicit wait polls before the test fails.
const WAIT: Duration = Duration::from_secs(10);
const SCOPE_ARGS: &[&str] = &[
    "--scope",
    "metrics:read=Read metrics",
    "--scope",
    "metrics:write=Write metrics",
];

/// Whether the browser is installed; outside CI a missing one skips loudly.
fn browser_installed() -> bool {
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
fn lit(s: &str) -> String {
    assert!(!s.contains('\''), "no apostrophes in locators: {s}");
    format!("'{s}'")
}

/// The control a `<label for>` with exactly this text names.
fn field(label: &str) -> String {
    format!("//*[@id=//label[normalize-space()={}]/@for]", lit(label))
}

/// A button by its text, or by its `aria-label` when it has one (the row buttons: the page
/// labels them "Deactivate ci-deploy", "Rotate ci-deploy", … with the token's name).
fn button(name: &str) -> String {
    let l = lit(name);
    format!("//button[normalize-space()={l} and not(@aria-label) or @aria-label={l}]")
}

/// A button in the open modal dialog.
fn dialog_button(name: &str) -> String {
    format!("//dialog[@open]//button[normalize-space()={}]", lit(name))
}

fn heading(text: &str) -> String {
    format!("//h1[normalize-space()={}]", lit(text))
}

/// The token list's row for the token with this name.
fn row(name: &str) -> String {
    format!("//tbody/tr[th[normalize-space()={}]]", lit(name))
}

/// The control labelled `label` in the form's rate limit `n` (1-based, as its legend says).
fn in_limit(n: usize, label: &str) -> String {
    format!(
        "//fieldset[legend[normalize-space()={}]]{}",
        lit(&format!("Rate limit {n}")),
        field(label)
    )
}

/// The token list once its latest load has finished.
const TOKENS_LOADED: &str = "//table[caption and @aria-busy='false']";

// ---------------------------------------------------------------------------------------------
// chromedriver and a blocking wrapper around fantoccini

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

/// Any command on the current WebDriver session that fantoccini has no method for, such as
/// chromedriver's `GET /session/{id}/element/{id}/computedlabel`.
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

/// A headless Chromium session, with blocking methods so that the test reads top to bottom and
/// mixes freely with the harness's blocking HTTP client.
struct Browser {
    client: Client,
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
    fn open(server: &Server) -> Browser {
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

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn goto(&self, path: &str) {
        self.run(self.client.goto(&format!("{}{path}", self.base)))
            .unwrap();
    }

    /// Polls `probe` until it gives a value, at most `WAIT`; a WebDriver error (a stale or not
    /// yet interactable element) counts as "not yet".
    fn wait<T>(
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

    fn page_text(&self) -> String {
        self.run(async { self.client.find(Locator::Css("body")).await?.text().await })
            .unwrap_or_else(|e| format!("<unreadable: {e}>"))
    }

    /// The first displayed element matching `xpath`, if any, right now.
    fn displayed(&self, xpath: &str) -> Result<Option<Element>, CmdError> {
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
    fn visible(&self, xpath: &str) -> Element {
        self.wait(&format!("{xpath} to be displayed"), |b| b.displayed(xpath))
    }

    /// Waits until nothing matching `xpath` is displayed.
    fn gone(&self, xpath: &str) {
        self.wait(&format!("{xpath} to disappear"), |b| {
            Ok(b.displayed(xpath)?.is_none().then_some(()))
        })
    }

    /// Whether something matching `xpath` is displayed now (no waiting).
    fn is_shown(&self, xpath: &str) -> bool {
        self.displayed(xpath).unwrap().is_some()
    }

    /// Clicks what matches `xpath`, scrolled to the middle first as a person would: chromedriver
    /// scrolls only what is outside the window, so a control in view but under the dialog's
    /// sticky button bar would not get the click.
    fn click(&self, xpath: &str) {
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
    fn fill(&self, xpath: &str, text: &str) {
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

    fn press(&self, xpath: &str, key: Key) {
        let e = self.visible(xpath);
        self.run(e.send_keys(&key)).unwrap();
    }

    /// Presses a key in whatever has keyboard focus, e.g. Escape in a dialog.
    fn press_in_focus(&self, key: Key) {
        let e = self.run(self.client.active_element()).unwrap();
        self.run(e.send_keys(&key)).unwrap();
    }

    /// The text of the element matching `xpath` once it is displayed.
    fn text(&self, xpath: &str) -> String {
        let e = self.visible(xpath);
        self.run(e.text()).unwrap()
    }

    fn attr(&self, xpath: &str, name: &str) -> Option<String> {
        let e = self.visible(xpath);
        self.run(e.attr(name)).unwrap()
    }

    fn script(&self, js: &str) -> Value {
        self.run(self.client.execute(js, vec![])).unwrap()
    }

    fn session_command(&self, method: http::Method, path: String, body: Option<Value>) -> Value {
        self.run(self.client.issue_cmd(SessionCommand { method, path, body }))
            .unwrap_or_else(|e| panic!("WebDriver command failed: {e}"))
    }

    /// The accessible name Chromium computes for `e`, as a screen reader would announce it.
    fn accessible_name(&self, e: &Element) -> String {
        let v = self.session_command(
            http::Method::GET,
            format!("element/{}/computedlabel", e.element_id()),
            None,
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Asserts that the displayed element matching `xpath` is announced as `expected`.
    fn assert_name(&self, xpath: &str, expected: &str) {
        let e = self.visible(xpath);
        assert_eq!(
            self.accessible_name(&e),
            expected,
            "accessible name of {xpath}"
        );
    }

    /// The accessible name of the element that has keyboard focus.
    fn focused_name(&self) -> String {
        let e = self.run(self.client.active_element()).unwrap();
        self.accessible_name(&e)
    }

    fn resize(&self, width: u32, height: u32) {
        self.run(self.client.set_window_size(width, height))
            .unwrap();
    }

    fn screenshot(&self, name: &str) {
        let png = self.run(self.client.screenshot()).unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Console messages that mean the page is broken: script errors and anything the
    /// Content-Security-Policy blocked. (Failed requests, such as the 401 of a wrong password,
    /// are expected and not reported.)
    fn console_problems(&self) -> Vec<String> {
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
    fn log_in(&self, username: &str, password: &str, with_enter: bool) {
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

    fn log_out(&self) {
        self.click(&button("Log out"));
        self.visible(&button("Log in"));
    }

    /// Opens "Generate new token", fills it in and returns the plaintext from "New token".
    fn generate(&self, name: &str, scopes: &[&str], expires: &str) -> String {
        self.open_generate_form(name, scopes, expires);
        self.click(&dialog_button("Generate"));
        self.read_new_token()
    }

    fn open_generate_form(&self, name: &str, scopes: &[&str], expires: &str) {
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
    fn read_new_token(&self) -> String {
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
    fn choose(&self, xpath: &str, option: &str) {
        let select = self.visible(xpath);
        self.run(select.select_by_label(option)).unwrap();
    }

    /// Whether the checkbox matching `xpath` is ticked.
    fn checked(&self, xpath: &str) -> bool {
        let e = self.visible(xpath);
        self.run(e.prop("checked")).unwrap().as_deref() == Some("true")
    }

    /// The alert of the open dialog once it says something.
    fn dialog_alert(&self) -> String {
        self.wait("the dialog's alert", |b| {
            let Some(e) = b.displayed("//dialog[@open]//*[@role='alert']")? else {
                return Ok(None);
            };
            let text = b.run(e.text())?;
            Ok((!text.is_empty()).then_some(text))
        })
    }

    fn dismiss_new_token(&self) {
        self.click(&button("Done"));
        self.gone(&field("New token"));
    }
}

/// The admin's and a member's whole path through the page, checked over HTTP at every step.
#[test]
fn the_page_manages_tokens_end_to_end() {
    if !browser_installed() {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let b = Browser::open(&server);

    // 1. Log in with the keyboard: Enter in the Password field.
    b.goto("/");
    b.visible(&field("Username"));
    b.assert_name(&field("Username"), "Username");
    b.assert_name(&field("Password"), "Password");
    b.assert_name(&button("Log in"), "Log in");
    b.screenshot("login");
    b.log_in("admin", ADMIN_PASSWORD, true);
    b.assert_name(&button("Log out"), "Log out");
    b.assert_name(&button("Generate new token"), "Generate new token");
    assert_eq!(
        b.attr(&button("Access tokens"), "aria-current").as_deref(),
        Some("page"),
        "the navigation marks the current view"
    );

    // 2. Generate a token; the form refuses a missing name first.
    b.click(&button("Generate new token"));
    b.visible("//dialog[@open]");
    b.click(&dialog_button("Generate"));
    assert!(
        !b.text("//dialog[@open]//*[@role='alert']").is_empty(),
        "a missing name is reported in an alert"
    );
    b.press_in_focus(Key::Escape);
    b.gone("//dialog[@open]");

    b.open_generate_form("ci-deploy", &["metrics:read", "metrics:write"], "7 days");
    b.assert_name(&field("Name"), "Name");
    b.assert_name(&field("Expires"), "Expires");
    b.assert_name(&field("metrics:read"), "metrics:read");
    b.assert_name(&field("metrics:write"), "metrics:write");
    let collapsed = b.script(
        "const groups = document.querySelectorAll('dialog[open] details'); \
         return groups.length >= 2 && [...groups].every((d) => !d.open);",
    );
    assert_eq!(
        collapsed, true,
        "the compatible surfaces' scopes start collapsed"
    );
    b.screenshot("generate-token");
    b.click(&dialog_button("Generate"));
    let token = b.read_new_token();
    b.assert_name(&button("Copy"), "Copy");
    b.click(&button("Copy"));
    b.visible("//*[@aria-live and normalize-space()='Copied']");
    b.screenshot("new-token");
    b.dismiss_new_token();
    b.visible(&row("ci-deploy"));

    // 3. The token works, with exactly those scopes and a 7-day expiry.
    let v = server.verify(&token, &["metrics:read", "metrics:write"]);
    assert_eq!(v["valid"], true, "{v}");
    let mut scopes: Vec<&str> = v["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["metrics:read", "metrics:write"]);
    let expires = time::OffsetDateTime::parse(
        v["expiresAt"].as_str().expect("an expiry"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_7_days = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    assert!(
        (expires - in_7_days).abs() < time::Duration::minutes(5),
        "expires in 7 days: {expires}"
    );
    let token_id = v["tokenId"].as_str().unwrap().to_owned();
    assert_eq!(
        b.text(&format!(
            "{}//code[normalize-space()={}]",
            row("ci-deploy"),
            lit(&token_id)
        )),
        token_id,
        "the row shows the token's id"
    );
    let self_status = |t: &str| {
        server
            .with_token("GET", "/api/v1/tokens/self", t)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(self_status(&token), 200);

    // 4. Deactivate, activate, delete (Escape cancels first), rotate.
    b.assert_name(&button("Deactivate ci-deploy"), "Deactivate ci-deploy");
    b.click(&button("Deactivate ci-deploy"));
    b.visible(&button("Activate ci-deploy"));
    let v = server.verify(&token, &[]);
    assert_eq!(
        (v["valid"].as_bool(), v["code"].as_str()),
        (Some(false), Some("DISABLED")),
        "{v}"
    );
    assert_eq!(self_status(&token), 401);

    b.click(&button("Activate ci-deploy"));
    b.visible(&button("Deactivate ci-deploy"));
    assert_eq!(server.verify(&token, &[])["valid"], true);
    assert_eq!(self_status(&token), 200);

    b.click(&button("Delete ci-deploy"));
    b.visible(&dialog_button("Delete"));
    assert_eq!(
        b.focused_name(),
        "Cancel",
        "focus moves into the confirmation"
    );
    b.press_in_focus(Key::Escape);
    b.gone("//dialog[@open]");
    assert_eq!(server.verify(&token, &[])["valid"], true, "Escape cancels");
    b.click(&button("Delete ci-deploy"));
    b.click(&dialog_button("Delete"));
    b.gone(&row("ci-deploy"));
    assert_eq!(server.verify(&token, &[])["code"], "NOT_FOUND");

    let old = b.generate("nightly-backup", &["metrics:read"], "Never");
    b.dismiss_new_token();
    b.click(&button("Rotate nightly-backup"));
    b.click(&dialog_button("Rotate"));
    let rotated = b.read_new_token();
    assert_ne!(rotated, old);
    let v = server.verify(&rotated, &["metrics:read"]);
    assert_eq!(v["valid"], true, "the rotated token works: {v}");
    assert_eq!(v["name"], "nightly-backup");
    b.dismiss_new_token();

    // 5. A member sees only their own tokens, and neither "All users" nor the audit log.
    let (status, body) = status_json(
        server
            .admin("POST", "/api/v1/users")
            .json(&json!({ "username": "mia", "password": "mia-password-123", "role": "member" }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "creating mia: {body}");
    b.log_out();
    b.log_in("mia", "mia-password-123", false);
    b.assert_name(&button("My tokens"), "My tokens");
    b.click(&button("Generate new token"));
    b.visible(&field("metrics:read"));
    assert!(
        !b.is_shown(&field("tokens:admin")) && !b.is_shown(&field("audit:read")),
        "a member is not offered scopes they do not hold"
    );
    b.press_in_focus(Key::Escape);
    let mias = b.generate("mia-laptop", &["metrics:read"], "30 days");
    b.dismiss_new_token();
    b.visible(&row("mia-laptop"));
    b.visible(TOKENS_LOADED);
    assert_eq!(server.verify(&mias, &["metrics:read"])["valid"], true);
    assert!(
        !b.is_shown(&button("All users")),
        "no All users for a member"
    );
    assert!(
        !b.is_shown(&button("Audit log")),
        "no audit log for a member"
    );
    let list = b.text("//tbody");
    assert!(list.contains("mia-laptop"), "{list}");
    assert!(
        !list.contains("nightly-backup") && !list.contains("ci-deploy"),
        "a member sees none of the admin's tokens: {list}"
    );
    assert_eq!(
        b.text(&format!("{}/td[@data-label='Owner']", row("mia-laptop"))),
        "mia"
    );

    // ... and an admin sees everyone's, with owners by name, and the audit log.
    b.log_out();
    b.log_in("admin", ADMIN_PASSWORD, false);
    assert!(
        !b.is_shown(&row("mia-laptop")),
        "My tokens holds only the admin's"
    );
    b.click(&button("All users"));
    b.visible(&format!(
        "{}/td[@data-label='Owner' and normalize-space()='mia']",
        row("mia-laptop")
    ));
    b.visible(TOKENS_LOADED);
    assert_eq!(
        b.attr(&button("All users"), "aria-pressed").as_deref(),
        Some("true")
    );
    b.screenshot("access-tokens");

    b.click(&button("Audit log"));
    b.visible(&heading("Audit log"));
    assert_eq!(
        b.attr(&button("Audit log"), "aria-current").as_deref(),
        Some("page")
    );
    b.visible("//tbody/tr[td[contains(., 'token.disable')]]");
    b.visible(&format!(
        "//tbody/tr[td[contains(., 'token.delete')] and td[contains(., {})]]",
        lit(&token_id)
    ));
    b.screenshot("audit-log");

    // 6. A phone-sized window: no sideways scrolling of the page.
    b.click(&button("Access tokens"));
    b.visible(&heading("Access tokens"));
    b.resize(390, 844);
    b.visible(TOKENS_LOADED);
    let widths = b.script("return [document.documentElement.scrollWidth, window.innerWidth]");
    let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(inner <= 400, "the window really is narrow: {inner}px");
    assert!(
        scroll <= inner,
        "no horizontal page scroll at {inner}px: {scroll}px wide"
    );
    b.screenshot("access-tokens-narrow");

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// Rate limits, credits and an external id set in "Generate new token" reach the token, and
/// the list shows them with what is left of the credits.
#[test]
fn the_page_sets_rate_limits_and_credits() {
    if !browser_installed() {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, false);

    b.open_generate_form("metered-api", &["metrics:read"], "Never");
    b.click(&button("Add rate limit"));
    assert_eq!(
        b.focused_name(),
        "Limit name",
        "focus moves to the new limit"
    );
    for label in ["Limit name", "Uses", "Per", "Unit", "Auto-apply"] {
        b.assert_name(&in_limit(1, label), label);
    }
    b.assert_name(&button("Remove rate limit 1"), "Remove rate limit 1");
    assert!(
        b.checked(&in_limit(1, "Auto-apply")),
        "auto-applied unless unticked"
    );

    // The page asks for what is missing; the server refuses what is out of range, in its words.
    b.click(&dialog_button("Generate"));
    assert_eq!(b.dialog_alert(), "Rate limit 1 needs a name.");
    assert_eq!(b.focused_name(), "Limit name");
    b.fill(&in_limit(1, "Limit name"), "requests");
    b.fill(&in_limit(1, "Uses"), "100");
    b.fill(&in_limit(1, "Per"), "31");
    b.choose(&in_limit(1, "Unit"), "days");
    b.click(&dialog_button("Generate"));
    let refused = b.wait("the server's refusal", |b| {
        let text = b.dialog_alert();
        Ok(text.contains("ratelimits[0].durationMs").then_some(text))
    });
    assert!(refused.contains("30 days"), "{refused}");
    b.fill(&in_limit(1, "Per"), "1");
    b.choose(&in_limit(1, "Unit"), "minutes");

    // A second limit, only for verifications that name it; a third, removed again.
    b.click(&button("Add rate limit"));
    b.fill(&in_limit(2, "Limit name"), "search");
    b.fill(&in_limit(2, "Uses"), "10");
    b.choose(&in_limit(2, "Unit"), "seconds");
    b.click(&in_limit(2, "Auto-apply"));
    b.click(&button("Add rate limit"));
    b.click(&button("Remove rate limit 3"));
    b.gone(&in_limit(3, "Limit name"));

    assert!(
        !b.is_shown(&field("Refill amount")),
        "no refill amount without a refill"
    );
    b.fill(&field("Remaining"), "1000");
    b.choose(&field("Refill"), "Monthly");
    b.fill(&field("Refill amount"), "1000");
    b.fill(&field("Refill day"), "15");
    b.fill(&field("External ID"), "cust_42");
    b.screenshot("generate-token-usage");
    b.click(&dialog_button("Generate"));
    let token = b.read_new_token();
    b.dismiss_new_token();

    // The token holds exactly what the form said. (A verification of cost 0 names its id
    // without spending a credit.)
    let verify = |cost: u64| {
        let (status, v) = status_json(
            server
                .anon("POST", "/api/v1/verify")
                .json(&json!({"token": token, "credits": {"cost": cost}}))
                .send()
                .unwrap(),
        );
        assert_eq!((status, &v["valid"]), (200, &json!(true)), "{v}");
        v
    };
    let v = verify(0);
    assert_eq!(v["externalId"], "cust_42", "{v}");
    let id = v["tokenId"].as_str().unwrap().to_owned();
    let (status, stored) = status_json(
        server
            .admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        stored["ratelimits"],
        json!([
            {"name": "requests", "limit": 100, "durationMs": 60_000, "autoApply": true},
            {"name": "search", "limit": 10, "durationMs": 1_000, "autoApply": false},
        ]),
        "{stored}"
    );
    assert_eq!(
        stored["credits"],
        json!({"remaining": 1000, "refill": {"interval": "monthly", "amount": 1000, "refillDay": 15}}),
        "{stored}"
    );
    assert_eq!(stored["externalId"], "cust_42");

    let usage = |name: &str| b.text(&format!("{}/td[@data-label='Usage']", row(name)));
    let shown = usage("metered-api");
    for line in [
        "requests: 100 per minute",
        "search: 10 per second, when named",
        "Credits: 1000 / refills monthly to 1000 (day 15)",
        "External ID: cust_42",
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in:\n{shown}");
    }

    // What is left, after a verification spent some.
    assert_eq!(verify(258)["credits"]["remaining"], 742);
    b.click(&button("Access tokens"));
    b.visible(TOKENS_LOADED);
    b.wait("the list to show 742 credits", |b| {
        let text = b.run(async {
            b.client
                .find(Locator::XPath(&format!(
                    "{}/td[@data-label='Usage']",
                    row("metered-api")
                )))
                .await?
                .text()
                .await
        })?;
        Ok(text
            .contains("Credits: 742 / refills monthly to 1000 (day 15)")
            .then_some(()))
    });

    // A token without any: unlimited, and no limits.
    b.generate("plain", &["metrics:read"], "Never");
    b.dismiss_new_token();
    assert_eq!(usage("plain"), "Credits: unlimited");
    b.screenshot("access-tokens-usage");

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// A wrong password shows the server's message in an alert; a reload keeps the session; a
/// session that ends sends the page back to the login form with a message.
#[test]
fn the_page_reports_failed_logins_and_ended_sessions() {
    if !browser_installed() {
        return;
    }
    let server = Server::on(Backend::Sqlite).args(SCOPE_ARGS).start();
    let (status, expected) = status_json(
        server
            .anon("POST", "/api/v1/session")
            .json(&json!({ "username": "admin", "password": "not-the-password" }))
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, expected["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let message = expected["message"].as_str().unwrap();

    let b = Browser::open(&server);
    b.goto("/");
    b.fill(&field("Username"), "admin");
    b.fill(&field("Password"), "not-the-password");
    b.click(&button("Log in"));
    let alert = b.wait("the login alert", |b| {
        let Some(e) = b.displayed("//form//*[@role='alert']")? else {
            return Ok(None);
        };
        let text = b.run(e.text())?;
        Ok((!text.is_empty()).then_some(text))
    });
    assert_eq!(alert, message);

    b.log_in("admin", ADMIN_PASSWORD, false);
    b.run(b.client.refresh()).unwrap();
    b.visible(&heading("Access tokens"));
    b.visible(TOKENS_LOADED);

    // The cookie disappears (as when the session expires): the next call gets a 401.
    b.run(b.client.delete_all_cookies()).unwrap();
    b.click(&button("Audit log"));
    let alert = b.text("//form//*[@role='alert']");
    assert_eq!(alert, "Your session has ended; log in again.");
    b.visible(&field("Username"));
}
