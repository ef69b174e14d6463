//! Prometheus metrics: HTTP requests by route and status, verifications by result code,
//! latency histograms, and the tokens secret scanners report. Verification counters are resolved once at start so the hot path only
//! increments an atomic.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::Method;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a request, built without allocating: the method's static name and the matched
/// route as the router already holds it (a shared string).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: RouteName,
    pub status: u16,
}

/// The route pattern a request matched (`/api/v1/tokens/{id}`), never the raw path, so ids
/// do not explode the label set.
#[derive(Clone, Debug)]
pub struct RouteName(pub Option<MatchedPath>);

impl RouteName {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", |m| m.as_str())
    }
}

impl std::hash::Hash for RouteName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq for RouteName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteName {}

impl EncodeLabelValue for RouteName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

/// A method's name with a static lifetime; methods outside HTTP's own are counted as `other`.
pub fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeakLabels {
    reporter: &'static str,
    outcome: &'static str,
}

/// What became of a token a secret scanner reported, as counted under `outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeakOutcome {
    /// A token of this deployment (acted on at its first report).
    Ours,
    /// Another prefix, a bad checksum or another shape: judged by its format, with no lookup.
    NotOursByFormat,
    /// Well formed, but no token of this deployment has that hash.
    NotFound,
}

impl LeakOutcome {
    fn label(self) -> &'static str {
        match self {
            LeakOutcome::Ours => "true_positive",
            LeakOutcome::NotOursByFormat => "false_positive_format",
            LeakOutcome::NotFound => "false_positive_not_found",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteName,
}

/// The verify answers' codes (`RATE_LIMITED` also for a client address refused for failing too
/// often), each with the `outcome` label it is counted under: the names of the usage API's
/// counts, and of the two outcomes that belong to no token.
pub const VERIFY_CODES: [(&str, &str); 9] = [
    ("VALID", "valid"),
    ("MALFORMED", "malformed"),
    ("NOT_FOUND", "notFound"),
    ("DISABLED", "disabled"),
    ("EXPIRED", "expired"),
    ("INSUFFICIENT_SCOPE", "insufficientScope"),
    ("RATE_LIMITED", "rateLimited"),
    ("USAGE_EXCEEDED", "usageExceeded"),
    ("IP_NOT_ALLOWED", "ipNotAllowed"),
];

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    verifications: [Counter; VERIFY_CODES.len()],
    verify_seconds: Histogram,
    cached_tokens: Gauge,
    token_lookups: Counter,
    leak_reports: Family<LeakLabels, Counter>,
    /// The lookup counter is brought up to the verifier's count when rendered; two renders at
    /// once would add the difference twice.
    render_lock: std::sync::Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 1 µs … ~1 s in factors of 2.5.
    Histogram::new(exponential_buckets(1e-6, 2.5, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keygate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            request_seconds.clone(),
        );
        let family = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "verifications",
            "Token verifications (verify, forward-auth, ext_authz and the compatible verify calls) by \
             outcome; per token they are in the usage API, never in labels",
            family.clone(),
        );
        let verifications = VERIFY_CODES
            .map(|(_, outcome)| family.get_or_create(&OutcomeLabels { outcome }).clone());
        let verify_seconds = latency_histogram();
        registry.register(
            "verify_duration_seconds",
            "Time to verify a token, inside the service",
            verify_seconds.clone(),
        );
        let cached_tokens = Gauge::default();
        registry.register(
            "cached_tokens",
            "Tokens held in the verification cache",
            cached_tokens.clone(),
        );
        let token_lookups = Counter::default();
        registry.register(
            "token_lookups",
            "Verifications that looked a token up in the database (the rest were answered from \
             memory, or rejected by format and checksum without a lookup)",
            token_lookups.clone(),
        );
        let leak_reports = Family::<LeakLabels, Counter>::default();
        registry.register(
            "leak_reports",
            "Tokens reported leaked by secret scanners, by reporter and outcome \
             (false_positive_format: judged by prefix and checksum, with no database lookup)",
            leak_reports.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            verifications,
            verify_seconds,
            cached_tokens,
            token_lookups,
            leak_reports,
            render_lock: std::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    pub fn verification(&self, code: &str, took: Duration) {
        if let Some(i) = VERIFY_CODES.iter().position(|(c, _)| *c == code) {
            self.verifications[i].inc();
        }
        self.verify_seconds.observe(took.as_secs_f64());
    }

    pub fn leak_report(&self, reporter: &'static str, outcome: LeakOutcome) {
        self.leak_reports
            .get_or_create(&LeakLabels {
                reporter,
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn request(&self, labels: RequestLabels, took: Duration) {
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: labels.route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    pub fn render(&self, cached_tokens: usize, token_lookups: u64) -> String {
        let _one_at_a_time = self.render_lock.lock().expect("metrics render lock");
        self.cached_tokens.set(cached_tokens as i64);
        self.token_lookups
            .inc_by(token_lookups.saturating_sub(self.token_lookups.get()));
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
