//! CPU time of processes from `/proc/PID/stat` (utime + stime, all threads),
//! sampled around the measured window to charge server CPU to each operation.
use std::path::Path;

/// Clock ticks per second for `/proc` times. `sysconf(_SC_CLK_TCK)` needs libc;
/// `getconf CLK_TCK` answers the same without it, and Linux has used 100 on
/// every common architecture for decades, so that is the fallback.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `stat`'s contents, in ticks. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name, field 3 (state) comes first; utime is field 14, stime 15.
    let utime: u64 = fields.nth(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn ticks(stat_path: &Path) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(stat_path).ok()?)
}

#[derive(Debug, Clone)]
pub struct CpuProbe {
    pids: Vec<u32>,
    ticks_per_s: f64,
}

/// CPU seconds at one instant: of the probed processes together, and of this one.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    server: Option<f64>,
    client: Option<f64>,
}

impl CpuProbe {
    pub fn new(pids: &[u32]) -> Self {
        Self { pids: pids.to_vec(), ticks_per_s: ticks_per_second() }
    }

    pub fn sample(&self) -> Snapshot {
        let server = if self.pids.is_empty() {
            None
        } else {
            self.pids.iter().map(|pid| ticks(Path::new(&format!("/proc/{pid}/stat")))).sum::<Option<u64>>()
        };
        let client = ticks(Path::new("/proc/self/stat"));
        let secs = |t: u64| t as f64 / self.ticks_per_s;
        Snapshot { server: server.map(secs), client: client.map(secs) }
    }
}

impl Snapshot {
    pub fn server_since(&self, before: &Snapshot) -> Option<f64> {
        Some(self.server? - before.server?)
    }

    pub fn client_since(&self, before: &Snapshot) -> Option<f64> {
        Some(self.client? - before.client?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (vault svc (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let probe = CpuProbe::new(&[std::process::id()]);
        let a = probe.sample();
        let b = probe.sample();
        assert!(b.server_since(&a).is_some_and(|d| d >= 0.0));
        assert!(b.client_since(&a).is_some());
        assert_eq!(CpuProbe::new(&[]).sample().server_since(&a), None);
    }
}
