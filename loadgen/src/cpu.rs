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

/// Busy ticks of the whole machine from `/proc/stat`'s `cpu` line: everything
/// but idle and iowait (guest time is already inside user).
fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
    let (user, nice, system, irq, softirq) = (f.first()?, f.get(1)?, f.get(2)?, f.get(5)?, f.get(6)?);
    Some(user + nice + system + irq + softirq + f.get(7).unwrap_or(&0))
}

fn ticks(stat_path: &Path) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(stat_path).ok()?)
}

/// A process whose CPU is charged to the operation: `NAME=PID` or a bare `PID`
/// on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Process {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, pid) = s.rsplit_once('=').unwrap_or(("", s));
        let pid: u32 = pid.trim().parse().map_err(|_| format!("{s:?} is not a pid or NAME=PID"))?;
        let name = if name.is_empty() { pid.to_string() } else { name.to_owned() };
        Ok(Self { name, pid })
    }
}

#[derive(Debug, Clone)]
pub struct CpuProbe {
    processes: Vec<Process>,
    ticks_per_s: f64,
}

/// CPU seconds at one instant of each probed process, of this one and of the
/// whole machine.
#[derive(Debug, Clone)]
pub struct Snapshot {
    servers: Vec<Option<f64>>,
    client: Option<f64>,
    machine: Option<f64>,
}

/// CPU seconds a process used between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessCpu {
    pub name: String,
    pub pid: u32,
    pub seconds: f64,
}

impl CpuProbe {
    pub fn new(processes: &[Process]) -> Self {
        Self { processes: processes.to_vec(), ticks_per_s: ticks_per_second() }
    }

    pub fn sample(&self) -> Snapshot {
        let secs = |t: u64| t as f64 / self.ticks_per_s;
        let stat = |pid: &dyn std::fmt::Display| ticks(Path::new(&format!("/proc/{pid}/stat"))).map(secs);
        Snapshot {
            servers: self.processes.iter().map(|p| stat(&p.pid)).collect(),
            client: stat(&"self"),
            machine: std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_machine_busy).map(secs),
        }
    }

    /// Each probed process's CPU between `before` and `after`; `None` without
    /// processes or if one could not be read (gone, or no `/proc`).
    pub fn servers_between(&self, before: &Snapshot, after: &Snapshot) -> Option<Vec<ProcessCpu>> {
        if self.processes.is_empty() {
            return None;
        }
        self.processes
            .iter()
            .zip(before.servers.iter().zip(&after.servers))
            .map(|(p, (b, a))| Some(ProcessCpu { name: p.name.clone(), pid: p.pid, seconds: (*a)? - (*b)? }))
            .collect()
    }
}

impl Snapshot {
    pub fn client_since(&self, before: &Snapshot) -> Option<f64> {
        Some(self.client? - before.client?)
    }

    /// Busy CPU seconds of the whole machine, every process included.
    pub fn machine_since(&self, before: &Snapshot) -> Option<f64> {
        Some(self.machine? - before.machine?)
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
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 9000 70 3 2 1 0 0\ncpu0 50 2 25 4500 35 1 1 0 0 0\n";
        assert_eq!(parse_machine_busy(stat), Some(161));
        assert_eq!(parse_machine_busy("intr 1 2 3"), None);
    }

    #[test]
    fn processes_parse_with_or_without_a_name() {
        let p: Result<Process, _> = "vault-svc=42".parse();
        assert_eq!(p, Ok(Process { name: "vault-svc".into(), pid: 42 }));
        let p: Result<Process, _> = "42".parse();
        assert_eq!(p, Ok(Process { name: "42".into(), pid: 42 }));
        assert!("vault".parse::<Process>().is_err());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = Process { name: "me".into(), pid: std::process::id() };
        let probe = CpuProbe::new(std::slice::from_ref(&me));
        let a = probe.sample();
        let b = probe.sample();
        let used = probe.servers_between(&a, &b).unwrap_or_default();
        assert_eq!(used.len(), 1);
        assert!(used.iter().all(|p| p.name == "me" && p.seconds >= 0.0));
        assert!(b.client_since(&a).is_some());
        assert!(b.machine_since(&a).is_some_and(|s| s >= 0.0));
        let gone = CpuProbe::new(&[Process { name: "gone".into(), pid: u32::MAX }]);
        assert_eq!(gone.servers_between(&gone.sample(), &gone.sample()), None);
        let none = CpuProbe::new(&[]);
        assert_eq!(none.servers_between(&none.sample(), &none.sample()), None);
    }
}
