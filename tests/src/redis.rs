//! Redis of a test: its own database and key prefix, a dump of the values
//! under a prefix for the card-number scans, and a Redis that never answers.
use deadpool_redis::redis;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Tests use their own Redis database (15) so they never meet local or
/// benchmark data; `TEST_REDIS_URL` overrides it.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// Every value stored under `prefix` in Redis, as lossy text (for PAN scans).
pub async fn redis_values(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut values = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let raw: Vec<Vec<u8>> = if kind == "hash" {
            redis::cmd("HVALS").arg(&key).query_async(&mut conn).await.unwrap()
        } else {
            vec![redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap()]
        };
        values.extend(raw.iter().map(|v| String::from_utf8_lossy(v).into_owned()));
        values.push(key);
    }
    values
}

/// A "Redis" that accepts connections and never answers: what a hung server
/// looks like to a client. Its connections close when it is closed or dropped.
pub struct SilentRedis {
    /// `redis://` URL of the listener.
    pub url: String,
    held: JoinHandle<()>,
}

impl SilentRedis {
    pub async fn start() -> Self {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = silent.accept().await {
                conns.push(c);
            }
        });
        Self { url, held }
    }

    /// Stops listening and closes every connection it holds.
    pub fn close(self) {}
}

impl Drop for SilentRedis {
    fn drop(&mut self) {
        self.held.abort();
    }
}
