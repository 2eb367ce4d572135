//! The result line: one JSON object per run, with throughput, latency
//! percentiles and CPU per operation.
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::driver::{Outcome, Plan};
use crate::sizes::Sizes;

#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub name: String,
    /// The process, or `uid` for all processes of a user.
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub cpu_s: f64,
    pub cpu_us_per_op: Option<f64>,
}

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
    #[serde(flatten)]
    pub latency: Latency,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// The encoded size of a real response, for vault ops: checks `response_bytes`.
    pub response_bytes_observed: Option<usize>,
    #[serde(flatten)]
    pub cpu: Cpu,
    /// The supply ran out and the window was cut short.
    pub exhausted: bool,
    pub supply: Option<Supply>,
    /// Redis ops: `held` or `per-op` (see `--redis-checkout`).
    pub redis_checkout: Option<&'static str>,
    pub error_samples: Vec<String>,
}

impl Report {
    pub fn new(plan: &Plan, connections: usize, sizes: Sizes, outcome: &Outcome) -> Self {
        let requests = outcome.histogram.len();
        let window = outcome.window.as_secs_f64();
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
            latency: Latency::of(&outcome.histogram),
            request_bytes: sizes.request,
            response_bytes: sizes.response,
            response_bytes_observed: None,
            cpu: Cpu::of(outcome, requests + outcome.errors, window),
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

/// Latency of the successful requests in the window, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: round(h.mean() / 1000.0, 3),
        }
    }
}

/// CPU over the window: the servers', this load generator's and the machine's.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    /// CPU of all `--server-pid` processes (and `--server-uid` users) together over the window.
    pub server_cpu_s: Option<f64>,
    pub server_cpu_s_per_op: Option<f64>,
    /// The same, per process.
    pub server_cpu_by_process: Vec<ProcessReport>,
    pub client_cpu_s: Option<f64>,
    /// Busy CPU of the whole machine over the window.
    pub machine_cpu_s: Option<f64>,
    /// Machine CPU used by neither this load generator nor the server
    /// processes, in cores over the window: other work that disturbed the run
    /// (only meaningful when every server process was given).
    pub other_cores: Option<f64>,
}

impl Cpu {
    /// `outcome`'s CPU, per operation where there were `ops` (successes and
    /// errors) in a window of `window` seconds.
    fn of(outcome: &Outcome, ops: u64, window: f64) -> Self {
        let per_op = |seconds: f64| (ops > 0).then(|| seconds / ops as f64);
        let server_cpu = outcome.server_cpu.as_ref().map(|ps| ps.iter().map(|p| p.seconds).sum::<f64>());
        Self {
            server_cpu_s: server_cpu.map(|c| round(c, 2)),
            server_cpu_s_per_op: server_cpu.and_then(per_op),
            server_cpu_by_process: outcome
                .server_cpu
                .iter()
                .flatten()
                .map(|p| ProcessReport {
                    name: p.server.name.clone(),
                    pid: p.server.pid(),
                    uid: p.server.uid(),
                    cpu_s: round(p.seconds, 2),
                    cpu_us_per_op: per_op(p.seconds).map(|s| round(s * 1e6, 1)),
                })
                .collect(),
            client_cpu_s: outcome.client_cpu_s.map(|c| round(c, 2)),
            machine_cpu_s: outcome.machine_cpu_s.map(|c| round(c, 2)),
            other_cores: match (outcome.machine_cpu_s, outcome.client_cpu_s) {
                (Some(m), Some(c)) => {
                    Some(round(((m - c - server_cpu.unwrap_or(0.0)) / window.max(f64::MIN_POSITIVE)).max(0.0), 2))
                }
                _ => None,
            },
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cpu::{Owner, Server, ServerCpu};

    #[test]
    fn the_json_line_is_one_flat_object_in_a_fixed_order() {
        let mut histogram = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        histogram.record(1500).unwrap();
        let vault = Server { name: "vault-svc".into(), owner: Owner::Pid(42) };
        let outcome = Outcome {
            histogram,
            errors: 1,
            error_samples: Vec::new(),
            window: Duration::from_secs(2),
            exhausted: false,
            server_cpu: Some(vec![ServerCpu { server: vault, seconds: 0.5 }]),
            client_cpu_s: Some(0.25),
            machine_cpu_s: Some(1.0),
        };
        let plan = Plan { concurrency: 4, warmup: Duration::ZERO, duration: Duration::from_secs(2), rate: None };
        let json = Report::new(&plan, 2, Sizes { request: 10, response: 20 }, &outcome).to_json();
        let keys = [
            "op",
            "mode",
            "concurrency",
            "connections",
            "target_rate",
            "window_s",
            "requests",
            "errors",
            "throughput_per_s",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "mean_ms",
            "request_bytes",
            "response_bytes",
            "response_bytes_observed",
            "server_cpu_s",
            "server_cpu_s_per_op",
            "server_cpu_by_process",
            "client_cpu_s",
            "machine_cpu_s",
            "other_cores",
            "exhausted",
            "supply",
            "redis_checkout",
            "error_samples",
        ];
        let at: Vec<Option<usize>> = keys.iter().map(|k| json.find(&format!("\"{k}\":"))).collect();
        assert!(at.iter().all(Option::is_some), "{json}");
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(json.contains(r#""server_cpu_by_process":[{"name":"vault-svc","pid":42,"uid":null,"cpu_s":0.5,"cpu_us_per_op":250000.0}]"#), "{json}");
        assert!(json.contains(r#""other_cores":0.13"#), "{json}");
    }
}
