//! keygate's web page as the browser suites see it: its controls found by what a person reads
//! (labels, button texts, headings) and what a person does on it (log in, generate a token, …),
//! on top of the shared headless Chromium in `common::browser`.
// Each browser suite uses only part of this.
#![allow(dead_code)]

pub use crate::common::browser::*;

use fantoccini::key::Key;

/// Two scopes of "your API", for the forms' checkboxes.
pub const SCOPE_ARGS: &[&str] = &[
    "--scope",
    "metrics:read=Read metrics",
    "--scope",
    "metrics:write=Write metrics",
];

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
// What a person does on the page

impl Browser {
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
