//! Counters for `/metrics`, in the Prometheus text format. Lock-free on the request path
//! except a read lock on the (route, status) map, taken for a lookup and an atomic add;
//! the write lock is taken once per new pair.

use rustc_hash::FxHashMap;
use std::fmt::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::policy::PolicyEngine;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: RwLock<FxHashMap<(&'static str, u16), AtomicU64>>,
    /// Per bucket, the requests that fell in it (not cumulative: one atomic add per
    /// request; `render` sums them into Prometheus's cumulative form).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    verify_valid: AtomicU64,
    verify_invalid: AtomicU64,
    authorize_allow: AtomicU64,
    authorize_deny: AtomicU64,
}

impl Metrics {
    /// Count one answered request.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let counted = self
            .requests
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(route, status))
            .map(|c| c.fetch_add(1, Ordering::Relaxed))
            .is_some();
        if !counted {
            self.requests
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry((route, status))
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS
            .iter()
            .zip(&self.buckets)
            .find_map(|(bound, bucket)| (seconds <= *bound).then_some(bucket))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Count one `/verify` answer.
    pub fn verified(&self, valid: bool) {
        let counter = if valid {
            &self.verify_valid
        } else {
            &self.verify_invalid
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one `/authorize` decision.
    pub fn decided(&self, allowed: bool) {
        let counter = if allowed {
            &self.authorize_allow
        } else {
            &self.authorize_deny
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text, with the policy faults of `engine`'s current set and the
    /// storage's I/O failures.
    pub fn render(&self, engine: Option<&PolicyEngine>, storage_errors: u64) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP latchkey_http_requests_total Requests answered, by route and status.\n",
        );
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        let mut rows: Vec<(&'static str, u16, u64)> = self
            .requests
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|((route, status), c)| (*route, *status, load(c)))
            .collect();
        rows.sort_unstable();
        for (route, status, n) in rows {
            let _ = writeln!(
                out,
                "latchkey_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP latchkey_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE latchkey_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += load(bucket);
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = load(&self.count);
        let _ = writeln!(
            out,
            "latchkey_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = load(&self.sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "latchkey_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "latchkey_http_request_duration_seconds_count {count}");
        out.push_str("# HELP latchkey_verify_total /verify answers, by result.\n");
        out.push_str("# TYPE latchkey_verify_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_verify_total{{result=\"valid\"}} {}",
            load(&self.verify_valid)
        );
        let _ = writeln!(
            out,
            "latchkey_verify_total{{result=\"invalid\"}} {}",
            load(&self.verify_invalid)
        );
        out.push_str("# HELP latchkey_authorize_total /authorize decisions, by decision.\n");
        out.push_str("# TYPE latchkey_authorize_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_authorize_total{{decision=\"allow\"}} {}",
            load(&self.authorize_allow)
        );
        let _ = writeln!(
            out,
            "latchkey_authorize_total{{decision=\"deny\"}} {}",
            load(&self.authorize_deny)
        );
        out.push_str(
            "# HELP latchkey_storage_errors_total Storage I/O failures (a full disk, a failing device) since the server started.\n",
        );
        out.push_str("# TYPE latchkey_storage_errors_total counter\n");
        let _ = writeln!(out, "latchkey_storage_errors_total {storage_errors}");
        out.push_str(
            "# HELP latchkey_policy_faults_total Decisions a policy module failed (trap, fuel, memory, bad output), since its set was loaded.\n",
        );
        out.push_str("# TYPE latchkey_policy_faults_total counter\n");
        if let Some(engine) = engine {
            for policy in engine.current().policies() {
                let _ = writeln!(
                    out,
                    "latchkey_policy_faults_total{{policy=\"{}\"}} {}",
                    policy.name(),
                    policy.faults()
                );
            }
        }
        out
    }
}
