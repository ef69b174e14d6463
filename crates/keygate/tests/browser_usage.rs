//! The usage charts on the web page, in a real Chromium: a token's verifications over time and
//! the tenant's overview. Verifications with known outcomes go in over HTTP; the page must show
//! exactly what the usage API counts, in its text and tables and in the chart it draws (the
//! chart's data, and the bars' colours read back from the canvas).
//!
//! Chromium's prerequisites and screenshots: `common/browser.rs`.

mod browser_support;
mod common;
use browser_support::*;
use common::*;

use serde_json::{json, Value};

/// Verifications reach the usage API after the node's flush interval; a short one keeps the
/// test quick.
const FLUSH_ARGS: &[&str] = &["--usage-flush-interval", "100ms"];

/// The API's outcome counters, in the order the page stacks them, with the page's labels and
/// colours (usage.js).
const OUTCOMES: &[(&str, &str, [u8; 3])] = &[
    ("valid", "Valid", [0x00, 0x9e, 0x73]),
    ("rateLimited", "Rate limited", [0xe6, 0x9f, 0x00]),
    ("usageExceeded", "Usage exceeded", [0xd5, 0x5e, 0x00]),
    (
        "insufficientScope",
        "Insufficient scope",
        [0xcc, 0x79, 0xa7],
    ),
    ("disabled", "Disabled", [0x8a, 0x8f, 0x98]),
    ("expired", "Expired", [0x56, 0xb4, 0xe9]),
    ("ipNotAllowed", "IP not allowed", [0x00, 0x72, 0xb2]),
];

fn usage_server() -> Server {
    let mut args = SCOPE_ARGS.to_vec();
    args.extend_from_slice(FLUSH_ARGS);
    Server::on(Backend::Sqlite).args(&args).start()
}

/// `valid` verifications that pass and `refused` that name a scope the token lacks.
fn verify_known(server: &Server, token: &str, valid: usize, refused: usize) {
    for _ in 0..valid {
        assert_eq!(server.verify(token, &["metrics:read"])["valid"], true);
    }
    for _ in 0..refused {
        let v = server.verify(token, &["metrics:write"]);
        assert_eq!(v["code"], "INSUFFICIENT_SCOPE", "{v}");
    }
}

/// The admin's web session. The tests call the API with it, as the page does: a call
/// authenticated with a token counts as a verification of that token, and would change the
/// tenant's figures the page is compared with.
fn admin_session(server: &Server) -> Session {
    server.login("admin", ADMIN_PASSWORD)
}

/// A token made with the session; returns (id, token).
fn create_token(server: &Server, session: &Session, name: &str) -> (String, String) {
    let (status, v) = status_json(
        server
            .as_session(session, "POST", "/api/v1/tokens")
            .json(&json!({ "name": name, "scopes": ["metrics:read"] }))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "creating {name}: {v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// GET `path` with the session until `done` holds for the answer (the counts are written
/// behind); returns that answer.
fn api_until(
    server: &Server,
    session: &Session,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, v) = status_json(server.as_session(session, "GET", path).send().unwrap());
        assert_eq!(status, 200, "GET {path}: {v}");
        if done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET {path} never showed the verifications: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The text of every cell of the table rows matching `rows_xpath`, row by row.
fn table_cells(b: &Browser, rows_xpath: &str) -> Vec<Vec<String>> {
    b.visible(rows_xpath);
    let js = format!(
        "const rows = document.evaluate({}, document, null, \
           XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null); \
         const cells = []; \
         for (let i = 0; i < rows.snapshotLength; i += 1) \
           cells.push([...rows.snapshotItem(i).cells].map((c) => c.textContent.trim())); \
         return cells;",
        serde_json::to_string(rows_xpath).unwrap()
    );
    serde_json::from_value(b.script(&js)).unwrap()
}

/// The totals table in the card headed `heading`: outcome label -> the number shown.
fn totals_table(b: &Browser, heading: &str) -> Vec<(String, u64)> {
    let rows = format!(
        "{}//table[contains(@class, 'totals')]/tbody/tr",
        card(heading)
    );
    table_cells(b, &rows)
        .into_iter()
        .map(|cells| {
            let n = cells[1]
                .parse()
                .unwrap_or_else(|e| panic!("{cells:?}: {e}"));
            (cells[0].clone(), n)
        })
        .collect()
}

/// The card (section) whose heading says `heading`.
fn card(heading: &str) -> String {
    format!("//section[h2[normalize-space()={}]]", lit(heading))
}

/// What a totals table must say for these API counters.
fn expected_totals(counters: &Value) -> Vec<(String, u64)> {
    let n = |key: &str| {
        counters[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {counters}"))
    };
    let mut rows = vec![
        ("Valid".to_owned(), n("valid")),
        ("Refused".to_owned(), n("refused")),
    ];
    rows.extend(
        OUTCOMES[1..]
            .iter()
            .map(|(key, label, _)| ((*label).to_owned(), n(key))),
    );
    rows.push(("Total".to_owned(), n("total")));
    rows
}

/// The data of the chart on `canvas_id`, as Chart.js holds it: labels and one series per
/// dataset, by dataset label.
fn chart_data(b: &Browser, canvas_id: &str) -> Value {
    b.script(&format!(
        "const chart = Chart.getChart(document.getElementById('{canvas_id}')); \
         if (!chart) return null; \
         return {{ labels: chart.data.labels, \
                   series: chart.data.datasets.map((d) => [d.label, d.data]) }};"
    ))
}

/// The colour drawn in the middle of bar `index` of dataset `dataset` on `canvas_id`, read back
/// from the canvas's pixels, or null while the bar is not drawn (yet).
fn bar_pixel(b: &Browser, canvas_id: &str, dataset: usize, index: usize) -> Option<[u8; 3]> {
    let v = b.script(&format!(
        "const canvas = document.getElementById('{canvas_id}'); \
         const chart = Chart.getChart(canvas); \
         if (!chart) return null; \
         const bar = chart.getDatasetMeta({dataset}).data[{index}]; \
         if (!bar) return null; \
         const {{ x, y, base, horizontal }} = bar.getProps(['x', 'y', 'base', 'horizontal'], true); \
         const px = horizontal ? (x + base) / 2 : x; \
         const py = horizontal ? y : (y + base) / 2; \
         const ratio = canvas.width / canvas.clientWidth; \
         const d = canvas.getContext('2d') \
           .getImageData(Math.round(px * ratio), Math.round(py * ratio), 1, 1).data; \
         return [d[0], d[1], d[2], d[3]];"
    ));
    let p: Vec<u8> = serde_json::from_value(v).ok()?;
    (p[3] == 255).then(|| [p[0], p[1], p[2]])
}

/// Waits until bar `index` of `dataset` is drawn in its outcome's colour.
fn assert_bar_drawn(b: &Browser, canvas_id: &str, dataset: usize, index: usize) {
    let (_, label, colour) = OUTCOMES[dataset];
    b.wait(
        &format!("the {label} bar {index} drawn on {canvas_id}"),
        |b| {
            let close = |p: [u8; 3]| p.iter().zip(colour).all(|(a, e)| a.abs_diff(e) <= 3);
            Ok(bar_pixel(b, canvas_id, dataset, index)
                .filter(|p| close(*p))
                .map(|_| ()))
        },
    );
}

/// Checks that the chart holds exactly the API's buckets (one bar each) and counters, and that
/// the bars that count something are drawn in their colours.
fn assert_chart_matches(b: &Browser, canvas_id: &str, api: &Value) {
    let items = api["items"].as_array().unwrap();
    let data = b.wait("the chart to hold the API's buckets", |b| {
        let data = chart_data(b, canvas_id);
        let labels = data["labels"].as_array().map_or(0, Vec::len);
        Ok((labels == items.len()).then_some(data))
    });
    let series = data["series"].as_array().unwrap();
    assert_eq!(
        series.len(),
        OUTCOMES.len(),
        "a dataset per outcome: {data}"
    );
    for (i, (key, label, _)) in OUTCOMES.iter().enumerate() {
        assert_eq!(series[i][0], *label, "dataset {i}");
        let expected: Vec<&Value> = items.iter().map(|item| &item[key]).collect();
        let shown: Vec<&Value> = series[i][1].as_array().unwrap().iter().collect();
        assert_eq!(shown, expected, "{label} per bucket");
        if let Some(bucket) = items.iter().position(|item| item[key] != 0) {
            assert_bar_drawn(b, canvas_id, i, bucket);
        }
    }
}

/// No sideways scrolling of the page at the current window size, and every shown chart redrawn
/// to fit it. Chart.js follows its box a frame or two after a resize, so the charts are waited
/// for; the page must not scroll even before they have followed.
fn assert_no_horizontal_scroll(b: &Browser) {
    let widths = b.script("return [document.documentElement.scrollWidth, window.innerWidth]");
    let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(inner <= 400, "the window really is narrow: {inner}px");
    assert!(
        scroll <= inner,
        "no horizontal page scroll at {inner}px: {scroll}px wide"
    );
    b.wait("the charts to fit the narrow window", |b| {
        let wider = b.script(
            "return Array.from(document.querySelectorAll('canvas'))
               .filter((c) => c.offsetParent !== null)
               .filter((c) => c.getBoundingClientRect().right > window.innerWidth).length",
        );
        Ok((wider == 0).then_some(()))
    });
}

/// A token's chart: its numbers are the API's, for each range, and it fits a phone.
#[test]
fn the_token_chart_shows_what_the_api_counts() {
    if !browser_installed("the usage charts' browser tests") {
        return;
    }
    let server = usage_server();
    let session = admin_session(&server);
    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, false);
    let token = b.generate("ci-deploy", &["metrics:read"], "Never");
    b.dismiss_new_token();
    let id = server.verify(&token, &[])["tokenId"]
        .as_str()
        .unwrap()
        .to_owned();
    // One valid verification above; 4 more valid and 3 refused for a missing scope.
    verify_known(&server, &token, 4, 3);
    let (valid, refused) = (5, 3);
    let path = |granularity: &str| format!("/api/v1/tokens/{id}/usage?granularity={granularity}");
    let counted = api_until(&server, &session, &path("hour"), |v| {
        v["totals"]["total"] == valid + refused
    });
    assert_eq!(counted["totals"]["valid"], valid, "{counted}");
    assert_eq!(counted["totals"]["insufficientScope"], refused, "{counted}");
    // The API's answer for the very range the page shows (its From and To): "the last hour"
    // moves on every minute, and the test must not compare two different hours.
    let shown_range = |granularity: &str, buckets: usize| {
        let at = |n: usize| {
            b.attr(
                &format!("//p[starts-with(normalize-space(), 'From')]/time[{n}]"),
                "datetime",
            )
            .expect("a datetime")
        };
        let (from, to) = (at(1), at(2));
        let api = api_until(
            &server,
            &session,
            &format!("{}&from={from}&to={to}", path(granularity)),
            |_| true,
        );
        assert_eq!((&api["from"], &api["to"]), (&json!(from), &json!(to)));
        assert_eq!(api["items"].as_array().unwrap().len(), buckets, "{api}");
        assert_eq!(
            api["totals"], counted["totals"],
            "the same verifications by {granularity}"
        );
        api
    };

    b.assert_name(
        &button("Verifications ci-deploy"),
        "Verifications ci-deploy",
    );
    b.click(&button("Verifications ci-deploy"));
    b.visible(&heading("Verifications of ci-deploy"));
    assert_eq!(
        b.focused_name(),
        "Verifications of ci-deploy",
        "focus moves to the chart's heading"
    );
    assert_eq!(
        b.attr(&button("Day"), "aria-pressed").as_deref(),
        Some("true"),
        "the last 24 hours first"
    );
    for range in ["Hour", "Day", "30 days"] {
        b.assert_name(&button(range), range);
    }
    b.assert_name(
        "//*[@role='group' and .//button[normalize-space()='Hour']]",
        "Time range",
    );
    let summary = format!(
        "{} verifications in the last 24 hours: {valid} valid, {refused} refused.",
        valid + refused
    );
    b.visible(&format!("//p[normalize-space()={}]", lit(&summary)));
    let day = shown_range("hour", 24);
    assert_eq!(totals_table(&b, "Totals"), expected_totals(&day["totals"]));
    assert_chart_matches(&b, "token-usage-chart", &day);
    let canvas = "//canvas[@id='token-usage-chart']";
    assert_eq!(
        b.attr(canvas, "aria-label").as_deref(),
        Some("Verifications of ci-deploy per hour in the last 24 hours, stacked by outcome")
    );
    b.screenshot("token-usage");

    // The other ranges ask the API for minutes and days, and show what it answers.
    for (range, granularity, during, buckets) in [
        ("Hour", "minute", "in the last hour", 60),
        ("30 days", "day", "in the last 30 days", 30),
    ] {
        b.click(&button(range));
        let summary = format!(
            "{} verifications {during}: {valid} valid, {refused} refused.",
            valid + refused
        );
        b.visible(&format!("//p[normalize-space()={}]", lit(&summary)));
        assert_eq!(
            b.attr(&button(range), "aria-pressed").as_deref(),
            Some("true")
        );
        let api = shown_range(granularity, buckets);
        assert_chart_matches(&b, "token-usage-chart", &api);
        assert_eq!(totals_table(&b, "Totals"), expected_totals(&api["totals"]));
    }

    // A phone-sized window: the chart is redrawn to fit, and nothing scrolls sideways.
    b.click(&button("Day"));
    b.resize(390, 844);
    b.visible(&format!("//p[normalize-space()={}]", lit(&summary)));
    assert_chart_matches(&b, "token-usage-chart", &shown_range("hour", 24));
    assert_no_horizontal_scroll(&b);
    b.script("document.getElementById('token-usage-chart-heading').scrollIntoView()");
    b.screenshot("token-usage-narrow");

    b.click(&button("Back to access tokens"));
    b.visible(&heading("Access tokens"));
    b.visible(&row("ci-deploy"));

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");
}

/// The tenant's overview: totals, top tokens and most refused as the API ranks them; only for
/// those who may see the whole tenant's usage.
#[test]
fn the_overview_ranks_the_tenants_tokens() {
    if !browser_installed("the usage charts' browser tests") {
        return;
    }
    let server = usage_server();
    let session = admin_session(&server);
    let (deploy_id, deploy) = create_token(&server, &session, "ci-deploy");
    let (agent_id, agent) = create_token(&server, &session, "grafana-agent");
    let (idle_id, _) = create_token(&server, &session, "idle");
    verify_known(&server, &deploy, 5, 3);
    verify_known(&server, &agent, 2, 0);
    let top = api_until(&server, &session, "/api/v1/usage?orderBy=total", |v| {
        v["totals"]["total"] == 10
    });
    let most_refused = api_until(&server, &session, "/api/v1/usage?orderBy=refused", |_| true);
    let ranked: Vec<&Value> = top["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["tokenId"])
        .collect();
    assert_eq!(ranked, [&json!(deploy_id), &json!(agent_id)], "{top}");

    let b = Browser::open(&server);
    b.goto("/");
    b.log_in("admin", ADMIN_PASSWORD, false);
    b.click(&button("Usage overview"));
    b.visible(&heading("Usage overview"));
    assert_eq!(
        b.attr(&button("Usage overview"), "aria-current").as_deref(),
        Some("page")
    );
    b.visible(
        "//p[normalize-space()='10 verifications in the last 24 hours: 7 valid, 3 refused.']",
    );
    assert_eq!(
        totals_table(&b, "All tokens"),
        expected_totals(&top["totals"])
    );

    // Top tokens: the API's order and counters, the idle token not at all.
    let ranking = |heading: &str| table_cells(&b, &format!("{}//tbody/tr", card(heading)));
    // The first cell holds the token's name with its id under it.
    let row_of = |item: &Value, keys: &[&str]| -> Vec<String> {
        let mut cells = vec![format!(
            "{} {}",
            item["name"].as_str().unwrap(),
            item["tokenId"].as_str().unwrap()
        )];
        cells.extend(keys.iter().map(|k| item[k].to_string()));
        cells
    };
    let expected_top: Vec<Vec<String>> = top["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| row_of(item, &["total", "valid", "refused"]))
        .collect();
    assert_eq!(ranking("Top tokens"), expected_top);
    assert_eq!(
        expected_top[0],
        [
            format!("ci-deploy {deploy_id}"),
            "8".into(),
            "5".into(),
            "3".into()
        ]
    );
    assert!(
        !b.text(&card("Top tokens")).contains(&idle_id),
        "a token without verifications is not listed"
    );
    assert_chart_matches(&b, "overview-top-chart", &top);

    // Most refused: only tokens that were refused, with the reasons.
    let refused_items: Vec<&Value> = most_refused["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["refused"] != 0)
        .collect();
    assert_eq!(refused_items.len(), 1, "{most_refused}");
    let mut expected = row_of(refused_items[0], &["refused", "total"]);
    expected.push("Insufficient scope: 3".to_owned());
    assert_eq!(ranking("Most refused"), [expected]);
    // Tall enough for the whole overview in the picture.
    b.resize(1280, 1250);
    b.screenshot("usage-overview");

    // Another range asks the API again and says which range it shows.
    b.click(&button("7 days"));
    b.visible("//p[normalize-space()='10 verifications in the last 7 days: 7 valid, 3 refused.']");
    assert_eq!(
        b.attr(&button("7 days"), "aria-pressed").as_deref(),
        Some("true")
    );

    b.resize(390, 844);
    b.visible(&card("Top tokens"));
    assert_no_horizontal_scroll(&b);

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");

    // A member cannot see the tenant's usage: no overview in the navigation.
    server.create_user("mia", "mia-password-123", "member");
    b.resize(1280, 900);
    b.log_out();
    b.log_in("mia", "mia-password-123", false);
    assert!(
        !b.is_shown(&button("Usage overview")),
        "no usage overview for a member"
    );
}

/// The chart library served at /ui/vendor/ is the checked-in file, which is the one pinned in
/// vendor/README.md and vendor/package-lock.json: a changed or upgraded file must come with its
/// new version and digest.
#[test]
fn the_vendored_chart_library_is_the_pinned_one() {
    const VENDOR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../keygate-server/src/web/vendor"
    );
    let read = |file: &str| {
        std::fs::read_to_string(format!("{VENDOR}/{file}"))
            .unwrap_or_else(|e| panic!("reading vendor/{file}: {e}"))
    };
    let checked_in = read("chart.umd.min.js");
    let readme = read("README.md");
    let lock: Value = serde_json::from_str(&read("package-lock.json")).unwrap();
    let package: Value = serde_json::from_str(&read("package.json")).unwrap();

    let server = Server::on(Backend::Sqlite).start();
    let r = server
        .anon("GET", "/ui/vendor/chart.umd.min.js")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(
        header("content-security-policy"),
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    );
    let served = r.text().unwrap();
    assert!(
        served == checked_in,
        "the served file is the checked-in one"
    );

    // TokenHash is plain SHA-256 of the text.
    let digest: String = keygate_core::TokenHash::of(&checked_in)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `chart.umd.min.js`"))
        .expect("vendor/README.md has the file's row");
    assert!(
        row.contains(&format!("`{digest}`")),
        "vendor/chart.umd.min.js has SHA-256 {digest}, not the one vendor/README.md records:\n{row}"
    );

    let version = package["dependencies"]["chart.js"].as_str().unwrap();
    assert_eq!(
        lock["packages"]["node_modules/chart.js"]["version"], version,
        "package-lock.json pins the version package.json names"
    );
    assert!(
        lock["packages"]["node_modules/chart.js"]["integrity"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha512-")),
        "package-lock.json pins the tarball's digest"
    );
    assert!(
        checked_in.starts_with(&format!("/*!\n * Chart.js v{version}\n")),
        "the file is Chart.js {version}, as package.json pins"
    );
    assert!(
        row.contains(&format!("| {version} |")),
        "vendor/README.md names version {version}:\n{row}"
    );
}
