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
//! write them all with one multi-row statement (`super::batched`). When that
//! call is a single statement (as its `OneStatement` says) and the batch is
//! all of it, the committer sends it on a connection that
//! answered within `WARM` without BEGIN and COMMIT: PostgreSQL commits it,
//! atomically and durably, before answering — one round trip, not three.
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
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::batched::{BEGIN_PINNED, PIN_SESSION, on_postgres};
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

/// Whether a `Batch` writes these writes with one statement on `conn`, which
/// PostgreSQL commits by itself, atomically and durably, when it ends: a
/// batch of only such writes runs without BEGIN and COMMIT (`autocommitted`).
/// Whatever the `Batch` runs after that statement may only read: a failure
/// there leaves the writes committed, answered with the error, not re-run.
pub type OneStatement<D> = fn(&[&D], &AnyConnection) -> bool;

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
    /// Tells whether a group of writes of its kind is one statement.
    fn one_statement(&self) -> GroupCheck;
    fn as_any(&mut self) -> &mut dyn AnyType;
    /// Sends the caller the output of the last run, or `outcome`'s error.
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
}

/// Runs writes of one kind, setting each one's output.
type Runner = for<'c> fn(&'c mut [Box<dyn Pending>], &'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>>;

/// Whether writes of one kind are one statement on that connection.
type GroupCheck = fn(&mut [Box<dyn Pending>], &AnyConnection) -> bool;

enum Statements<D, T> {
    One(Job<D, T>),
    Many(Batch<D, T>, OneStatement<D>),
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
            Statements::Many(batch, _) => Some((TypeId::of::<Self>(), batch as usize)),
        }
    }

    fn runner(&self) -> Runner {
        run_group::<D, T>
    }

    fn one_statement(&self) -> GroupCheck {
        one_statement_group::<D, T>
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
            Some(Statements::Many(batch, _)) => *batch,
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

/// Whether `group` (writes of one kind, all `Write<D, T>`) is one statement.
fn one_statement_group<D: Send + Sync + 'static, T: Send + 'static>(
    group: &mut [Box<dyn Pending>],
    conn: &AnyConnection,
) -> bool {
    let writes: Option<Vec<&mut Write<D, T>>> =
        group.iter_mut().map(|w| w.as_any().downcast_mut::<Write<D, T>>()).collect();
    let Some(writes) = writes else { return false };
    let Some(Statements::Many(_, one)) = writes.first().map(|w| &w.statements) else { return false };
    let data: Vec<&D> = writes.iter().map(|w| &w.data).collect();
    one(&data, conn)
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
    /// share its transaction, by one call of `batch`; when `one` says that
    /// call is one statement and the batch is all of it, on a connection in
    /// use, that statement alone, without BEGIN and COMMIT (one round trip,
    /// not three).
    pub async fn write_batched<D, T>(&self, data: D, batch: Batch<D, T>, one: OneStatement<D>) -> Result<T, StoreError>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.queue_write(data, Statements::Many(batch, one)).await
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
    let mut link = Link { pool, held: None, keep: settings.keep, open: false, used: None };
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
    /// When it last answered a statement that ended a transaction.
    used: Option<Instant>,
}

/// A kept connection that answered within this long is taken to be alive
/// for a statement without BEGIN (`Link::warm`): one idle for longer may have
/// been dropped by a server that restarted meanwhile, which only a BEGIN
/// (tried again on a fresh connection when it fails) finds out before
/// anything is written. PostgreSQL does not restart within it.
const WARM: Duration = Duration::from_millis(100);

/// A committer stopped mid-transaction (the runtime shutting down) closes its
/// connection, and PostgreSQL rolls the transaction back: handed back to the
/// pool, it would serve its next user inside it. A stopped committer closes
/// the connection it kept, too: that one plans with `PIN_SESSION`'s settings.
impl Drop for Link {
    fn drop(&mut self) {
        if self.open || self.keep {
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
                let mut conn = self.pool.acquire().await.map_err(classify)?;
                if self.keep && on_postgres(&conn) {
                    conn.execute(sqlx::raw_sql(PIN_SESSION)).await.map_err(classify)?;
                }
                self.held = Some(conn);
            }
            let conn = self.held.as_deref_mut().ok_or_else(gone)?;
            let begin = if !self.keep && on_postgres(conn) { BEGIN_PINNED } else { "BEGIN" };
            match conn.execute(sqlx::raw_sql(begin)).await {
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
            Ok(()) => {
                self.open = false;
                self.used = Some(Instant::now());
            }
            Err(_) => self.close(),
        }
        ended
    }

    /// The kept connection, if it answered within `WARM` and is PostgreSQL's
    /// (SQLite has no round trip to save).
    fn warm(&mut self) -> Option<&mut AnyConnection> {
        let recent = self.used.is_some_and(|at| at.elapsed() < WARM);
        let conn = self.held.as_deref_mut().filter(|_| recent && !self.open)?;
        on_postgres(conn).then_some(conn)
    }

    /// Closes the connection (the pool opens another when it needs one).
    fn close(&mut self) {
        self.open = false;
        self.used = None;
        if let Some(conn) = self.held.take() {
            drop(conn.detach());
        }
    }

    fn release_unless_kept(&mut self) {
        if !self.keep {
            self.held = None;
            self.used = None;
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
    let outcome = match tokio::time::timeout(timeout, statement_or_together(link, &mut batch)).await {
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

/// `batch` as one statement without a transaction if it is one (all of one
/// kind, `Pending::one_statement`) and the connection warm, else `together`.
async fn statement_or_together(link: &mut Link, batch: &mut [Box<dyn Pending>]) -> Result<(), Fault> {
    let one_kind = batch.windows(2).all(|w| w[0].kind().is_some() && w[0].kind() == w[1].kind());
    if one_kind && link.warm().is_some_and(|conn| batch[0].one_statement()(batch, conn)) {
        return autocommitted(link, batch).await.map_err(|failed| match failed {
            Failed::Refused(_) => Fault::Write,
            Failed::Unknown(e) => Fault::Store(e),
        });
    }
    together(link, batch).await
}

/// How a statement run without a transaction failed.
enum Failed {
    /// The database refused it (a conflict, a value it cannot hold): nothing
    /// was written.
    Refused(StoreError),
    /// The connection failed, the answer could not be read or the code
    /// panicked: the statement may have committed, so the writes are not run
    /// again; the connection is closed.
    Unknown(StoreError),
}

/// Runs `group`, one statement (`OneStatement`), on the warm connection
/// without BEGIN and COMMIT: PostgreSQL commits it, durably, before it
/// answers.
async fn autocommitted(link: &mut Link, group: &mut [Box<dyn Pending>]) -> Result<(), Failed> {
    let conn = link.warm().ok_or_else(|| Failed::Unknown(StoreError::Unavailable("no connection".into())))?;
    let failed = match guarded(group, conn).await {
        Ran::Done(Ok(())) => {
            link.used = Some(Instant::now());
            return Ok(());
        }
        Ran::Done(Err(e @ (StoreError::Conflict(_) | StoreError::Invalid(_)))) => return Err(Failed::Refused(e)),
        Ran::Done(Err(e)) | Ran::Panicked(e) => e,
    };
    link.close();
    Err(Failed::Unknown(failed))
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
        let alone = std::slice::from_mut(&mut write);
        if link.warm().is_some_and(|conn| alone[0].kind().is_some() && alone[0].one_statement()(alone, conn)) {
            return autocommitted(link, alone).await.map_err(|(Failed::Refused(e) | Failed::Unknown(e))| e);
        }
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
