//! What the leak intake needs below the services: GitHub's secret-scanning keys, read from the
//! operator's file and checked against the signature of each report (`github_keys`).

pub mod github_keys;

pub use github_keys::{GithubKeys, KeyError, KeySet, SignatureError};
