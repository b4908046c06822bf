//! The PostgreSQL engine, for replicas that share their state: a small pool of
//! connections, schema migrations numbered in `mcp_warden_schema` and applied at start
//! under an advisory lock (replicas starting together migrate once), writes in
//! transactions that lock the row they change (`SELECT … FOR UPDATE`), and a `NOTIFY`
//! in every write, which one listening connection per replica turns into the store's
//! change counter. While that connection is down, the counter is bumped every second
//! instead (a poll), and once when it is back, so a waiting call never misses a change.

mod rows;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio_postgres::{AsyncMessage, Client, Config};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{BucketAsk, Done, GrantRow, RequestRow, Rule, StoreError};

/// Each migration takes the schema from the version before it to its own number.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE mcp_warden_requests (
    id TEXT PRIMARY KEY,
    binding TEXT NOT NULL,
    call TEXT NOT NULL,
    status TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX mcp_warden_requests_binding ON mcp_warden_requests (binding, status);
CREATE TABLE mcp_warden_verdicts (
    id TEXT NOT NULL REFERENCES mcp_warden_requests (id),
    approver TEXT NOT NULL,
    approve BOOLEAN NOT NULL,
    comment TEXT,
    at BIGINT NOT NULL,
    confirmed TEXT,
    seq BIGSERIAL,
    PRIMARY KEY (id, approver)
);
CREATE TABLE mcp_warden_grants (
    id TEXT PRIMARY KEY,
    grantee TEXT NOT NULL,
    on_behalf_of TEXT,
    tools TEXT NOT NULL,
    tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    status TEXT NOT NULL,
    revoked_by TEXT,
    task TEXT
);
",
    "
CREATE TABLE mcp_warden_buckets (
    rule TEXT NOT NULL,
    identity TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (rule, identity)
);
",
    "
CREATE TABLE mcp_warden_memories (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    expires BIGINT NOT NULL
);
CREATE INDEX mcp_warden_memories_expires ON mcp_warden_memories (expires);
CREATE TABLE mcp_warden_pins (
    pin TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
CREATE TABLE mcp_warden_witness (
    seq BIGSERIAL PRIMARY KEY,
    replica TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX mcp_warden_witness_replica ON mcp_warden_witness (replica, seq);
",
];

/// The channel every write notifies and every replica listens on.
const CHANNEL: &str = "mcp_warden";
/// Any advisory-lock key of our own: held while migrating.
const MIGRATION_LOCK: i64 = 0x6d63_7077_6172_646e;
/// Connections kept open between uses.
const IDLE: usize = 8;
/// The longest an operation waits for the database: then the call it serves is refused.
const PATIENCE: Duration = Duration::from_secs(5);
/// How often waiting calls look again while notifications are down.
const POLL: Duration = Duration::from_secs(1);
/// How often a replica drops expired memories.
const SWEEP: Duration = Duration::from_secs(60);

type Tls = tokio_postgres_rustls::MakeRustlsConnect;

/// The engine.
pub(super) struct Postgres {
    pool: Arc<Pool>,
    changes: watch::Sender<u64>,
    shown: String,
    /// When this replica last dropped expired memories.
    swept: Mutex<Option<std::time::Instant>>,
    /// Stops the listening task when the store goes.
    _listening: DropGuard,
}

struct Pool {
    config: Config,
    tls: Tls,
    idle: Mutex<Vec<Client>>,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(e.to_string())
}

impl Pool {
    async fn connect(&self) -> Result<Client, StoreError> {
        open(&self.config, self.tls.clone()).await
    }

    async fn take(&self) -> Result<Client, StoreError> {
        loop {
            let reused = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match reused {
                Some(c) if c.is_closed() => continue,
                Some(c) => return Ok(c),
                None => return self.connect().await,
            }
        }
    }

    fn give(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if !client.is_closed() && idle.len() < IDLE {
            idle.push(client);
        }
    }
}

/// The connection settings in `url`, with the password from `PGPASSWORD` when the URL
/// has none; and the URL as it may be shown (no password).
/// A connection to the database `config` names, its I/O driven by a task of its own.
async fn open(config: &Config, tls: Tls) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(tls).await.map_err(failed)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("a state database connection ended: {e}");
        }
    });
    Ok(client)
}

fn settings(url: &str) -> Result<(Config, String), StoreError> {
    let mut config: Config = url.parse().map_err(|e| StoreError::Open {
        path: "[store] url".into(),
        reason: format!("{e}: write `postgres://USER@HOST:PORT/DATABASE`"),
    })?;
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    config.connect_timeout(PATIENCE);
    config.application_name("mcp-warden");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let shown = format!(
        "postgres://{}@{}:{port}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    );
    Ok((config, shown))
}

/// TLS for servers that ask for it (`sslmode=require`), verified against the system's
/// roots.
fn tls() -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(c) => tokio_postgres_rustls::MakeRustlsConnect::new(c),
        Err(e) => {
            tracing::warn!("no TLS to the state database: {e}");
            let roots = rustls::RootCertStore::empty();
            tokio_postgres_rustls::MakeRustlsConnect::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        }
    }
}

impl Postgres {
    pub async fn connect(
        url: &str,
        changes: watch::Sender<u64>,
        heard: broadcast::Sender<String>,
    ) -> Result<Self, StoreError> {
        let (config, shown) = settings(url)?;
        let pool = Arc::new(Pool {
            config,
            tls: tls(),
            idle: Mutex::default(),
        });
        let mut first = pool.connect().await.map_err(|e| StoreError::Open {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        migrate(&mut first, &shown).await?;
        pool.give(first);
        let stop = CancellationToken::new();
        tokio::spawn(listen(pool.clone(), (changes.clone(), heard), stop.clone()));
        Ok(Self {
            pool,
            changes,
            shown,
            swept: Mutex::default(),
            _listening: stop.drop_guard(),
        })
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Run `work` on a pooled connection, bounded by [`PATIENCE`].
    async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let attempt = async {
            let mut client = self.pool.take().await?;
            let out = work(&mut client).await;
            self.pool.give(client);
            out
        };
        tokio::time::timeout(PATIENCE, attempt).await.map_err(|_| {
            StoreError::Postgres(format!("no answer within {} s", PATIENCE.as_secs()))
        })?
    }

    /// A write: `work` in a transaction that notifies every replica when it commits.
    async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let out = self
            .run(async move |client| {
                let tx = client.transaction().await.map_err(failed)?;
                let out = work(&tx).await?;
                tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
                    .await
                    .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(out)
            })
            .await?;
        super::bump(&self.changes);
        Ok(out)
    }
}

/// Bring the schema up to date, one replica at a time.
/// The audit witness's table (`[[witness]] store = true`): each replica's checkpoints (or
/// records) appended as its log makes them durable, read back by `audit verify`. One
/// connection of its own, outside the pool: the witness delivers from a thread of its own.
pub struct WitnessTable {
    client: Client,
}

impl WitnessTable {
    /// Connect to `url` (the schema is the replicas' to create: a gateway makes it at start).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (config, _) = settings(url)?;
        Ok(Self {
            client: open(&config, tls()).await?,
        })
    }

    /// Whether the connection is gone (make a new one).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Append `lines` (whole records, each with its newline) as `replica`'s, in order.
    pub async fn append(&self, replica: &str, lines: &[&[u8]]) -> Result<(), StoreError> {
        let texts: Vec<&str> = lines
            .iter()
            .map(|l| std::str::from_utf8(l).map(str::trim_end))
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        tokio::time::timeout(
            PATIENCE,
            self.client.execute(
                "INSERT INTO mcp_warden_witness (replica, line) SELECT $1, l FROM unnest($2::text[]) WITH ORDINALITY AS u (l, n) ORDER BY n",
                &[&replica, &texts],
            ),
        )
        .await
        .map_err(|_| StoreError::Postgres(format!("no answer within {} s", PATIENCE.as_secs())))?
        .map_err(failed)?;
        Ok(())
    }

    /// Every line `replica`'s log gave the witness, in the order received, one a line.
    pub async fn lines(&self, replica: &str) -> Result<Vec<u8>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT line FROM mcp_warden_witness WHERE replica = $1 ORDER BY seq",
                &[&replica],
            )
            .await
            .map_err(failed)?;
        let mut out = Vec::new();
        for row in rows {
            let line: &str = row.get(0);
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        Ok(out)
    }
}

async fn migrate(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mcp_warden_schema (version INTEGER NOT NULL)")
        .await
        .map_err(failed)?;
    let found: Option<i32> = tx
        .query_opt("SELECT max(version) FROM mcp_warden_schema", &[])
        .await
        .map_err(failed)?
        .and_then(|r| r.get(0));
    let found = usize::try_from(found.unwrap_or(0)).unwrap_or(0);
    if found > MIGRATIONS.len() {
        return Err(StoreError::Newer {
            path: shown.to_string(),
            found: found as u32,
            known: MIGRATIONS.len(),
        });
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(found) {
        tx.batch_execute(migration).await.map_err(failed)?;
        let version = i32::try_from(done + 1).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM mcp_warden_schema", &[])
            .await
            .map_err(failed)?;
        tx.execute(
            "INSERT INTO mcp_warden_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Keep one connection listening on [`CHANNEL`], bumping `changes` at every
/// notification; while it is down, bump every [`POLL`] instead.
async fn listen(
    pool: Arc<Pool>,
    (changes, heard): (watch::Sender<u64>, broadcast::Sender<String>),
    stop: CancellationToken,
) {
    let mut was_down = false;
    while !stop.is_cancelled() {
        let listening = async {
            let (client, mut connection) = pool
                .config
                .connect(pool.tls.clone())
                .await
                .map_err(failed)?;
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            let relay = {
                let (changes, heard) = (changes.clone(), heard.clone());
                async move {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) if n.payload().is_empty() => {
                                super::bump(&changes)
                            }
                            // An announcement (a reload, say): for whoever listens.
                            Ok(AsyncMessage::Notification(n)) => {
                                let _ = heard.send(n.payload().to_string());
                            }
                            Ok(_) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    "the connection closed".to_string()
                }
            };
            let subscribe = async {
                client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .map_err(failed)?;
                // Whatever changed while nobody listened.
                super::bump(&changes);
                if was_down {
                    tracing::info!("state database notifications are back");
                }
                std::future::pending::<Result<(), StoreError>>().await
            };
            tokio::select! {
                why = relay => Err(StoreError::Postgres(why)),
                e = subscribe => e,
            }
        };
        let ended = tokio::select! {
            _ = stop.cancelled() => return,
            ended = listening => ended,
        };
        if let Err(e) = ended
            && !std::mem::replace(&mut was_down, true)
        {
            tracing::warn!(
                "state database notifications are down ({e}); waiting calls look again every second"
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL) => super::bump(&changes),
        }
    }
}

impl super::Engine for Postgres {
    fn shared(&self) -> bool {
        true
    }

    fn take_tokens(&self, asks: Vec<BucketAsk>) -> Done<'_, Option<(usize, f64)>> {
        Box::pin(self.run(async move |c| {
            let tx = c.transaction().await.map_err(failed)?;
            let out = rows::take_tokens(&tx, &asks, crate::clock::now_ms()).await?;
            if out.is_none() {
                tx.commit().await.map_err(failed)?;
            }
            Ok(out)
        }))
    }

    fn announce(&self, message: String) -> Done<'_, ()> {
        Box::pin(self.run(async move |c| {
            c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &message])
                .await
                .map_err(failed)?;
            Ok(())
        }))
    }

    fn insert_request(&self, row: RequestRow) -> Done<'_, ()> {
        Box::pin(self.write(async move |tx| rows::insert_request(tx, &row).await))
    }

    fn request(&self, id: String) -> Done<'_, Option<RequestRow>> {
        Box::pin(self.run(async move |c| rows::request(c, &id, false).await))
    }

    fn requests(&self, status: Option<String>) -> Done<'_, Vec<RequestRow>> {
        Box::pin(self.run(async move |c| rows::requests(c, status.as_deref()).await))
    }

    fn find_request(
        &self,
        binding: String,
        status: String,
        now: u64,
    ) -> Done<'_, Option<RequestRow>> {
        Box::pin(self.run(async move |c| rows::find_request(c, &binding, &status, now).await))
    }

    fn due_requests(&self, status: String, now: u64) -> Done<'_, Vec<String>> {
        Box::pin(self.run(async move |c| rows::due_requests(c, &status, now).await))
    }

    fn update_request(&self, id: String, rule: Rule<RequestRow>) -> Done<'_, Option<RequestRow>> {
        Box::pin(self.write(async move |tx| rows::update_request(tx, &id, rule).await))
    }

    fn insert_grant(&self, row: GrantRow) -> Done<'_, ()> {
        Box::pin(self.write(async move |tx| rows::insert_grant(tx, &row).await))
    }

    fn grant(&self, id: String) -> Done<'_, Option<GrantRow>> {
        Box::pin(self.run(async move |c| rows::grant(c, &id).await))
    }

    fn grants(&self) -> Done<'_, Vec<GrantRow>> {
        Box::pin(self.run(async move |c| rows::grants(c).await))
    }

    fn update_grant(&self, id: String, rule: Rule<GrantRow>) -> Done<'_, Option<GrantRow>> {
        Box::pin(self.write(async move |tx| rows::update_grant(tx, &id, rule).await))
    }

    fn memories(&self, keys: Vec<String>, now: u64) -> Done<'_, Vec<String>> {
        Box::pin(self.run(async move |c| rows::memories(c, &keys, now).await))
    }

    fn update_memory(
        &self,
        key: String,
        now: u64,
        expires: u64,
        rule: Rule<String>,
    ) -> Done<'_, ()> {
        // Expired rows are dropped at most once a minute, in a statement of its own (in
        // the row's transaction it could wait on a replica that waits on this one).
        let sweep = {
            let mut swept = self.swept.lock().unwrap_or_else(PoisonError::into_inner);
            let due = swept.is_none_or(|at| at.elapsed() >= SWEEP);
            if due {
                *swept = Some(std::time::Instant::now());
            }
            due
        };
        Box::pin(self.run(async move |c| {
            if sweep {
                rows::sweep_memories(c, now).await?;
            }
            let tx = c.transaction().await.map_err(failed)?;
            rows::update_memory(&tx, &key, now, expires, rule).await?;
            tx.commit().await.map_err(failed)
        }))
    }

    fn keep_pin(&self, pin: String, definition: String) -> Done<'_, ()> {
        Box::pin(self.run(async move |c| {
            c.execute(
                "INSERT INTO mcp_warden_pins (pin, definition) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&pin, &definition],
            )
            .await
            .map_err(failed)?;
            Ok(())
        }))
    }

    fn pin(&self, pin: String) -> Done<'_, Option<String>> {
        Box::pin(self.run(async move |c| {
            let row = c
                .query_opt(
                    "SELECT definition FROM mcp_warden_pins WHERE pin = $1",
                    &[&pin],
                )
                .await
                .map_err(failed)?;
            Ok(row.map(|r| r.get(0)))
        }))
    }
}
