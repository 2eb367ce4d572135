//! Group commit: durable writes from many callers carried by one transaction.
//!
//! A write is a `Job` (a function of its owned data and a connection inside a
//! transaction) handed to `Committer::write`, which answers once the
//! transaction that carried it is durable. Each of `committers` tasks takes
//! what is queued — at most `max_batch` writes, waiting at most `max_wait_us`
//! for more once it holds one — runs them one after another in one
//! transaction on its own connection and commits; while one commits, the next
//! gathers. Under light load a batch is one write; under heavy load one commit
//! (one WAL flush, one BEGIN and COMMIT) serves up to `max_batch` callers. A
//! committer keeps its connection from batch to batch (`Link`), so a batch
//! costs BEGIN, its statements and COMMIT, without the two pings a checkout
//! from the pool and its return would add.
//!
//! A write may instead be one of a `Batch` (`Committer::write_batched`): the
//! writes of one batch made with the same `Batch` run as one call, which can
//! write them all with one multi-row statement (`super::batched`).
//!
//! Failures stay each caller's own. A write whose statement fails rolls its
//! whole batch back, and then every write of that batch runs again alone, in a
//! transaction of its own, so the failure reaches only its caller and nothing
//! of the batch is half written. A batch that cannot begin or commit (the
//! store went away) answers each of its callers with that error: a commit
//! whose answer was lost may have landed, which callers already handle as
//! for a single write (`Unavailable`, outcome unknown). A write whose caller
//! has given up before it ran (its deadline passed in the queue) is not run.
//!
//! `store_group_commits_total{outcome}` counts batches of more than one write
//! (`committed`, `failed`, `retried_alone`) and `store_group_commit_writes_total`
//! the writes the committed ones carried: their ratio is the writes per commit.
//!
//! A job must leave nothing behind when it decides not to write: it undoes
//! its own statements in the transaction (a compensating statement) rather
//! than rolling back, which would take its batch with it.
//!
//! A job that panics (a bug) is a failed write, not a stopped committer: its
//! batch is given up with its connection closed (PostgreSQL rolls it back; a
//! connection a panic left mid-protocol is never reused), the others of the
//! batch run again alone, and its caller is answered `Corrupt` (INTERNAL).
//! Without this every such panic would take a committer with it, and after
//! `committers` of them every durable write would fail until a restart.
use std::any::{Any as AnyType, TypeId};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::classify;
use crate::store::StoreError;

/// A durable write: its statements, run on a connection inside a transaction
/// the committer begins and commits.
pub type Job<D, T> = for<'c> fn(&'c D, &'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>;

/// Durable writes of one kind that run as one: the statements of all the
/// writes of a batch made with the same `Batch` (a multi-row statement in
/// place of one statement per write), answering one output per write, in
/// order. The writes are each a different row's: a batch that holds two for
/// one row runs them one after the other itself.
pub type Batch<D, T> = for<'c> fn(&'c [&'c D], &'c mut AnyConnection) -> BoxFuture<'c, Result<Vec<T>, StoreError>>;

/// `[database.group_commit]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GroupCommit {
    /// The most writes one transaction carries; 1 commits each on its own.
    pub max_batch: usize,
    /// How long a committer holding fewer than `max_batch` writes waits for
    /// more, in microseconds; 0 takes only what is already queued.
    pub max_wait_us: u64,
    /// Transactions in flight at once, each on a connection of the pool
    /// (SQLite has one writer: always 1 there).
    pub committers: usize,
    /// A batch that has not committed in this time fails as `Unavailable`.
    pub timeout_ms: u64,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self { max_batch: 64, max_wait_us: 0, committers: 4, timeout_ms: 5_000 }
    }
}

/// A queued write with its type erased: run it (with the others of its
/// kind), then answer its caller.
trait Pending: Send {
    /// Its caller has stopped waiting.
    fn abandoned(&self) -> bool;
    /// The writes it runs as one with (those of the same `Batch`); `None`
    /// for a write that runs on its own.
    fn kind(&self) -> Option<(TypeId, usize)>;
    /// Runs a group of writes of its kind (or itself alone).
    fn runner(&self) -> Runner;
    fn as_any(&mut self) -> &mut dyn AnyType;
    /// Sends the caller the output of the last run, or `outcome`'s error.
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
}

/// Runs writes of one kind, setting each one's output.
type Runner = for<'c> fn(&'c mut [Box<dyn Pending>], &'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>>;

enum Statements<D, T> {
    One(Job<D, T>),
    Many(Batch<D, T>),
}

struct Write<D, T> {
    data: D,
    statements: Statements<D, T>,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<D: Send + Sync + 'static, T: Send + 'static> Pending for Write<D, T> {
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn kind(&self) -> Option<(TypeId, usize)> {
        match self.statements {
            Statements::One(_) => None,
            Statements::Many(batch) => Some((TypeId::of::<Self>(), batch as usize)),
        }
    }

    fn runner(&self) -> Runner {
        run_group::<D, T>
    }

    fn as_any(&mut self) -> &mut dyn AnyType {
        self
    }

    fn answer(self: Box<Self>, outcome: Result<(), StoreError>) {
        let Self { output, reply, .. } = *self;
        let result =
            outcome.and_then(|()| output.ok_or_else(|| StoreError::Corrupt("a committed write has no output".into())));
        // A caller that has gone does not need the answer.
        let _ = reply.send(result);
    }
}

/// Runs `group`, writes of one kind (`Pending::kind`), all `Write<D, T>`.
fn run_group<'c, D: Send + Sync + 'static, T: Send + 'static>(
    group: &'c mut [Box<dyn Pending>],
    conn: &'c mut AnyConnection,
) -> BoxFuture<'c, Result<(), StoreError>> {
    Box::pin(async move {
        let mixed = || StoreError::Corrupt("a group of writes of different kinds".into());
        let mut writes: Vec<&mut Write<D, T>> = group
            .iter_mut()
            .map(|w| w.as_any().downcast_mut::<Write<D, T>>())
            .collect::<Option<_>>()
            .ok_or_else(mixed)?;
        let batch = match writes.first().map(|w| &w.statements) {
            None => return Ok(()),
            Some(Statements::Many(batch)) => *batch,
            Some(Statements::One(_)) => {
                for write in writes {
                    let Statements::One(job) = write.statements else { return Err(mixed()) };
                    write.output = Some(job(&write.data, conn).await?);
                }
                return Ok(());
            }
        };
        let outputs = {
            let data: Vec<&D> = writes.iter().map(|w| &w.data).collect();
            batch(&data, conn).await?
        };
        if outputs.len() != writes.len() {
            return Err(StoreError::Corrupt("a batch answered for another number of writes".into()));
        }
        for (write, output) in writes.iter_mut().zip(outputs) {
            write.output = Some(output);
        }
        Ok(())
    })
}

/// Durable writes whose job panicked.
const PANICS: &str = "store_group_commit_panics_total";

type Queue = Arc<Mutex<mpsc::Receiver<Box<dyn Pending>>>>;

/// The committers of one pool; dropping the last handle stops them once the
/// queue is empty.
#[derive(Debug, Clone)]
pub struct Committer {
    queue: mpsc::Sender<Box<dyn Pending>>,
}

impl Committer {
    /// Starts `config.committers` tasks on `pool` (on the current runtime).
    pub fn start(pool: AnyPool, config: &GroupCommit) -> Self {
        let max_batch = config.max_batch.max(1);
        let committers = config.committers.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * committers * 4);
        let receiver: Queue = Arc::new(Mutex::new(receiver));
        let settings = Settings {
            max_batch,
            max_wait: Duration::from_micros(config.max_wait_us),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            // Kept connections leave at least as many to the pool's other
            // users as the committers hold.
            keep: committers * 2 <= pool.options().get_max_connections() as usize,
        };
        // Exported from the start, at 0, so an alert can read it.
        metrics::counter!(PANICS).increment(0);
        for _ in 0..committers {
            tokio::spawn(commit_loop(pool.clone(), receiver.clone(), settings));
        }
        Self { queue }
    }

    /// Queues `job` over `data` and waits until the transaction that carried
    /// it is durable. The caller bounds the wait (`Database::trip`); a caller
    /// that stops waiting before its write ran leaves it unrun.
    pub async fn write<D, T>(&self, data: D, job: Job<D, T>) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.queue_write(data, Statements::One(job)).await
    }

    /// As `write`, but run with the other writes of the same `batch` that
    /// share its transaction, by one call of `batch`.
    pub async fn write_batched<D, T>(&self, data: D, batch: Batch<D, T>) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.queue_write(data, Statements::Many(batch)).await
    }

    async fn queue_write<D, T>(&self, data: D, statements: Statements<D, T>) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let write = Box::new(Write { data, statements, output: None, reply });
        self.queue.send(write).await.map_err(|_| StoreError::Unavailable("the committer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the committer dropped the write".into()))?
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    max_batch: usize,
    max_wait: Duration,
    timeout: Duration,
    /// Each committer keeps its connection between batches.
    keep: bool,
}

async fn commit_loop(pool: AnyPool, queue: Queue, settings: Settings) {
    // A kept connection goes back as soon as the pool is closed, or
    // `AnyPool::close` would wait for it for ever. One listener serves the
    // committer's life: once it has fired nothing is kept again (a closed
    // pool gives no connection), so it is never polled after.
    let closed = pool.close_event();
    tokio::pin!(closed);
    let mut link = Link { pool, held: None, keep: settings.keep, open: false };
    loop {
        let mut batch = Vec::with_capacity(settings.max_batch);
        let gathered = gather(&queue, &mut batch, settings);
        let open = if link.held.is_some() {
            tokio::select! {
                open = gathered => open,
                () = &mut closed => true,
            }
        } else {
            gathered.await
        };
        if link.pool.is_closed() {
            link.held = None;
        }
        if !open {
            return;
        }
        batch.retain(|write| !write.abandoned());
        commit(&mut link, batch, settings.timeout).await;
        link.release_unless_kept();
    }
}

/// Takes what is queued into `batch` (waiting for the first write, then up to
/// `max_wait` for more); `false` once the queue has closed.
async fn gather(queue: &Queue, batch: &mut Vec<Box<dyn Pending>>, settings: Settings) -> bool {
    let mut queue = queue.lock().await;
    if queue.recv_many(batch, settings.max_batch).await == 0 {
        return false;
    }
    let until = tokio::time::Instant::now() + settings.max_wait;
    while batch.len() < settings.max_batch && !settings.max_wait.is_zero() {
        let room = settings.max_batch - batch.len();
        match tokio::time::timeout_at(until, queue.recv_many(batch, room)).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    true
}

/// A committer's connection, kept from one batch to the next: taking one from
/// the pool and giving it back costs a ping each (sqlx tests a connection on
/// acquire and on release), two round trips a batch. A connection whose
/// transaction did not end cleanly (a failed COMMIT or ROLLBACK, a batch cut
/// short by its timeout) is closed, never handed back or reused.
struct Link {
    pool: AnyPool,
    held: Option<PoolConnection<Any>>,
    /// Whether to keep it between batches (not when the pool is too small
    /// to spare one).
    keep: bool,
    /// A transaction is open on it (begun, not yet ended).
    open: bool,
}

/// A committer stopped mid-transaction (the runtime shutting down) closes its
/// connection, and PostgreSQL rolls the transaction back: handed back to the
/// pool, it would serve its next user inside it.
impl Drop for Link {
    fn drop(&mut self) {
        if self.open {
            self.close();
        }
    }
}

impl Link {
    /// A connection inside a new transaction. A BEGIN that fails on a kept
    /// connection (the server restarted, or closed it while idle) is tried
    /// once more on a fresh one: nothing has been written yet.
    async fn begin(&mut self) -> Result<&mut AnyConnection, StoreError> {
        let gone = || StoreError::Unavailable("the transaction's connection has gone".into());
        let mut retried = false;
        loop {
            let kept = self.held.is_some();
            if !kept {
                self.held = Some(self.pool.acquire().await.map_err(classify)?);
            }
            let conn = self.held.as_deref_mut().ok_or_else(gone)?;
            match conn.execute("BEGIN").await {
                Ok(_) => {
                    self.open = true;
                    return self.held.as_deref_mut().ok_or_else(gone);
                }
                Err(_) if kept && !retried => {
                    retried = true;
                    self.close();
                }
                Err(e) => {
                    self.close();
                    return Err(classify(e));
                }
            }
        }
    }

    /// Ends the transaction with `statement` (COMMIT or ROLLBACK); a
    /// connection where that failed is closed.
    async fn end(&mut self, statement: &'static str) -> Result<(), StoreError> {
        let Some(conn) = self.held.as_deref_mut() else {
            return Err(StoreError::Unavailable("the transaction's connection has gone".into()));
        };
        let ended = conn.execute(statement).await.map(|_| ()).map_err(classify);
        match ended {
            Ok(()) => self.open = false,
            Err(_) => self.close(),
        }
        ended
    }

    /// Closes the connection (the pool opens another when it needs one).
    fn close(&mut self) {
        self.open = false;
        if let Some(conn) = self.held.take() {
            drop(conn.detach());
        }
    }

    fn release_unless_kept(&mut self) {
        if !self.keep {
            self.held = None;
        }
    }
}

/// Commits `batch` in one transaction; if a write failed, each alone.
async fn commit(link: &mut Link, mut batch: Vec<Box<dyn Pending>>, timeout: Duration) {
    if batch.len() <= 1 {
        for write in batch {
            alone(link, write, timeout).await;
        }
        return;
    }
    let outcome = match tokio::time::timeout(timeout, together(link, &mut batch)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            link.close();
            Err(Fault::Store(StoreError::Unavailable("the batch did not commit in time".into())))
        }
    };
    let counted = |outcome: &'static str| metrics::counter!("store_group_commits_total", "outcome" => outcome);
    match outcome {
        Ok(()) => {
            counted("committed").increment(1);
            metrics::counter!("store_group_commit_writes_total").increment(batch.len() as u64);
            batch.into_iter().for_each(|write| write.answer(Ok(())));
        }
        Err(Fault::Store(e)) => {
            counted("failed").increment(1);
            batch.into_iter().for_each(|write| write.answer(Err(e.clone())));
        }
        Err(Fault::Write) => {
            counted("retried_alone").increment(1);
            for write in batch {
                alone(link, write, timeout).await;
            }
        }
    }
}

/// Why a batch did not commit.
enum Fault {
    /// The store failed the transaction itself: every write shares the error.
    Store(StoreError),
    /// One write's statements failed: the batch was rolled back.
    Write,
}

async fn together(link: &mut Link, batch: &mut [Box<dyn Pending>]) -> Result<(), Fault> {
    let conn = link.begin().await.map_err(Fault::Store)?;
    // The writes of one `Batch` side by side, each group run as one.
    batch.sort_by_key(|write| write.kind());
    for group in batch.chunk_by_mut(|a, b| a.kind().is_some() && a.kind() == b.kind()) {
        match guarded(group, conn).await {
            Ran::Done(Ok(())) => {}
            Ran::Done(Err(_)) => {
                link.end("ROLLBACK").await.map_err(Fault::Store)?;
                return Err(Fault::Write);
            }
            Ran::Panicked(_) => {
                link.close();
                return Err(Fault::Write);
            }
        }
    }
    link.end("COMMIT").await.map_err(Fault::Store)
}

/// How a write's statements ended.
enum Ran {
    Done(Result<(), StoreError>),
    /// The job panicked: its connection's state is unknown.
    Panicked(StoreError),
}

/// Runs `group` (writes of one kind), a panic caught and turned into its error.
async fn guarded(group: &mut [Box<dyn Pending>], conn: &mut AnyConnection) -> Ran {
    let Some(runner) = group.first().map(|write| write.runner()) else { return Ran::Done(Ok(())) };
    match AssertUnwindSafe(runner(group, conn)).catch_unwind().await {
        Ok(outcome) => Ran::Done(outcome),
        Err(_) => {
            // The payload is not logged: it is a bug's text, which could
            // hold what the write carried.
            tracing::error!("a durable write panicked; its caller is answered as an internal error");
            metrics::counter!(PANICS).increment(1);
            Ran::Panicked(StoreError::Corrupt("the write panicked".into()))
        }
    }
}

/// One write in a transaction of its own, answered with its own outcome.
async fn alone(link: &mut Link, mut write: Box<dyn Pending>, timeout: Duration) {
    if write.abandoned() {
        return;
    }
    let run = async {
        let conn = link.begin().await?;
        match guarded(std::slice::from_mut(&mut write), conn).await {
            Ran::Done(Ok(())) => link.end("COMMIT").await,
            Ran::Done(Err(e)) => {
                link.end("ROLLBACK").await?;
                Err(e)
            }
            Ran::Panicked(e) => {
                link.close();
                Err(e)
            }
        }
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    let outcome = outcome.unwrap_or_else(|_| {
        link.close();
        Err(StoreError::Unavailable("the write did not commit in time".into()))
    });
    write.answer(outcome);
}
