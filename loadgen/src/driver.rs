//! The load loop: closed loop (workers back to back) or open loop (a fixed
//! schedule, latency from each request's scheduled time), a warm-up that is not
//! recorded, one HDR histogram per worker merged at the end.
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::Error;
use crate::cpu::{CpuProbe, ServerCpu};

/// Latencies are recorded in microseconds, up to a minute, 3 significant digits.
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 60_000_000;
const SIGFIG: u8 = 3;
/// Distinct error messages kept to show on stderr.
const ERROR_SAMPLES: usize = 3;

/// One kind of request under load. `worker` is called once per worker before
/// the run starts, so per-worker state (a client clone, a buffer) is set up
/// outside the timed loop.
pub trait Op {
    type Worker: Worker;
    fn worker(&self, index: usize) -> Self::Worker;
}

pub trait Worker: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request failed; counted as an error.
    Error(String),
    /// Nothing left to consume (pre-made tokens or keys): the run stops here.
    Exhausted,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop at this many requests per second; closed loop when `None`.
    pub rate: Option<f64>,
}

#[derive(Debug)]
pub struct Outcome {
    /// Successful requests started inside the measured window.
    pub histogram: Histogram<u64>,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// The measured window: `duration`, or less if the supply ran out.
    pub window: Duration,
    pub exhausted: bool,
    /// CPU seconds of each `--server-pid` process from the start of the window
    /// until the last request finished; `None` if one could not be read.
    pub server_cpu: Option<Vec<ServerCpu>>,
    /// The same for this process.
    pub client_cpu_s: Option<f64>,
    /// Busy CPU seconds of the whole machine over the same span.
    pub machine_cpu_s: Option<f64>,
}

struct Shared {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// Open loop: the next slot of the schedule.
    next_slot: AtomicU64,
    /// Nanoseconds after `start` at which the supply ran out; `u64::MAX` if it did not.
    exhausted_at: AtomicU64,
    stop: AtomicBool,
    interval: Option<f64>,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    errors: u64,
    error_samples: Vec<String>,
}

fn new_histogram() -> Result<Histogram<u64>, Error> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).map_err(|e| Error::Histogram(e.to_string()))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(LOWEST_US)
}

/// Runs `plan` against `op`, sampling the CPU of `probe`'s processes from the
/// start of the measured window until every worker has finished.
pub async fn drive<O: Op>(op: &O, plan: &Plan, probe: &CpuProbe) -> Result<Outcome, Error> {
    let mut workers = Vec::with_capacity(plan.concurrency);
    for i in 0..plan.concurrency {
        workers.push((op.worker(i), new_histogram()?));
    }
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let shared = Arc::new(Shared {
        start,
        measure_from,
        end: measure_from + plan.duration,
        next_slot: AtomicU64::new(0),
        exhausted_at: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        interval: plan.rate.map(|r| 1.0 / r),
    });
    let handles: Vec<_> =
        workers.into_iter().map(|(w, h)| tokio::spawn(run_worker(w, h, Arc::clone(&shared)))).collect();

    tokio::time::sleep_until(measure_from).await;
    let before = probe.sample();
    let mut total = new_histogram()?;
    let mut errors = 0;
    let mut error_samples = Vec::new();
    for h in handles {
        let r = h.await.map_err(|e| Error::Setup(format!("a worker died: {e}")))?;
        total.add(&r.histogram).map_err(|e| Error::Histogram(e.to_string()))?;
        errors += r.errors;
        for s in r.error_samples {
            if error_samples.len() < ERROR_SAMPLES && !error_samples.contains(&s) {
                error_samples.push(s);
            }
        }
    }
    let after = probe.sample();

    let exhausted_at = shared.exhausted_at.load(Ordering::Relaxed);
    let exhausted = exhausted_at != u64::MAX;
    let window = if exhausted {
        let at = start + Duration::from_nanos(exhausted_at);
        if at <= measure_from {
            return Err(Error::Setup("the pre-made supply ran out during the warm-up; raise --prefill".into()));
        }
        at - measure_from
    } else {
        plan.duration
    };
    Ok(Outcome {
        histogram: total,
        errors,
        error_samples,
        window,
        exhausted,
        server_cpu: probe.servers_between(&before, &after),
        client_cpu_s: after.client_since(&before),
        machine_cpu_s: after.machine_since(&before),
    })
}

async fn run_worker<W: Worker>(mut worker: W, mut histogram: Histogram<u64>, shared: Arc<Shared>) -> WorkerResult {
    let mut errors = 0;
    let mut error_samples: Vec<String> = Vec::new();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let (scheduled, sent) = match shared.interval {
            None => {
                let now = Instant::now();
                (now, now)
            }
            Some(interval) => {
                let slot = shared.next_slot.fetch_add(1, Ordering::Relaxed);
                let at = shared.start + Duration::from_secs_f64(slot as f64 * interval);
                if at >= shared.end {
                    break;
                }
                if at > Instant::now() {
                    // On time: the worker was idle, so the lateness of the wake-up is
                    // the timer's granularity (1 ms), not the server's; count from the
                    // wake-up. A late slot (all workers busy) counts from its
                    // scheduled time, so queueing behind a slow server is measured.
                    tokio::time::sleep_until(at).await;
                    (at, Instant::now())
                } else {
                    (at, at)
                }
            }
        };
        if scheduled >= shared.end {
            break;
        }
        let result = worker.call().await;
        let done = Instant::now();
        let recorded = scheduled >= shared.measure_from;
        match result {
            Ok(()) if recorded => histogram.saturating_record(micros(done - sent)),
            Ok(()) => {}
            Err(Failure::Exhausted) => {
                let at = u64::try_from((scheduled - shared.start).as_nanos()).unwrap_or(u64::MAX - 1);
                shared.exhausted_at.fetch_min(at, Ordering::Relaxed);
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
            Err(Failure::Error(_)) if !recorded => {}
            Err(Failure::Error(message)) => {
                errors += 1;
                if error_samples.len() < ERROR_SAMPLES && !error_samples.contains(&message) {
                    error_samples.push(message);
                }
            }
        }
    }
    WorkerResult { histogram, errors, error_samples }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Sleepy {
        left: Arc<AtomicUsize>,
    }

    struct SleepyWorker {
        left: Arc<AtomicUsize>,
    }

    impl Op for Sleepy {
        type Worker = SleepyWorker;
        fn worker(&self, _: usize) -> SleepyWorker {
            SleepyWorker { left: Arc::clone(&self.left) }
        }
    }

    impl Worker for SleepyWorker {
        async fn call(&mut self) -> Result<(), Failure> {
            if self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                return Err(Failure::Exhausted);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(())
        }
    }

    fn plan(rate: Option<f64>) -> Plan {
        Plan { concurrency: 4, warmup: Duration::from_millis(100), duration: Duration::from_millis(400), rate }
    }

    #[tokio::test]
    async fn closed_loop_records_only_the_measured_window() -> Result<(), Error> {
        let op = Sleepy { left: Arc::new(AtomicUsize::new(usize::MAX)) };
        let out = drive(&op, &plan(None), &CpuProbe::new(&[])).await?;
        assert!(!out.exhausted);
        assert_eq!(out.window, Duration::from_millis(400));
        // 4 workers × 400 ms / (2 ms + timer slack): well under 800, well over 100.
        let n = out.histogram.len();
        assert!((100..=800).contains(&n), "{n} requests");
        assert!(out.histogram.value_at_quantile(0.5) >= 2_000);
        Ok(())
    }

    #[tokio::test]
    async fn open_loop_follows_the_schedule() -> Result<(), Error> {
        let op = Sleepy { left: Arc::new(AtomicUsize::new(usize::MAX)) };
        let out = drive(&op, &plan(Some(500.0)), &CpuProbe::new(&[])).await?;
        // 500/s over 400 ms = 200 slots in the window.
        let n = out.histogram.len();
        assert!((190..=210).contains(&n), "{n} requests");
        Ok(())
    }

    #[tokio::test]
    async fn a_run_out_supply_shortens_the_window() -> Result<(), Error> {
        let op = Sleepy { left: Arc::new(AtomicUsize::new(300)) };
        let out = drive(&op, &plan(None), &CpuProbe::new(&[])).await?;
        assert!(out.exhausted);
        assert!(out.window < Duration::from_millis(400));
        Ok(())
    }
}
