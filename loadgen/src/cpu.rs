//! CPU time of processes from `/proc/PID/stat` (utime + stime, all threads),
//! sampled around the measured window to charge server CPU to each operation:
//! one process by pid, or every process of a user (PostgreSQL's backends).
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
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

/// Ticks of every process owned by `uid`, by pid. Processes that vanish
/// while `/proc` is read are skipped.
fn ticks_of_user(uid: u32) -> Option<HashMap<u32, u64>> {
    let mut by_pid = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if entry.metadata().is_ok_and(|m| m.uid() == uid)
            && let Some(t) = ticks(&entry.path().join("stat"))
        {
            by_pid.insert(pid, t);
        }
    }
    Some(by_pid)
}

/// Whose CPU is charged to the operation: one process, or every process of a
/// user (for servers made of many processes, such as PostgreSQL's backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Pid(u32),
    Uid(u32),
}

/// A server whose CPU is charged to the operation, under the name the report
/// gives it: `NAME=N` or a bare `N` (then named `N`) on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub owner: Owner,
}

impl Server {
    /// A process: `NAME=PID` or `PID` (`--server-pid`).
    pub fn process(s: &str) -> Result<Self, String> {
        Self::parse(s, "pid", Owner::Pid)
    }

    /// Every process of a user: `NAME=UID` or `UID` (`--server-uid`).
    pub fn user(s: &str) -> Result<Self, String> {
        Self::parse(s, "uid", Owner::Uid)
    }

    fn parse(s: &str, what: &str, owner: fn(u32) -> Owner) -> Result<Self, String> {
        let (name, n) = s.rsplit_once('=').unwrap_or(("", s));
        let n: u32 = n.trim().parse().map_err(|_| format!("{s:?} is not a {what} or NAME={}", what.to_uppercase()))?;
        let name = if name.is_empty() { n.to_string() } else { name.to_owned() };
        Ok(Self { name, owner: owner(n) })
    }

    pub fn pid(&self) -> Option<u32> {
        match self.owner {
            Owner::Pid(pid) => Some(pid),
            Owner::Uid(_) => None,
        }
    }

    pub fn uid(&self) -> Option<u32> {
        match self.owner {
            Owner::Uid(uid) => Some(uid),
            Owner::Pid(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CpuProbe {
    servers: Vec<Server>,
    ticks_per_s: f64,
}

/// One probed server's ticks at an instant.
#[derive(Debug, Clone)]
enum Ticks {
    One(u64),
    ByPid(HashMap<u32, u64>),
}

/// CPU of each probed server at one instant, of this process and of the
/// whole machine.
#[derive(Debug, Clone)]
pub struct Snapshot {
    servers: Vec<Option<Ticks>>,
    client: Option<f64>,
    machine: Option<f64>,
}

/// CPU seconds a server used between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCpu {
    pub server: Server,
    pub seconds: f64,
}

impl CpuProbe {
    pub fn new(servers: &[Server]) -> Self {
        Self { servers: servers.to_vec(), ticks_per_s: ticks_per_second() }
    }

    pub fn sample(&self) -> Snapshot {
        let secs = |t: u64| t as f64 / self.ticks_per_s;
        let stat = |pid: &dyn std::fmt::Display| ticks(Path::new(&format!("/proc/{pid}/stat")));
        Snapshot {
            servers: self
                .servers
                .iter()
                .map(|s| match s.owner {
                    Owner::Pid(pid) => stat(&pid).map(Ticks::One),
                    Owner::Uid(uid) => ticks_of_user(uid).map(Ticks::ByPid),
                })
                .collect(),
            client: stat(&"self").map(secs),
            machine: std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_machine_busy).map(secs),
        }
    }

    /// Each probed server's CPU between `before` and `after`; `None` without
    /// servers or if a process could not be read (gone, or no `/proc`). A
    /// user's processes are summed over those alive at `after` (one born in
    /// between counts from zero); the CPU of one that exited in between is lost.
    pub fn servers_between(&self, before: &Snapshot, after: &Snapshot) -> Option<Vec<ServerCpu>> {
        if self.servers.is_empty() {
            return None;
        }
        let secs = |t: u64| t as f64 / self.ticks_per_s;
        self.servers
            .iter()
            .zip(before.servers.iter().zip(&after.servers))
            .map(|(server, (b, a))| {
                let used = match (b.as_ref()?, a.as_ref()?) {
                    (Ticks::One(b), Ticks::One(a)) => a.saturating_sub(*b),
                    (Ticks::ByPid(b), Ticks::ByPid(a)) => {
                        a.iter().map(|(pid, t)| t.saturating_sub(b.get(pid).copied().unwrap_or(0))).sum()
                    }
                    _ => return None,
                };
                Some(ServerCpu { server: server.clone(), seconds: secs(used) })
            })
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
        let p = Server::process("vault-svc=42");
        assert_eq!(p, Ok(Server { name: "vault-svc".into(), owner: Owner::Pid(42) }));
        let p = Server::process("42");
        assert_eq!(p, Ok(Server { name: "42".into(), owner: Owner::Pid(42) }));
        assert!(Server::process("vault").is_err());
        let u = Server::user("postgres=105");
        assert_eq!(u, Ok(Server { name: "postgres".into(), owner: Owner::Uid(105) }));
    }

    #[test]
    fn a_users_processes_are_summed() {
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        let probe = CpuProbe::new(&[Server { name: "me".into(), owner: Owner::Uid(uid) }]);
        let a = probe.sample();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(spin.elapsed());
        }
        let b = probe.sample();
        let used = probe.servers_between(&a, &b).unwrap_or_default();
        assert_eq!(used.len(), 1);
        assert!(
            used.iter().all(|p| p.server.uid() == Some(uid) && p.server.pid().is_none() && p.seconds >= 0.0),
            "{used:?}"
        );
    }

    #[test]
    fn this_process_can_be_sampled() {
        let pid = std::process::id();
        let probe = CpuProbe::new(&[Server { name: "me".into(), owner: Owner::Pid(pid) }]);
        let a = probe.sample();
        let b = probe.sample();
        let used = probe.servers_between(&a, &b).unwrap_or_default();
        assert_eq!(used.len(), 1);
        assert!(used.iter().all(|p| p.server.name == "me" && p.server.pid() == Some(pid) && p.seconds >= 0.0));
        assert!(b.client_since(&a).is_some());
        assert!(b.machine_since(&a).is_some_and(|s| s >= 0.0));
        let gone = CpuProbe::new(&[Server { name: "gone".into(), owner: Owner::Pid(u32::MAX) }]);
        assert_eq!(gone.servers_between(&gone.sample(), &gone.sample()), None);
        let none = CpuProbe::new(&[]);
        assert_eq!(none.servers_between(&none.sample(), &none.sample()), None);
    }
}
