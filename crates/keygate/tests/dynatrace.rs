//! The Dynatrace-compatible token API (`/api/v2/apiTokens…`, seed 003), end to end: every route,
//! parameter and error case over raw HTTP, then the unmodified `dt` client (PyPI `dt` 1.2.2).

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{json, Value};

const BASE: &str = "/api/v2/apiTokens";

/// A request with `Authorization: Api-Token`, as Dynatrace's clients send it.
fn dt(s: &Server, method: &str, path: &str, token: &str) -> RequestBuilder {
    s.anon(method, path)
        .header("Authorization", format!("Api-Token {token}"))
}

fn admin(s: &Server, method: &str, path: &str) -> RequestBuilder {
    let t = s.admin_token.clone();
    dt(s, method, path, &t)
}

/// Asserts Dynatrace's error body; returns it.
fn assert_dt_error(r: Response, status: u16) -> Value {
    let (s, v) = status_json(r);
    assert_eq!(s, status, "status; body: {v}");
    let e = &v["error"];
    assert_eq!(e["code"], status, "error.code; body: {v}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message: {v}"
    );
    assert!(
        e["constraintViolations"].is_array(),
        "error.constraintViolations: {v}"
    );
    v
}

/// Asserts a 400 whose violations name `path` at `location`.
fn assert_violation(r: Response, path: &str, location: &str) -> Value {
    let v = assert_dt_error(r, 400);
    let vs = v["error"]["constraintViolations"].as_array().unwrap();
    assert!(
        vs.iter().any(|x| x["path"] == path
            && x["parameterLocation"] == location
            && x["message"].as_str().is_some_and(|m| !m.is_empty())),
        "a violation of {path} in {location}: {v}"
    );
    v
}

/// Creates a token here; returns (id, token).
fn create(s: &Server, token: &str, body: Value) -> (String, String) {
    let (st, v) = status_json(dt(s, "POST", BASE, token).json(&body).send().unwrap());
    assert_eq!(st, 201, "create {body}: {v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

fn get(s: &Server, id: &str) -> Value {
    let (st, v) = status_json(admin(s, "GET", &format!("{BASE}/{id}")).send().unwrap());
    assert_eq!(st, 200, "get {id}: {v}");
    v
}

fn is_dt_date(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Milliseconds since the epoch of a `yyyy-MM-ddTHH:mm:ss.SSSZ` date.
fn date_ms(v: &Value) -> i64 {
    unix_ms(time_of(v))
}

both_backends!(errors_use_dynatraces_body);
fn errors_use_dynatraces_body(backend: Backend) {
    let s = Server::on(backend).start();
    // 401: no token, a bad token, a made-up one.
    let r = s.anon("GET", BASE).send().unwrap();
    assert!(r.headers().get("www-authenticate").is_some());
    let v = assert_dt_error(r, 401);
    assert_error_snapshot!("dynatrace_401_without_a_token", v);
    assert_dt_error(dt(&s, "GET", BASE, "nonsense").send().unwrap(), 401);
    assert_dt_error(dt(&s, "GET", BASE, &fresh_token()).send().unwrap(), 401);
    assert_dt_error(
        s.anon("POST", BASE)
            .json(&json!({"name": "x", "scopes": ["metrics.read"]}))
            .send()
            .unwrap(),
        401,
    );
    // 403: a token without apiTokens.read / tokens:read; a reader cannot write.
    let (_, metrics) = create(
        &s,
        &s.admin_token,
        json!({"name": "m", "scopes": ["metrics.read"]}),
    );
    let v = assert_dt_error(dt(&s, "GET", BASE, &metrics).send().unwrap(), 403);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("apiTokens.read"));
    assert_error_snapshot!("dynatrace_403_without_the_scope", v);
    let (_, reader) = create(
        &s,
        &s.admin_token,
        json!({"name": "r", "scopes": ["apiTokens.read"]}),
    );
    assert_eq!(dt(&s, "GET", BASE, &reader).send().unwrap().status(), 200);
    let v = assert_dt_error(
        dt(&s, "POST", BASE, &reader)
            .json(&json!({"name": "x", "scopes": ["apiTokens.read"]}))
            .send()
            .unwrap(),
        403,
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("apiTokens.write"));
    // No escalation: a writer cannot grant what it lacks.
    let (_, writer) = create(
        &s,
        &s.admin_token,
        json!({"name": "w", "scopes": ["apiTokens.write", "metrics.read"]}),
    );
    assert_dt_error(
        dt(&s, "POST", BASE, &writer)
            .json(&json!({"name": "x", "scopes": ["DataExport"]}))
            .send()
            .unwrap(),
        403,
    );
    // 404.
    let v = assert_dt_error(
        admin(&s, "GET", &format!("{BASE}/kg_nosuchtoken12345"))
            .send()
            .unwrap(),
        404,
    );
    assert_error_snapshot!("dynatrace_404_unknown_id", v);
    assert_dt_error(
        admin(&s, "PUT", &format!("{BASE}/kg_nosuchtoken12345"))
            .json(&json!({"name": "x"}))
            .send()
            .unwrap(),
        404,
    );
    assert_dt_error(
        admin(&s, "DELETE", &format!("{BASE}/kg_nosuchtoken12345"))
            .send()
            .unwrap(),
        404,
    );
    assert_dt_error(
        admin(&s, "DELETE", &format!("{BASE}/{}", fresh_token()))
            .send()
            .unwrap(),
        404,
    );
    // 400: malformed JSON, wrong shapes, field problems, each named in constraintViolations.
    assert_dt_error(
        admin(&s, "POST", BASE)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap(),
        400,
    );
    assert_violation(
        admin(&s, "POST", BASE).json(&json!([1, 2])).send().unwrap(),
        "",
        "PAYLOAD_BODY",
    );
    let v = assert_violation(
        admin(&s, "POST", BASE).json(&json!({})).send().unwrap(),
        "name",
        "PAYLOAD_BODY",
    );
    assert_error_snapshot!("dynatrace_400_empty_create_body", v);
    assert!(v["error"]["constraintViolations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["path"] == "scopes"));
    for (body, path) in [
        (json!({"name": 5, "scopes": ["metrics.read"]}), "name"),
        (json!({"name": "", "scopes": ["metrics.read"]}), "name"),
        (
            json!({"name": "x".repeat(201), "scopes": ["metrics.read"]}),
            "name",
        ),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": "metrics.read"}), "scopes"),
        (json!({"name": "x", "scopes": [1]}), "scopes"),
        (json!({"name": "x", "scopes": ["no.such.scope"]}), "scopes"),
        (json!({"name": "x", "scopes": ["bad scope!"]}), "scopes"),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": "soon"}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": "now-1d"}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": 1000}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": "now+20y"}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": "now+99999999999999999999d"}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": 1.5}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "expirationDate": true}),
            "expirationDate",
        ),
        (
            json!({"name": "x", "scopes": ["metrics.read"], "personalAccessToken": "yes"}),
            "personalAccessToken",
        ),
    ] {
        assert_violation(
            admin(&s, "POST", BASE).json(&body).send().unwrap(),
            path,
            "PAYLOAD_BODY",
        );
    }
    let (id, _) = create(
        &s,
        &s.admin_token,
        json!({"name": "t", "scopes": ["metrics.read"]}),
    );
    for (body, path) in [
        (json!({"name": 1}), "name"),
        (json!({"enabled": "no"}), "enabled"),
        (json!({"scopes": []}), "scopes"),
        (json!({"scopes": ["nope.nope"]}), "scopes"),
    ] {
        assert_violation(
            admin(&s, "PUT", &format!("{BASE}/{id}"))
                .json(&body)
                .send()
                .unwrap(),
            path,
            "PAYLOAD_BODY",
        );
    }
    assert_violation(
        admin(&s, "POST", &format!("{BASE}/lookup"))
            .json(&json!({}))
            .send()
            .unwrap(),
        "token",
        "PAYLOAD_BODY",
    );
    assert_violation(
        admin(&s, "POST", &format!("{BASE}/lookup"))
            .json(&json!({"token": 7}))
            .send()
            .unwrap(),
        "token",
        "PAYLOAD_BODY",
    );
    // Query problems.
    for (q, path) in [
        ("pageSize=99", "pageSize"),
        ("pageSize=10001", "pageSize"),
        ("pageSize=abc", "pageSize"),
        ("pageSize=-5", "pageSize"),
        ("apiTokenSelector=colour(%22red%22)", "apiTokenSelector"),
        ("apiTokenSelector=owner(%22x%22", "apiTokenSelector"),
        (
            "apiTokenSelector=personalAccessToken(maybe)",
            "apiTokenSelector",
        ),
        ("fields=%2Bcolour", "fields"),
        ("sort=-colour", "sort"),
        ("from=yesterday", "from"),
        ("to=2025-13-45", "to"),
        ("from=now&to=now-1d", "from"),
        ("nextPageKey=zz", "nextPageKey"),
        ("nextPageKey=abcd", "nextPageKey"),
        ("pageSize=100&pageSize=200", "pageSize"),
    ] {
        assert_violation(
            admin(&s, "GET", &format!("{BASE}?{q}")).send().unwrap(),
            path,
            "QUERY",
        );
    }
    // Deleting the token you call with.
    let v = assert_violation(
        admin(
            &s,
            "DELETE",
            &format!(
                "{BASE}/{}",
                s.admin_token
                    .split('_')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("_")
            ),
        )
        .send()
        .unwrap(),
        "id",
        "PATH",
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("can't delete"));
    // The seed's query-parameter style works here too.
    let r = s
        .anon("GET", &format!("{BASE}?api-token={}", s.admin_token))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .anon("GET", &format!("{BASE}?api-token=bogus"))
        .send()
        .unwrap();
    assert_dt_error(r, 401);
}

both_backends!(create_and_read_with_dynatrace_dates);
fn create_and_read_with_dynatrace_dates(backend: Backend) {
    let s = Server::on(backend).start();
    // Explicit nulls, as the dt client sends them.
    let r = admin(&s, "POST", BASE)
        .json(
            &json!({"name": "plain", "scopes": ["metrics.read", "apiTokens.read"],
                      "expirationDate": null, "personalAccessToken": null}),
        )
        .send()
        .unwrap();
    let (st, v) = status_json(r);
    assert_eq!(st, 201, "{v}");
    assert!(v["expirationDate"].is_null(), "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("{id}_")));
    let t = get(&s, &id);
    for f in [
        "id",
        "name",
        "enabled",
        "owner",
        "personalAccessToken",
        "creationDate",
        "expirationDate",
        "lastUsedDate",
        "modifiedDate",
        "lastUsedIpAddress",
        "scopes",
        "additionalMetadata",
    ] {
        assert!(t.get(f).is_some(), "field {f} in {t}");
    }
    assert_eq!(t["id"], id);
    assert_eq!(t["name"], "plain");
    assert_eq!(t["enabled"], true);
    assert_eq!(t["personalAccessToken"], true);
    assert!(is_dt_date(&t["creationDate"]), "{t}");
    assert!(!t["creationDate"].as_str().unwrap().contains("+00:00"));
    assert!(t["expirationDate"].is_null());
    assert!(t["modifiedDate"].is_null());
    assert_eq!(t["scopes"], json!(["apiTokens.read", "metrics.read"]));
    // The owner is the owner id the native API shows.
    let (_, native) = status_json(
        s.admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(t["owner"], native["ownerId"]);
    assert_ne!(native["ownerId"], native["tenantId"]);
    assert!((date_ms(&t["creationDate"]) - now_ms()).abs() < 60_000);

    // expirationDate: epoch millis (number or string), ISO 8601 with an offset, relative forms.
    let in_a_day = now_ms() + 86_400_000;
    for form in [json!(in_a_day), json!(in_a_day.to_string())] {
        let (st, v) = status_json(
            admin(&s, "POST", BASE)
                .json(&json!({"name": "ms", "scopes": ["metrics.read"], "expirationDate": form}))
                .send()
                .unwrap(),
        );
        assert_eq!(st, 201, "{v}");
        assert!(is_dt_date(&v["expirationDate"]), "{v}");
        assert_eq!(date_ms(&v["expirationDate"]), in_a_day);
        assert_eq!(
            get(&s, v["id"].as_str().unwrap())["expirationDate"],
            v["expirationDate"]
        );
    }
    let (st, v) = status_json(
        admin(&s, "POST", BASE)
            .json(&json!({"name": "iso", "scopes": ["metrics.read"],
                          "expirationDate": "2099-01-25T05:57:01.123+01:00"}))
            .send()
            .unwrap(),
    );
    // 2099 is more than ten years away: keygate's limit.
    assert_eq!(st, 400, "{v}");
    let year = 1970 + (now_ms() / 1000 / 86400 / 365) as i32 + 2;
    let (st, v) = status_json(
        admin(&s, "POST", BASE)
            .json(&json!({"name": "iso", "scopes": ["metrics.read"],
                          "expirationDate": format!("{year}-01-25T05:57:01.123+01:00")}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["expirationDate"], format!("{year}-01-25T04:57:01.123Z"));
    for (rel, secs) in [
        ("now+30m", 1800),
        ("now+1h", 3600),
        ("now+2d", 2 * 86400),
        ("now+1w", 7 * 86400),
        ("now+14d", 14 * 86400),
    ] {
        let (st, v) = status_json(
            admin(&s, "POST", BASE)
                .json(&json!({"name": rel, "scopes": ["metrics.read"], "expirationDate": rel}))
                .send()
                .unwrap(),
        );
        assert_eq!(st, 201, "{rel}: {v}");
        let got = date_ms(&v["expirationDate"]);
        let want = now_ms() + secs * 1000;
        assert!((got - want).abs() < 60_000, "{rel}: {got} vs {want}");
    }

    // personalAccessToken false: the tenant owns it; true: the calling user does.
    let (id, _) = create(
        &s,
        &s.admin_token,
        json!({"name": "service", "scopes": ["metrics.read"], "personalAccessToken": false}),
    );
    let t = get(&s, &id);
    assert_eq!(t["personalAccessToken"], false);
    let (_, native) = status_json(
        s.admin("GET", &format!("/api/v1/tokens/{id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(t["owner"], native["tenantId"]);
    let (id, _) = create(
        &s,
        &s.admin_token,
        json!({"name": "personal", "scopes": ["metrics.read"], "personalAccessToken": true}),
    );
    assert_eq!(get(&s, &id)["personalAccessToken"], true);
    // A tenant-owned token cannot make a personal one; a user's narrow token cannot make a
    // tenant-owned one.
    let (_, service) = create(
        &s,
        &s.admin_token,
        json!({"name": "svc", "scopes": ["apiTokens.write", "metrics.read"], "personalAccessToken": false}),
    );
    assert_violation(
        dt(&s, "POST", BASE, &service)
            .json(&json!({"name": "x", "scopes": ["metrics.read"], "personalAccessToken": true}))
            .send()
            .unwrap(),
        "personalAccessToken",
        "PAYLOAD_BODY",
    );
    let (_, narrow) = create(
        &s,
        &s.admin_token,
        json!({"name": "n", "scopes": ["apiTokens.write", "metrics.read"]}),
    );
    assert_dt_error(
        dt(&s, "POST", BASE, &narrow)
            .json(&json!({"name": "x", "scopes": ["metrics.read"], "personalAccessToken": false}))
            .send()
            .unwrap(),
        403,
    );

    // The token made here works on the native API.
    let r = s
        .with_token("GET", "/api/v1/tokens/self", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

both_backends!(next_page_key_pages_through_everything);
fn next_page_key_pages_through_everything(backend: Backend) {
    let s = Server::on(backend).start();
    // 250 tokens, created through this API from a few threads.
    let made: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..5)
            .map(|t| {
                let s = &s;
                sc.spawn(move || {
                    (0..50)
                        .map(|i| {
                            create(s, &s.admin_token, json!({"name": format!("bulk {t}-{i:02}"), "scopes": ["metrics.read"]})).0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(made.len(), 250);
    let total = 251; // and the bootstrap token

    let mut seen = Vec::new();
    let mut pages = 0;
    let (st, mut page) = status_json(
        admin(&s, "GET", &format!("{BASE}?pageSize=100"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{page}");
    loop {
        pages += 1;
        assert_eq!(page["totalCount"], total, "{}", page["totalCount"]);
        assert_eq!(page["pageSize"], 100);
        let items = page["apiTokens"].as_array().unwrap();
        for t in items {
            let keys: HashSet<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                HashSet::from(["id", "name", "enabled", "owner", "creationDate"]),
                "default fields"
            );
            seen.push(t["id"].as_str().unwrap().to_owned());
        }
        let Some(key) = page["nextPageKey"].as_str().map(str::to_owned) else {
            assert_eq!(items.len(), 51);
            break;
        };
        assert_eq!(items.len(), 100);
        // Any other list parameter with the key is refused...
        assert_violation(
            admin(&s, "GET", &format!("{BASE}?nextPageKey={key}&pageSize=100"))
                .send()
                .unwrap(),
            "nextPageKey",
            "QUERY",
        );
        assert_violation(
            admin(&s, "GET", &format!("{BASE}?nextPageKey={key}&sort=name"))
                .send()
                .unwrap(),
            "nextPageKey",
            "QUERY",
        );
        // ...but the token may ride in the query string beside it.
        let (st, p) = status_json(
            s.anon(
                "GET",
                &format!("{BASE}?nextPageKey={key}&api-token={}", s.admin_token),
            )
            .send()
            .unwrap(),
        );
        assert_eq!(st, 200, "{p}");
        page = p;
    }
    assert_eq!(pages, 3);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), total, "every token once");
    assert!(made.iter().all(|id| unique.contains(id)));

    // Default: newest first, 200 a page; tokens made between pages neither repeat nor vanish.
    let (_, p1) = status_json(admin(&s, "GET", BASE).send().unwrap());
    assert_eq!(p1["pageSize"], 200);
    let first = p1["apiTokens"].as_array().unwrap();
    assert_eq!(first.len(), 200);
    let dates: Vec<i64> = first.iter().map(|t| date_ms(&t["creationDate"])).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");
    create(
        &s,
        &s.admin_token,
        json!({"name": "late", "scopes": ["metrics.read"]}),
    );
    let key = p1["nextPageKey"].as_str().unwrap();
    let (_, p2) = status_json(
        admin(&s, "GET", &format!("{BASE}?nextPageKey={key}"))
            .send()
            .unwrap(),
    );
    assert_eq!(p2["apiTokens"].as_array().unwrap().len(), 51);
    assert!(p2["nextPageKey"].is_null());
    let mut all: Vec<&Value> = first.iter().collect();
    all.extend(p2["apiTokens"].as_array().unwrap());
    let ids: HashSet<&str> = all.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), total);

    // The key holds the query: sort, fields and selector carry over.
    let (_, p1) = status_json(
        admin(&s, "GET", &format!("{BASE}?pageSize=100&sort=name&fields=%2Bscopes,-owner&apiTokenSelector=scope(%22metrics.read%22)"))
            .send()
            .unwrap(),
    );
    assert_eq!(p1["totalCount"], 251);
    let key = p1["nextPageKey"].as_str().unwrap();
    let (_, p2) = status_json(
        admin(&s, "GET", &format!("{BASE}?nextPageKey={key}"))
            .send()
            .unwrap(),
    );
    let names: Vec<String> = p1["apiTokens"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["apiTokens"].as_array().unwrap())
        .map(|t| {
            assert!(
                t.get("owner").is_none() && t["scopes"] == json!(["metrics.read"]),
                "{t}"
            );
            t["name"].as_str().unwrap().to_lowercase()
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

both_backends!(selector_fields_sort_and_last_use);
fn selector_fields_sort_and_last_use(backend: Backend) {
    let s = Server::on(backend).start();
    let (a, _) = create(
        &s,
        &s.admin_token,
        json!({"name": "alpha", "scopes": ["DataExport", "metrics.read"], "expirationDate": "now+1d"}),
    );
    let (b, tb) = create(
        &s,
        &s.admin_token,
        json!({"name": "Bravo", "scopes": ["ReadConfig"], "expirationDate": "now+2d"}),
    );
    let (c, _) = create(
        &s,
        &s.admin_token,
        json!({"name": "charlie", "scopes": ["DataExport"], "personalAccessToken": false}),
    );
    let list = |q: &str| -> Vec<Value> {
        let (st, v) = status_json(admin(&s, "GET", &format!("{BASE}?{q}")).send().unwrap());
        assert_eq!(st, 200, "{q}: {v}");
        v["apiTokens"].as_array().unwrap().clone()
    };
    let ids = |q: &str| -> Vec<String> {
        list(q)
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Selector: scope (any of), owner, personalAccessToken, combined.
    let mut got = ids("apiTokenSelector=scope(%22DataExport%22)");
    got.sort();
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        ids("apiTokenSelector=scope(%22DataExport%22,%22ReadConfig%22)").len(),
        3
    );
    assert_eq!(
        ids("apiTokenSelector=personalAccessToken(false)"),
        vec![c.clone()]
    );
    let owner = get(&s, &a)["owner"].as_str().unwrap().to_owned();
    assert_eq!(
        ids(&format!(
            "apiTokenSelector=owner(%22{owner}%22),scope(%22DataExport%22)"
        )),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&format!(
            "apiTokenSelector=owner(%22{owner}%22), personalAccessToken(true)"
        ))
        .len(),
        3
    );
    assert!(ids("apiTokenSelector=owner(%22nobody%22)").is_empty());

    // Fields: + adds, - removes.
    let t = &list("apiTokenSelector=scope(%22ReadConfig%22)&fields=%2Bscopes,%2BexpirationDate,-creationDate,%2BpersonalAccessToken")[0];
    let keys: HashSet<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from([
            "id",
            "name",
            "enabled",
            "owner",
            "scopes",
            "expirationDate",
            "personalAccessToken"
        ])
    );
    assert_eq!(t["scopes"], json!(["ReadConfig"]));
    assert!(is_dt_date(&t["expirationDate"]));

    // Sort (among a, b and c).
    let sel = "apiTokenSelector=scope(%22DataExport%22,%22ReadConfig%22)";
    let sorted = |sort: &str| ids(&format!("{sel}&sort={sort}"));
    let abc = vec![a.clone(), b.clone(), c.clone()];
    let cba = vec![c.clone(), b.clone(), a.clone()];
    assert_eq!(sorted("name"), abc);
    assert_eq!(sorted("%2Bname"), abc);
    assert_eq!(sorted("-name"), cba);
    assert_eq!(sorted("creationDate"), abc);
    assert_eq!(sorted("-creationDate"), cba);
    assert_eq!(ids(sel), cba, "newest first by default");
    assert_eq!(sorted("expirationDate"), abc, "never-expiring last");
    assert_eq!(sorted("-expirationDate"), cba, "never-expiring first");
    // Modified: only b.
    assert_eq!(
        admin(&s, "PUT", &format!("{BASE}/{b}"))
            .json(&json!({"name": "bravo"}))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert!(is_dt_date(&get(&s, &b)["modifiedDate"]));
    assert_eq!(sorted("-modifiedDate")[0], b);
    assert_eq!(sorted("modifiedDate").last().unwrap(), &b);

    // Last use: b is used; from/to filter on it, and lastUsedDate sorts it.
    let before_use = now_ms() - 1;
    assert_eq!(
        s.with_token("GET", "/api/v1/tokens/self", &tb)
            .send()
            .unwrap()
            .status(),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let used = loop {
        let t = get(&s, &b);
        if !t["lastUsedDate"].is_null() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "lastUsedDate is written within seconds"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(is_dt_date(&used["lastUsedDate"]));
    assert!(used["lastUsedIpAddress"].is_string());
    let in_window = ids("from=now-1h");
    assert!(in_window.contains(&b) && !in_window.contains(&a) && !in_window.contains(&c));
    assert!(ids(&format!("from=now-1h&to={before_use}"))
        .iter()
        .all(|i| i != &b));
    assert!(ids(&format!("from={before_use}&to=now%2B1h")).contains(&b));
    assert!(ids("from=2000-01-01T00:00:00Z&to=2000-01-02").is_empty());
    assert_eq!(sorted("-lastUsedDate")[0], b);
    assert_eq!(sorted("lastUsedDate").last().unwrap(), &b);
}

both_backends!(update_delete_and_lookup);
fn update_delete_and_lookup(backend: Backend) {
    let s = Server::on(backend).start();
    let (id, token) = create(
        &s,
        &s.admin_token,
        json!({"name": "t", "scopes": ["metrics.read", "DataExport"]}),
    );
    // PUT: scopes sent replace the set; name and enabled change only when sent.
    let r = admin(&s, "PUT", &format!("{BASE}/{id}"))
        .json(&json!({"scopes": ["logs.read"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().unwrap().is_empty());
    let t = get(&s, &id);
    assert_eq!(t["scopes"], json!(["logs.read"]));
    assert_eq!(t["name"], "t");
    assert_eq!(t["enabled"], true);
    assert_eq!(s.verify(&token, &["logs.read"])["valid"], true);
    assert_eq!(s.verify(&token, &["metrics.read"])["valid"], false);
    // Nulls change nothing (an empty update is fine).
    let r = admin(&s, "PUT", &format!("{BASE}/{id}"))
        .json(&json!({"name": null, "enabled": null, "scopes": null}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&s, &id)["scopes"], json!(["logs.read"]));
    // Disable: the token is refused at once.
    let r = admin(&s, "PUT", &format!("{BASE}/{id}"))
        .json(&json!({"enabled": false, "name": "renamed"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&s, &id)["enabled"], false);
    assert_eq!(get(&s, &id)["name"], "renamed");
    assert_eq!(s.verify(&token, &[])["code"], "DISABLED");
    admin(&s, "PUT", &format!("{BASE}/{id}"))
        .json(&json!({"enabled": true}))
        .send()
        .unwrap();
    assert_eq!(s.verify(&token, &[])["valid"], true);

    // No escalation on update: a writer cannot grant what it lacks, nor touch a wider token.
    let (wid, writer) = create(
        &s,
        &s.admin_token,
        json!({"name": "w", "scopes": ["apiTokens.write", "logs.read"]}),
    );
    assert_dt_error(
        dt(&s, "PUT", &format!("{BASE}/{id}"), &writer)
            .json(&json!({"scopes": ["DataExport"]}))
            .send()
            .unwrap(),
        403,
    );
    assert_eq!(
        dt(&s, "PUT", &format!("{BASE}/{id}"), &writer)
            .json(&json!({"name": "by writer"}))
            .send()
            .unwrap()
            .status(),
        204
    );
    let (_, wide) = create(
        &s,
        &s.admin_token,
        json!({"name": "wide", "scopes": ["DataExport"]}),
    );
    let wide_id = wide.split('_').take(2).collect::<Vec<_>>().join("_");
    assert_dt_error(
        dt(&s, "PUT", &format!("{BASE}/{wide_id}"), &writer)
            .json(&json!({"name": "x"}))
            .send()
            .unwrap(),
        403,
    );
    assert_dt_error(
        dt(&s, "DELETE", &format!("{BASE}/{wide_id}"), &writer)
            .send()
            .unwrap(),
        403,
    );

    // Lookup by the secret.
    let (st, v) = status_json(
        admin(&s, "POST", &format!("{BASE}/lookup"))
            .json(&json!({"token": token}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["name"], "by writer");
    assert!(is_dt_date(&v["creationDate"]));
    assert_dt_error(
        admin(&s, "POST", &format!("{BASE}/lookup"))
            .json(&json!({"token": fresh_token()}))
            .send()
            .unwrap(),
        404,
    );
    assert_dt_error(
        admin(&s, "POST", &format!("{BASE}/lookup"))
            .json(&json!({"token": "x"}))
            .send()
            .unwrap(),
        404,
    );

    // Deleting yourself is refused, by id or by the token itself.
    assert_violation(
        dt(&s, "DELETE", &format!("{BASE}/{wid}"), &writer)
            .send()
            .unwrap(),
        "id",
        "PATH",
    );
    assert_violation(
        dt(&s, "DELETE", &format!("{BASE}/{writer}"), &writer)
            .send()
            .unwrap(),
        "id",
        "PATH",
    );
    assert_eq!(s.verify(&writer, &[])["valid"], true);

    // DELETE by the token value, then by id.
    let r = admin(&s, "DELETE", &format!("{BASE}/{token}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.verify(&token, &[])["valid"], false);
    assert_dt_error(
        admin(&s, "GET", &format!("{BASE}/{id}")).send().unwrap(),
        404,
    );
    assert_dt_error(
        admin(&s, "DELETE", &format!("{BASE}/{token}"))
            .send()
            .unwrap(),
        404,
    );
    let r = admin(&s, "DELETE", &format!("{BASE}/{wid}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_dt_error(dt(&s, "GET", BASE, &writer).send().unwrap(), 401);
    assert_dt_error(
        admin(&s, "DELETE", &format!("{BASE}/{wid}"))
            .send()
            .unwrap(),
        404,
    );
}

both_backends!(works_across_surfaces);
fn works_across_surfaces(backend: Backend) {
    let s = Server::on(backend).start();
    // The Dynatrace scope names are in the catalogue.
    let (_, scopes) = status_json(s.admin("GET", "/api/v1/scopes").send().unwrap());
    let names: HashSet<&str> = scopes
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    for n in [
        "apiTokens.read",
        "apiTokens.write",
        "DataExport",
        "ReadConfig",
        "WriteConfig",
        "metrics.read",
        "metrics.write",
        "metrics.ingest",
        "entities.read",
        "entities.write",
        "logs.read",
        "logs.ingest",
        "events.read",
        "events.ingest",
        "problems.read",
        "problems.write",
        "settings.read",
        "settings.write",
        "slo.read",
        "slo.write",
        "ReadSyntheticData",
        "InstallerDownload",
        "DataPrivacy",
        "ExternalSyntheticIntegration",
        "credentialVault.read",
        "credentialVault.write",
    ] {
        assert!(names.contains(n), "scope {n} registered");
    }
    // A token made here, with only apiTokens.write (and a scope to hand on), manages tokens on
    // the native API.
    let (id, token) = create(
        &s,
        &s.admin_token,
        json!({"name": "dt writer", "scopes": ["apiTokens.write", "metrics.read"]}),
    );
    let (st, v) = status_json(
        s.with_token("GET", "/api/v1/tokens/self", &token)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["scopes"], json!(["apiTokens.write", "metrics.read"]));
    let (st, v) = status_json(
        s.with_token("POST", "/api/v1/tokens", &token)
            .json(&json!({"name": "native child", "scopes": ["metrics.read"]}))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{v}");
    let child = v["id"].as_str().unwrap().to_owned();
    let (st, _) = status_json(
        s.with_token("GET", "/api/v1/tokens", &token)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200);
    // ...and the native token shows up here.
    assert_eq!(get(&s, &child)["name"], "native child");
    // Its creation is in the audit log.
    let (st, v) = status_json(
        s.admin("GET", &format!("/api/v1/audit?targetId={id}"))
            .send()
            .unwrap(),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "token.create" && e["targetId"] == id));
    admin(&s, "PUT", &format!("{BASE}/{id}"))
        .json(&json!({"scopes": ["apiTokens.write"]}))
        .send()
        .unwrap();
    let (_, v) = status_json(
        s.admin("GET", &format!("/api/v1/audit?targetId={id}"))
            .send()
            .unwrap(),
    );
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "token.update"));

    // OpenAPI lists the routes under the dynatrace tag.
    let (_, spec) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    for (path, method) in [
        (BASE.to_owned(), "get"),
        (BASE.to_owned(), "post"),
        (format!("{BASE}/{{id}}"), "get"),
        (format!("{BASE}/{{id}}"), "put"),
        (format!("{BASE}/{{id}}"), "delete"),
        (format!("{BASE}/lookup"), "post"),
    ] {
        let op = &spec["paths"][&path][method];
        assert_eq!(op["tags"], json!(["dynatrace"]), "{method} {path}");
    }
}

both_backends!(surface_can_be_switched_off);
fn surface_can_be_switched_off(backend: Backend) {
    let s = Server::on(backend)
        .args(&["--compat", "instana,interana"])
        .start();
    assert_eq!(admin(&s, "GET", BASE).send().unwrap().status(), 404);
    let r = s
        .admin("POST", "/api/v1/tokens")
        .json(&json!({"name": "x", "scopes": ["DataExport"]}))
        .send()
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "DataExport is unknown without the surface"
    );
    let (_, spec) = status_json(s.anon("GET", "/openapi.json").send().unwrap());
    assert!(spec["paths"].get(BASE).is_none());
}

both_backends!(the_real_dt_client_works_unmodified);
fn the_real_dt_client_works_unmodified(backend: Backend) {
    let python = match venv_with("keygate-dt-venv", &["dt==1.2.2"]) {
        Ok(p) => p,
        Err(e) => {
            skip_outside_ci(
                "the_real_dt_client_works_unmodified",
                &format!("cannot install PyPI dt 1.2.2: {e}"),
            );
            return;
        }
    };
    let s = Server::on(backend).start();
    let script = workspace_root().join("crates/keygate/tests/dynatrace_client.py");
    let out = Command::new(&python)
        .arg(&script)
        .env("KEYGATE_URL", &s.url)
        .env("KEYGATE_TOKEN", &s.admin_token)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running the dt client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the dt client failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        last_lines(&s.output(), 40)
    );
    assert!(stdout.contains("dt client: all steps passed"), "{stdout}");
    // What the client did is in the audit log, as on every surface.
    let (_, v) = status_json(
        s.admin("GET", "/api/v1/audit?action=token.delete")
            .send()
            .unwrap(),
    );
    assert!(v["items"].as_array().is_some_and(|i| i.len() >= 2), "{v}");
}
