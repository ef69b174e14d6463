//! The API explorer at `/api/docs`: Swagger UI on `/openapi.json`, compiled into the binary from
//! the npm package `swagger-ui-dist` pinned in `crates/keygate-server/src/explorer/`.
//!
//! Over plain HTTP: the page and every file it loads, with their types and the web page's
//! security headers. In a real Chromium (skipped loudly outside CI when it is missing, failed in
//! CI): "Authorize" with a token, "Try it out" and "Execute" against the real server, and no
//! Content-Security-Policy violation in the console. With npm: the checked-in Swagger UI files
//! are byte for byte those of the pinned package.

mod common;
use common::browser::{browser_installed, Browser};
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The web page's Content-Security-Policy, which the explorer must keep word for word.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

fn explorer_src() -> PathBuf {
    workspace_root().join("crates/keygate-server/src/explorer")
}

/// Asserts the answer to GET `path`: 200, a content type starting with `kind`, the page's
/// security headers; returns the body.
fn served(s: &Server, path: &str, kind: &str) -> String {
    let r = s.anon("GET", path).send().unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    let h = r.headers();
    let content_type = h["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with(kind),
        "{path} is {content_type}, not {kind}"
    );
    assert_eq!(h["content-security-policy"], CSP, "{path}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(h["x-frame-options"], "DENY", "{path}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    r.text().unwrap()
}

/// The values of `attr="…"` in `html`, e.g. every `src`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn the_explorer_and_its_files_are_served_under_the_web_pages_policy() {
    let s = Server::on(Backend::Sqlite).start();
    let page_csp = s.anon("GET", "/").send().unwrap().headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        page_csp, CSP,
        "the web page's policy changed: change it here too"
    );

    let html = served(&s, "/api/docs", "text/html");
    // Nothing inline: the policy would block it, and the page would be blank or unstyled.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=").count(),
        "every script is a file: {html}"
    );
    for inline in ["<style", " style=", " on"] {
        assert!(!html.contains(inline), "{inline:?} in {html}");
    }
    let scripts = attribute_values(&html, "src");
    let styles = attribute_values(&html, "href");
    assert_eq!(
        scripts,
        ["/api/docs/swagger-ui-bundle.js", "/api/docs/explorer.js"]
    );
    assert_eq!(
        styles,
        ["/api/docs/swagger-ui.css", "/api/docs/explorer.css"]
    );
    for path in &scripts {
        served(&s, path, "text/javascript");
    }
    let explorer_css = served(&s, "/api/docs/explorer.css", "text/css");
    let swagger_css = served(&s, "/api/docs/swagger-ui.css", "text/css");

    // What is served is what is checked in (and so, by the test below, npm's package).
    let bundle = served(&s, "/api/docs/swagger-ui-bundle.js", "text/javascript");
    assert!(
        bundle.as_bytes()
            == std::fs::read(explorer_src().join("swagger-ui/swagger-ui-bundle.js")).unwrap(),
        "the served bundle is the checked-in file"
    );
    assert!(
        swagger_css.as_bytes()
            == std::fs::read(explorer_src().join("swagger-ui/swagger-ui.css")).unwrap()
    );

    let init = served(&s, "/api/docs/explorer.js", "text/javascript");
    assert!(init.contains("url: \"/openapi.json\""), "{init}");

    // Every icon explorer.css names is there, as an SVG.
    let icons: BTreeSet<&str> = explorer_css
        .match_indices("url(icons/")
        .map(|(i, _)| {
            let rest = &explorer_css[i + "url(".len()..];
            &rest[..rest.find(')').unwrap()]
        })
        .collect();
    assert_eq!(icons.len(), 8, "{icons:?}");
    for icon in icons {
        let svg = served(&s, &format!("/api/docs/{icon}"), "image/svg+xml");
        assert!(svg.starts_with("<svg "), "{icon}: {svg}");
    }

    // A path under /api/docs that is not a file is the API's own 404, not the page.
    let r = s.anon("GET", "/api/docs/nothing.js").send().unwrap();
    assert_eq!(r.status(), 404);
}

// ---------------------------------------------------------------------------------------------
// swagger-ui.css's data: icons, which the policy blocks, and explorer.css's replacements

/// A rule of a stylesheet: its at-rule context (`@media(forced-colors:active)`, whitespace
/// removed; empty at the top), one selector of its list, and its declarations.
#[derive(Debug)]
struct Rule {
    context: String,
    selector: String,
    body: String,
}

/// The rules of `css`, one per selector; comments are dropped, nesting is at-rules only.
fn rules(css: &str) -> Vec<Rule> {
    let mut text = String::new();
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("an unclosed comment") + start + 2;
        rest = &rest[end..];
    }
    text.push_str(rest);

    let (mut out, mut open, mut current) = (Vec::new(), Vec::<String>::new(), String::new());
    for c in text.chars() {
        match c {
            '{' => open.push(std::mem::take(&mut current).trim().to_owned()),
            '}' => {
                let head = open.pop().expect("balanced braces");
                let body = std::mem::take(&mut current);
                if head.starts_with('@') {
                    continue;
                }
                let context: String = open
                    .iter()
                    .flat_map(|h| h.chars())
                    .filter(|c| !c.is_whitespace())
                    .collect();
                for selector in head.split(',') {
                    out.push(Rule {
                        context: context.clone(),
                        selector: selector.split_whitespace().collect::<Vec<_>>().join(" "),
                        body: body.clone(),
                    });
                }
            }
            _ => current.push(c),
        }
    }
    out
}

/// The properties of `body` whose value holds a `url(` containing `needle`.
fn properties_with(body: &str, needle: &str) -> BTreeSet<String> {
    // Inside a data: URL a `;` may appear (`;charset=utf-8`): split only at the declarations'.
    let mut props = BTreeSet::new();
    let mut rest = body;
    while let Some(colon) = rest.find(':') {
        let name = rest[..colon].trim().to_owned();
        let value_start = colon + 1;
        let mut end = rest.len();
        let mut in_quotes = false;
        let mut depth = 0;
        for (i, c) in rest[value_start..].char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                '(' if !in_quotes => depth += 1,
                ')' if !in_quotes => depth -= 1,
                ';' if !in_quotes && depth == 0 => {
                    end = value_start + i;
                    break;
                }
                _ => {}
            }
        }
        let value = &rest[value_start..end];
        if value.contains("url(") && value.contains(needle) {
            props.insert(name);
        }
        rest = if end < rest.len() {
            &rest[end + 1..]
        } else {
            ""
        };
    }
    props
}

/// `background` sets the image too; a replacement sets only `background-image`.
fn image_property(p: &str) -> &str {
    if p == "background" {
        "background-image"
    } else {
        p
    }
}

/// Every rule of Swagger UI's stylesheet that draws a data: image has a rule in explorer.css,
/// in the same context and for the same selector, that draws the same property from a file.
/// Tachyons' `.debug-grid*` classes are left out: they are for debugging layouts, and no Swagger
/// UI component uses them.
#[test]
fn every_data_image_of_swagger_ui_has_a_replacement_served_by_keygate() {
    let src = explorer_src();
    let upstream = std::fs::read_to_string(src.join("swagger-ui/swagger-ui.css")).unwrap();
    let ours = rules(&std::fs::read_to_string(src.join("explorer.css")).unwrap());
    assert!(
        ours.iter().all(|r| !r.body.contains("data:")),
        "explorer.css draws no data: image itself"
    );
    let mut missing = Vec::new();
    let mut checked = 0;
    for rule in rules(&upstream) {
        if rule.selector.contains(".debug-grid") {
            continue;
        }
        for prop in properties_with(&rule.body, "data:") {
            checked += 1;
            let wanted = image_property(&prop);
            let replaced = ours.iter().any(|r| {
                r.context == rule.context
                    && r.selector == rule.selector
                    && properties_with(&r.body, "icons/").contains(wanted)
            });
            if !replaced {
                missing.push(format!(
                    "{} {{ {wanted} }} in {:?}",
                    rule.selector, rule.context
                ));
            }
        }
    }
    // swagger-ui.css 5.35.0 has 23 of them; far fewer would mean the parser went blind.
    assert!(checked >= 20, "only {checked} data: images found");
    assert!(
        missing.is_empty(),
        "explorer.css does not replace these data: images, which the CSP blocks:\n{}",
        missing.join("\n")
    );
}

/// The parser above sees a data: image and a missing replacement, or the test above proves
/// nothing.
#[test]
fn the_stylesheet_check_sees_a_data_image_and_its_replacement() {
    let upstream = rules(
        "/* x */ .a select{background:#fff url(\"data:image/svg+xml;charset=utf-8,<svg/>\") right \
         no-repeat;color:red}@media(forced-colors:active){.b,.c{mask-image:url(\"data:x\")}}",
    );
    let found: Vec<(String, String, BTreeSet<String>)> = upstream
        .iter()
        .map(|r| {
            (
                r.context.clone(),
                r.selector.clone(),
                properties_with(&r.body, "data:"),
            )
        })
        .collect();
    let set = |p: &str| BTreeSet::from([p.to_owned()]);
    assert_eq!(
        found,
        [
            (String::new(), ".a select".to_owned(), set("background")),
            (
                "@media(forced-colors:active)".to_owned(),
                ".b".to_owned(),
                set("mask-image")
            ),
            (
                "@media(forced-colors:active)".to_owned(),
                ".c".to_owned(),
                set("mask-image")
            ),
        ]
    );
    let ours = rules(".a select { background-image: url(icons/a.svg); }");
    assert!(properties_with(&ours[0].body, "icons/").contains("background-image"));
}

// ---------------------------------------------------------------------------------------------
// The checked-in files are the pinned npm package's

/// `npm ci` of the explorer's package.json and package-lock.json (npm checks the package's
/// integrity against the lock), then a byte-for-byte comparison of every file in
/// `explorer/swagger-ui/` with the package's. `refresh.sh` is how they are copied.
#[test]
fn the_bundled_swagger_ui_is_the_pinned_npm_package() {
    const TEST: &str = "the pinned Swagger UI check";
    if !installed("npm") {
        skip_outside_ci(TEST, "npm is not installed (apt-get install npm)");
        return;
    }
    let src = explorer_src();
    let package: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("package.json")).unwrap()).unwrap();
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("package-lock.json")).unwrap()).unwrap();
    let pinned = package["dependencies"]["swagger-ui-dist"].as_str().unwrap();
    assert!(
        pinned.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "package.json pins an exact version, not {pinned}"
    );
    let locked = &lock["packages"]["node_modules/swagger-ui-dist"];
    assert_eq!(locked["version"], pinned, "package-lock.json is stale");
    assert!(locked["integrity"]
        .as_str()
        .is_some_and(|i| i.starts_with("sha512-")));

    let work = tempfile::tempdir().unwrap();
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(f), work.path().join(f)).unwrap();
    }
    let out = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(work.path())
        .output()
        .unwrap();
    if !out.status.success() {
        skip_outside_ci(
            TEST,
            &format!(
                "npm ci failed (no registry?): {}",
                last_lines(&String::from_utf8_lossy(&out.stderr), 10)
            ),
        );
        return;
    }
    let package_dir = work.path().join("node_modules/swagger-ui-dist");
    assert_eq!(
        installed_version(&package_dir),
        pinned,
        "npm installed the pinned version"
    );
    let mut compared = Vec::new();
    for entry in std::fs::read_dir(src.join("swagger-ui")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let theirs = std::fs::read(package_dir.join(&name))
            .unwrap_or_else(|e| panic!("swagger-ui/{name} is not in the package: {e}"));
        assert!(
            std::fs::read(&path).unwrap() == theirs,
            "swagger-ui/{name} differs from swagger-ui-dist {pinned}'s: run refresh.sh"
        );
        compared.push(name);
    }
    compared.sort();
    assert_eq!(
        compared,
        [
            "LICENSE",
            "NOTICE",
            "swagger-ui-bundle.js",
            "swagger-ui.css"
        ]
    );
}

fn installed_version(package_dir: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(package_dir.join("package.json")).unwrap()).unwrap();
    v["version"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// In Chromium: authorize, try it out, execute

/// The operation's block, by the id Swagger UI gives it: `operations-{tag}-{operationId}`.
const GET_SELF: &str = "//div[@id='operations-tokens-get_self']";

#[test]
fn try_it_out_with_a_token_in_chromium_under_the_policy() {
    if !browser_installed("the API explorer's browser test") {
        return;
    }
    let s = Server::on(Backend::Sqlite).start();
    let (id, token) = s.create_token("explorer-demo", &["tokens:read"]);
    let b = Browser::open(&s);
    b.goto("/api/docs");
    let title = b.text("//div[contains(@class, 'info')]//h1[contains(@class, 'title')]");
    assert!(title.starts_with("keygate"), "{title}");

    // Without a token the real server refuses: the answer shown is the server's.
    b.click(&format!(
        "{GET_SELF}//button[contains(@class, 'opblock-summary-control')]"
    ));
    b.click(&format!(
        "{GET_SELF}//button[normalize-space()='Try it out']"
    ));
    b.click(&format!("{GET_SELF}//button[normalize-space()='Execute']"));
    let status = format!(
        "{GET_SELF}//table[contains(@class, 'live-responses-table')]/tbody//td[contains(@class, \
         'response-col_status')]"
    );
    let shows = |code: &'static str| {
        b.wait(&format!("the server's {code} on the page"), |b| {
            let Some(e) = b.displayed(&status)? else {
                return Ok(None);
            };
            Ok((b.run(e.text())?.trim() == code).then_some(()))
        })
    };
    shows("401");

    // Authorize: the bearer scheme of the OpenAPI document, in Swagger UI's dialog.
    b.click("//button[contains(@class, 'authorize') and not(contains(@class, 'modal-btn'))]");
    let bearer = "//div[contains(@class, 'auth-container')][.//h4[contains(., 'bearer')]]";
    b.fill(&format!("{bearer}//input"), &token);
    b.click(&format!("{bearer}//button[normalize-space()='Authorize']"));
    b.visible(&format!("{bearer}//button[normalize-space()='Logout']"));
    b.click("//div[contains(@class, 'modal-ux')]//button[normalize-space()='Close']");
    b.gone("//div[contains(@class, 'modal-ux')]");

    b.click(&format!("{GET_SELF}//button[normalize-space()='Execute']"));
    shows("200");
    let body = b.text(&format!(
        "{GET_SELF}//table[contains(@class, 'live-responses-table')]//pre[contains(@class, \
         'microlight')]"
    ));
    assert!(
        body.contains(&id) && body.contains("explorer-demo"),
        "the answer shown is the token's own: {body}"
    );
    // The request went out with the token, as the curl line shows.
    let curl = b.text(&format!(
        "{GET_SELF}//div[contains(@class, 'curl-command')]"
    ));
    assert!(
        curl.contains(&format!("Authorization: Bearer {token}")),
        "{curl}"
    );

    // The replaced icons are the ones drawn, and they load.
    let icons = b.script(
        "const bg = s => getComputedStyle(document.querySelector(s)).backgroundImage; \
         return [bg('.swagger-ui select'), bg('.swagger-ui .copy-to-clipboard button')];",
    );
    let icons: Vec<&str> = icons
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        icons[0].contains("/api/docs/icons/select.svg")
            && icons[1].contains("/api/docs/icons/copy.svg"),
        "{icons:?}"
    );
    b.script("document.querySelector('#operations-tokens-get_self').scrollIntoView();");
    b.screenshot("api-docs");

    let problems = b.console_problems();
    assert!(problems.is_empty(), "console errors: {problems:#?}");

    // The console check sees a violation when there is one: a data: image, as swagger-ui.css
    // would draw it, is refused and reported.
    b.script(
        "const img = new Image(); img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; \
         document.body.append(img);",
    );
    let seen = b.wait("the console to report the blocked image", |b| {
        let p = b.console_problems();
        Ok((!p.is_empty()).then_some(p))
    });
    assert!(
        seen.iter()
            .any(|m| m.contains("Content Security Policy") && m.contains("data:")),
        "{seen:#?}"
    );
}
