//! Reading what Prometheus reads: a service's `/metrics` scrape (its series
//! and values), and the metric names that operators' assets query — every
//! PromQL expression of a Grafana dashboard (`"expr"` fields) and of a
//! Prometheus rules file (`expr:` keys). The observability test holds the
//! assets in deploy/observability to the names the services really export.
//!
//! The PromQL reading is a scanner, not a parser: it drops strings, label
//! matchers (`{…}`), ranges (`[…]`), label lists after `by`/`without`/
//! `on`/`ignoring`/`group_left`/`group_right`, numbers, keywords and
//! function calls; every identifier left is a metric name.
use std::collections::BTreeSet;
use std::io::{Read, Write};

/// One `/metrics` body.
#[derive(Debug, Clone)]
pub struct Scrape(pub String);

impl Scrape {
    /// `GET /metrics` on a loopback port; `None` while nothing answers.
    pub fn get(port: u16) -> Option<Self> {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        conn.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| Self(body.to_owned()))
    }

    /// Every series name (a histogram's as `_bucket`, `_sum`, `_count`) and
    /// every name a `# TYPE` line declares.
    pub fn names(&self) -> BTreeSet<String> {
        self.0
            .lines()
            .filter_map(|line| match line.strip_prefix("# TYPE ") {
                Some(declared) => declared.split_whitespace().next(),
                None if line.starts_with('#') => None,
                None => line.split(['{', ' ']).next(),
            })
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The value of the series `name` whose labels include every pair of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = series_name == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse().ok()).flatten()
        })
    }
}

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
];
/// Keywords followed by a parenthesized list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names `expr` reads.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let (mut names, mut i, mut skip_list) = (BTreeSet::new(), 0, false);
    while i < chars.len() {
        let c = chars[i];
        let skip_to = |close: char, from: usize| {
            chars[from..].iter().position(|&x| x == close).map_or(chars.len(), |p| from + p + 1)
        };
        match c {
            '"' | '\'' | '`' => i = skip_to(c, i + 1),
            '{' => i = skip_to('}', i + 1),
            '[' => i = skip_to(']', i + 1),
            '(' if skip_list => {
                i = skip_to(')', i + 1);
                skip_list = false;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                skip_list = LABEL_LISTS.contains(&word.as_str());
                if next != Some(&'(') && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every `"expr"` string anywhere in a Grafana dashboard.
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    match dashboard {
        serde_json::Value::Object(fields) => fields
            .iter()
            .flat_map(|(key, value)| match (key.as_str(), value) {
                ("expr", serde_json::Value::String(expr)) => vec![expr.clone()],
                _ => dashboard_exprs(value),
            })
            .collect(),
        serde_json::Value::Array(items) => items.iter().flat_map(dashboard_exprs).collect(),
        _ => Vec::new(),
    }
}

/// Every `expr:` of a Prometheus rules file: on its line, or a block
/// (`expr: |` / `expr: >`) of the lines indented deeper than the key.
pub fn rule_exprs(rules: &str) -> Vec<String> {
    let lines: Vec<&str> = rules.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().trim_start_matches("- ").strip_prefix("expr:") else { continue };
        let value = value.trim();
        if !value.starts_with(['|', '>']) {
            exprs.push(value.trim_matches(['"', '\'']).to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block = lines[n + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        exprs.push(block);
    }
    exprs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn only_metric_names_are_read_from_promql() {
        let expr = r#"histogram_quantile(0.99, sum by (le, method) (rate(grpc_server_request_duration_seconds_bucket{code!="0", method=~"/payvault.vault.*"}[$__rate_interval])))"#;
        assert_eq!(names(expr), ["grpc_server_request_duration_seconds_bucket"]);
        let ratio =
            "max by (service) (db_pool_connections{state=\"in_use\"} / ignoring(state) db_pool_max_connections) > 0.9";
        assert_eq!(names(ratio), ["db_pool_connections", "db_pool_max_connections"]);
        assert_eq!(
            names("max(payments_pending_oldest_age_seconds) > 60 and on() vector(1)"),
            ["payments_pending_oldest_age_seconds"]
        );
        assert_eq!(names("up{namespace='payvault'} == 0 offset 5m"), ["up"]);
        assert_eq!(names("sum(rate(a_total[5m])) / sum without (code) (rate(b_total[1h:5m]))"), ["a_total", "b_total"]);
    }

    #[test]
    fn rules_read_inline_and_block_exprs() {
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: |\n          sum(rate(x_total[5m]))\n            > 1\n        labels:\n          severity: page\n";
        assert_eq!(rule_exprs(rules), ["up == 0", "sum(rate(x_total[5m])) > 1"]);
    }

    #[test]
    fn a_scrape_names_series_and_reads_values() {
        let scrape = Scrape(
            "# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_sum 0.05\nh_count 1\n# HELP g a gauge\ng{state=\"idle\",service=\"x\"} 3\n"
                .into(),
        );
        assert_eq!(scrape.names().into_iter().collect::<Vec<_>>(), ["g", "h", "h_bucket", "h_count", "h_sum"]);
        assert_eq!(scrape.value("g", &[("service", "x"), ("state", "idle")]), Some(3.0));
        assert_eq!(scrape.value("g", &[("state", "in_use")]), None);
    }
}
