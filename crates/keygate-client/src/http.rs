//! The network seam: keygate's replication endpoints and its verify endpoint, over reqwest.
//! Everything above this module works on the wire types, so the rules can be tested without a
//! server.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::wire::{ChangesPage, ErrorBody, PageKey, SnapshotPage, VerifyAnswer, VerifyBody};

pub(crate) struct Keygate {
    client: reqwest::Client,
    snapshot_url: Url,
    changes_url: Url,
    verify_url: Url,
    authorization: HeaderValue,
    http_timeout: Duration,
}

impl Keygate {
    pub fn new(
        base: &str,
        token: SecretString,
        client: Option<reqwest::Client>,
        http_timeout: Duration,
    ) -> Result<Self, Error> {
        let mut base = Url::parse(base).map_err(|e| Error::Url(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Url(format!(
                "scheme {} is not http(s)",
                base.scheme()
            )));
        }
        // A base of `https://host/keygate` must keep its last segment when joined.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let join = |p: &str| base.join(p).map_err(|e| Error::Url(e.to_string()));
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| Error::Options("the replication token is not a valid header value"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            client: match client {
                Some(c) => c,
                None => reqwest::Client::builder()
                    .build()
                    .map_err(Error::Transport)?,
            },
            snapshot_url: join("api/v1/replication/snapshot")?,
            changes_url: join("api/v1/replication/changes")?,
            verify_url: join("api/v1/verify")?,
            authorization,
            http_timeout,
        })
    }

    pub async fn snapshot_page(
        &self,
        after: Option<&PageKey>,
        limit: u32,
    ) -> Result<SnapshotPage, Error> {
        let mut url = self.snapshot_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &limit.to_string());
            if let Some(after) = after {
                q.append_pair("after", &after.to_query_value());
            }
        }
        self.get(url, self.http_timeout).await
    }

    pub async fn changes(
        &self,
        cursor: &str,
        wait: Duration,
        limit: u32,
    ) -> Result<ChangesPage, Error> {
        let mut url = self.changes_url.clone();
        url.query_pairs_mut()
            .append_pair("after", cursor)
            .append_pair("wait", &wait.as_secs().to_string())
            .append_pair("limit", &limit.to_string());
        self.get(url, wait + self.http_timeout).await
    }

    pub async fn verify(&self, body: &VerifyBody<'_>) -> Result<VerifyAnswer, Error> {
        let resp = self
            .client
            .post(self.verify_url.clone())
            .timeout(self.http_timeout)
            .json(body)
            .send()
            .await
            .map_err(Error::Transport)?;
        read(resp).await
    }

    async fn get<T: DeserializeOwned>(&self, url: Url, timeout: Duration) -> Result<T, Error> {
        let resp = self
            .client
            .get(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(Error::Transport)?;
        read(resp).await
    }
}

async fn read<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, Error> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(Error::Transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()));
    }
    let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
    Err(match status {
        StatusCode::GONE => Error::CursorTooOld,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Refused {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        },
        _ => Error::Status {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        },
    })
}
