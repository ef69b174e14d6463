//! `GET /api/v2/apiTokens`: the list, with Dynatrace's paging, selector, fields and sort.

use axum::extract::State;
use keygate_store::{TokenFilter, TokenRecord};
use serde_json::{Map, Value};

use super::error::*;
use super::model::*;
use super::query::{self, millis, PageKey};
use super::request::*;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::service::tokens::{self};
use crate::state::AppState;

pub const DEFAULT_PAGE_SIZE: u32 = 200;
pub const MIN_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// The query parameters that carry the caller's own token, not part of a list query.
const AUTH_PARAMS: [&str; 3] = ["api-token", "apiToken", "api_token"];
const LIST_PARAMS: [&str; 7] = [
    "nextPageKey",
    "pageSize",
    "apiTokenSelector",
    "fields",
    "sort",
    "from",
    "to",
];

/// The list query, checked.
struct ListQuery {
    key: PageKey,
    selector: query::Selector,
    fields: Vec<&'static str>,
    sort: query::Sort,
}

impl ListQuery {
    /// Parses what a page key holds; `location` names where a problem came from.
    fn from_key(key: PageKey, from_page_key: bool) -> Result<Self, DtError> {
        let at = |param: &str| {
            if from_page_key {
                "nextPageKey".to_owned()
            } else {
                param.to_owned()
            }
        };
        let selector = match &key.selector {
            Some(s) => query::parse_selector(s)
                .map_err(|m| DtError::one(&at("apiTokenSelector"), m, QUERY))?,
            None => query::Selector::default(),
        };
        let fields = match &key.fields {
            Some(f) => query::parse_fields(f).map_err(|m| DtError::one(&at("fields"), m, QUERY))?,
            None => query::DEFAULT_FIELDS.to_vec(),
        };
        let sort = match &key.sort {
            Some(s) => query::parse_sort(s).map_err(|m| DtError::one(&at("sort"), m, QUERY))?,
            None => query::Sort::default(),
        };
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&key.page_size) {
            return Err(DtError::one(
                &at("pageSize"),
                format!("must be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}"),
                QUERY,
            ));
        }
        if let (Some(f), Some(t)) = (key.from, key.to) {
            if f > t {
                return Err(DtError::one(&at("from"), "must not be after to", QUERY));
            }
        }
        Ok(ListQuery {
            key,
            selector,
            fields,
            sort,
        })
    }

    fn from_params(params: Vec<(String, String)>) -> Result<Self, DtError> {
        let mut given: Vec<(&'static str, String)> = Vec::new();
        for (k, v) in params {
            if AUTH_PARAMS.contains(&k.as_str()) {
                continue;
            }
            // Unknown parameters are ignored, as Dynatrace does.
            let Some(name) = LIST_PARAMS.iter().find(|p| **p == k) else {
                continue;
            };
            if given.iter().any(|(n, _)| n == name) {
                return Err(DtError::one(name, "is given more than once", QUERY));
            }
            if !v.trim().is_empty() {
                given.push((name, v));
            }
        }
        let get = |name: &str| {
            given
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(k) = get("nextPageKey") {
            if given.len() > 1 {
                return Err(DtError::one(
                    "nextPageKey",
                    "must be sent alone: it already holds the whole query",
                    QUERY,
                ));
            }
            let key = PageKey::decode(&k)
                .filter(|k| k.after.is_some())
                .ok_or_else(|| DtError::one("nextPageKey", "is not a valid page key", QUERY))?;
            return Self::from_key(key, true);
        }
        let now = keygate_store::now();
        let time = |name: &str| -> Result<Option<i64>, DtError> {
            get(name)
                .map(|v| {
                    query::parse_time(&v, now)
                        .map(millis)
                        .map_err(|m| DtError::one(name, m, QUERY))
                })
                .transpose()
        };
        let page_size = match get("pageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                DtError::one(
                    "pageSize",
                    format!("must be a number between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}"),
                    QUERY,
                )
            })?,
        };
        let key = PageKey {
            selector: get("apiTokenSelector"),
            fields: get("fields"),
            sort: get("sort"),
            from: time("from")?,
            to: time("to")?,
            page_size,
            after: None,
        };
        Self::from_key(key, false)
    }

    fn matches(&self, rec: &TokenRecord) -> bool {
        let used = rec.last_used_at.map(millis);
        self.selector.matches(rec)
            && self.key.from.is_none_or(|f| used.is_some_and(|u| u >= f))
            && self.key.to.is_none_or(|t| used.is_some_and(|u| u <= t))
    }
}

/// Every token the caller may see, through `tokens::list` page by page.
pub(super) async fn all_visible(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<TokenRecord>, ApiError> {
    let mut out = Vec::new();
    let mut before_seq = None;
    loop {
        let filter = TokenFilter {
            before_seq,
            limit: 1000,
            ..TokenFilter::default()
        };
        let page = tokens::list(state, caller, filter).await?;
        out.extend(page.items);
        match page.next {
            Some(n) => before_seq = Some(n),
            None => return Ok(out),
        }
    }
}

/// List tokens: the caller's own, or with `tokens:admin` the whole tenant's.
#[utoipa::path(get, path = "/api/v2/apiTokens", tag = "dynatrace",
    params(ListParams),
    responses(
        (status = 200, body = ApiTokenList),
        (status = 400, description = "Bad query parameter", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Reader,
    params: Result<Query<Vec<(String, String)>>, ApiError>,
) -> Result<axum::Json<ApiTokenList>, DtError> {
    let caller = caller?;
    let Query(params) = params?;
    let q = ListQuery::from_params(params)?;
    let field = q.sort.field;
    let desc = q.sort.descending;
    let mut items: Vec<(query::Key, TokenRecord)> = all_visible(&state, &caller)
        .await?
        .into_iter()
        .filter(|t| q.matches(t))
        .map(|t| (query::sort_key(&t, field), t))
        .collect();
    items.sort_by(|a, b| query::compare((&a.0, a.1.id.as_str()), (&b.0, b.1.id.as_str()), desc));
    let total = items.len() as u64;
    let start = match &q.key.after {
        None => 0,
        Some((k, id)) => items.partition_point(|(ik, t)| {
            query::compare((ik, t.id.as_str()), (k, id), desc) != std::cmp::Ordering::Greater
        }),
    };
    let size = q.key.page_size as usize;
    let page = &items[start..(start + size).min(items.len())];
    let next_page_key = match page.last() {
        Some((k, t)) if start + page.len() < items.len() => Some(
            PageKey {
                after: Some((k.clone(), t.id.to_string())),
                ..q.key.clone()
            }
            .encode(),
        ),
        _ => None,
    };
    let api_tokens = page
        .iter()
        .map(|(_, t)| {
            let mut full = match serde_json::to_value(ApiToken::from(t)) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let mut shown = Map::new();
            for f in &q.fields {
                if let Some(v) = full.remove(*f) {
                    shown.insert((*f).to_owned(), v);
                }
            }
            Value::Object(shown)
        })
        .collect();
    Ok(axum::Json(ApiTokenList {
        api_tokens,
        next_page_key,
        page_size: q.key.page_size,
        total_count: total,
    }))
}
