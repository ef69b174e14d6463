//! keygate's crates as layers: the table of each crate, bottom first, checked against its
//! `src/` by [`keygate_layers::check`].

use std::path::Path;

use keygate_layers::{code_of, paths_named};

fn crate_src(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

/// keygate-server, from plain data up to the router. `docs/architecture.md` explains each layer.
#[test]
fn the_server_imports_only_point_down() {
    let layers: &[&[&str]] = &[
        &[
            "config",
            "error",
            "metrics",
            "page_asset",
            "reveal",
            "rfc3339_ms",
        ],
        &["dto", "leaks", "limits", "webhooks"],
        &["state"],
        &["extract"],
        &["auth"],
        &["service"],
        &[
            "routes",
            "ext_authz",
            "compat",
            "web",
            "explorer",
            "middleware",
            "workers",
        ],
        &["api_doc"],
        &["lib"],
    ];
    keygate_layers::check(&crate_src("keygate-server"), layers).unwrap_or_else(|e| panic!("{e}"));
}

/// keygate-store: the records and the trait, the hot path's cache and verifier, the SQL
/// implementation, and the change feed that ties the cache to the database.
#[test]
fn the_store_imports_only_point_down() {
    let layers: &[&[&str]] = &[
        &["backend", "model", "ratelimit", "usage"],
        &["expiry"],
        &["store", "cache"],
        &["last_used", "credits", "usage_writer"],
        &["verifier"],
        &["sql"],
        &["changes"],
        &["lib"],
    ];
    keygate_layers::check(&crate_src("keygate-store"), layers).unwrap_or_else(|e| panic!("{e}"));
}

/// A wrong import is found, so the two tests above can fail.
#[test]
fn the_client_imports_only_point_down() {
    let layers: &[&[&str]] = &[
        &["error", "options", "wire", "verification"],
        &["held", "http"],
        &["shared"],
        &["follower"],
        &["replica"],
        &["web", "tests"],
        &["lib"],
    ];
    keygate_layers::check(&crate_src("keygate-client"), layers).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_import_that_points_up_is_named() {
    let dir = std::env::temp_dir().join(format!("keygate-layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "pub mod low;\npub mod high;\n").unwrap();
    std::fs::write(dir.join("src/high.rs"), "use crate::low::x;\n").unwrap();
    std::fs::write(dir.join("src/low.rs"), "use crate::high::y;\n").unwrap();
    let result = keygate_layers::check(&dir.join("src"), &[&["low"], &["high"], &["lib"]]);
    std::fs::remove_dir_all(&dir).unwrap();
    let message = result.unwrap_err();
    assert!(message.contains("low.rs uses high::y"), "{message}");
    assert!(!message.contains("high.rs"), "{message}");
}

/// The checker itself: it must see every form of import, or the test above proves nothing.
#[test]
fn the_checker_sees_every_form_of_import() {
    let module = vec!["auth".to_owned(), "token".to_owned()];
    let code = code_of(
        "use crate::state::AppState;\n\
         use crate::{error::ApiError, service::{tokens, users::x}};\n\
         // use crate::routes::ignored;\n\
         fn f() { super::session::g(); crate::limits::login::h(); }\n\
         mod inner { use super::*; }\n\
         mod tests { use crate::lib_only::thing; }",
    );
    let found: Vec<String> = paths_named(&module, &code)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "state::AppState",
            "error::ApiError",
            "service::tokens",
            "service::users::x",
            "limits::login::h",
            "auth::session::g",
            "auth::token",
        ]
    );
}
