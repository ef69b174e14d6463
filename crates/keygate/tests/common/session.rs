//! Web sessions as the page uses them: a login's cookie and CSRF token, and requests made with
//! both.

use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{json, Value};

use super::Server;

/// A logged-in web session: the cookie's `name=value` and the CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
    /// The login's answer: `user`, `scopes`, `csrfToken`, `expiresAt`.
    pub body: Value,
}

impl Session {
    pub fn user_id(&self) -> String {
        self.body["user"]["id"].as_str().unwrap().to_owned()
    }
}

/// The `name=value` part of a `Set-Cookie` header, and the whole header.
pub fn session_cookie(r: &Response) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("keygate_session="))
        .map(|v| (v.split(';').next().unwrap().to_owned(), v.to_owned()))
}

impl Server {
    /// POST /api/v1/session; the raw answer.
    pub fn try_login(&self, tenant: &str, username: &str, password: &str) -> Response {
        self.anon("POST", "/api/v1/session")
            .json(&json!({ "tenant": tenant, "username": username, "password": password }))
            .send()
            .unwrap()
    }

    /// Logs in to tenant `default`, asserting success.
    pub fn login(&self, username: &str, password: &str) -> Session {
        self.login_to("default", username, password)
    }

    pub fn login_to(&self, tenant: &str, username: &str, password: &str) -> Session {
        let r = self.try_login(tenant, username, password);
        let status = r.status().as_u16();
        let (cookie, _) = session_cookie(&r).unwrap_or_default();
        let body: Value = r.json().unwrap();
        assert_eq!(status, 200, "login as {username}: {body}");
        Session {
            cookie,
            csrf: body["csrfToken"].as_str().unwrap().to_owned(),
            body,
        }
    }

    /// A request as the web page makes it: the cookie and the CSRF header.
    pub fn as_session(&self, s: &Session, method: &str, path: &str) -> RequestBuilder {
        self.anon(method, path)
            .header("Cookie", &s.cookie)
            .header("X-CSRF-Token", &s.csrf)
    }
}
