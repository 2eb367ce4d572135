//! The result line: one JSON object per run, with throughput, latency
//! percentiles and CPU per operation.
use serde::Serialize;

use crate::driver::{Outcome, Plan};
use crate::sizes::Sizes;

/// Pre-made single-use items (tokens or keys): how many were made and used.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Supply {
    pub made: usize,
    pub used: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub op: &'static str,
    /// `closed` (workers back to back) or `open` (fixed rate).
    pub mode: &'static str,
    pub concurrency: usize,
    /// gRPC channels (HTTP/2 connections) or Redis pool size.
    pub connections: usize,
    /// Open loop: the requested rate per second.
    pub target_rate: Option<f64>,
    pub window_s: f64,
    /// Successful requests in the window.
    pub requests: u64,
    pub errors: u64,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// The encoded size of a real response, for vault ops: checks `response_bytes`.
    pub response_bytes_observed: Option<usize>,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_s_per_op: Option<f64>,
    pub client_cpu_s: Option<f64>,
    /// The supply ran out and the window was cut short.
    pub exhausted: bool,
    pub supply: Option<Supply>,
    /// Redis ops: `held` or `per-op` (see `--redis-checkout`).
    pub redis_checkout: Option<&'static str>,
    pub error_samples: Vec<String>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

impl Report {
    pub fn new(plan: &Plan, connections: usize, sizes: Sizes, outcome: &Outcome) -> Self {
        let h = &outcome.histogram;
        let requests = h.len();
        let window = outcome.window.as_secs_f64();
        let ops = requests + outcome.errors;
        Self {
            op: "",
            mode: if plan.rate.is_some() { "open" } else { "closed" },
            concurrency: plan.concurrency,
            connections,
            target_rate: plan.rate,
            window_s: round(window, 3),
            requests,
            errors: outcome.errors,
            throughput_per_s: round(requests as f64 / window.max(f64::MIN_POSITIVE), 1),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: round(h.mean() / 1000.0, 3),
            request_bytes: sizes.request,
            response_bytes: sizes.response,
            response_bytes_observed: None,
            server_cpu_s: outcome.server_cpu_s.map(|c| round(c, 2)),
            server_cpu_s_per_op: outcome.server_cpu_s.filter(|_| ops > 0).map(|c| c / ops as f64),
            client_cpu_s: outcome.client_cpu_s.map(|c| round(c, 2)),
            exhausted: outcome.exhausted,
            supply: None,
            redis_checkout: None,
            error_samples: outcome.error_samples.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
