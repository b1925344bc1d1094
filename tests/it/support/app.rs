//! [`TestApp`]: one test's broker names, ledger, config files and workers, cleaned up in `Drop`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use run_notifier::config::{Config, HumanDuration, Secret};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::Setup;
use super::events::unique;
use super::poll::wait_for_status;
use super::process::WorkerProcess;
use super::{AMQP_URL, POSTGRES_URL};

/// The broker names of one test: nothing else uses them, so tests run side by side.
#[derive(Debug, Clone)]
pub struct Names {
    pub exchange: String,
    pub queue: String,
    pub retry_prefix: String,
    pub dead: String,
    pub control: String,
    /// Every integration of every config written: each has a queue of its own to delete.
    pub integrations: std::sync::Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl Names {
    fn new() -> Self {
        let id = unique("t");
        Self {
            exchange: format!("{id}.runs"),
            queue: format!("{id}.events"),
            // The default: tiers are named after the event queue.
            retry_prefix: format!("{id}.events.retry"),
            dead: format!("{id}.dead"),
            control: format!("{id}.control"),
            integrations: Default::default(),
        }
    }
}

/// Where the test's ledger lives.
enum LedgerStore {
    /// A SQLite file in the test's own directory.
    Sqlite(PathBuf),
    /// A fresh PostgreSQL schema, reached at `url` (perhaps through a proxy).
    Postgres { url: String, schema: String },
}

/// A worker running in this process.
struct InProcessWorker {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    admin: SocketAddr,
}

/// One test's world: its broker names and connection, its ledger, a directory for config files
/// and logs, and its workers. Dropping it (the test ended, passed or failed) stops its
/// in-process worker and deletes its queues, exchanges and PostgreSQL schema.
pub struct TestApp {
    pub names: Names,
    ledger: LedgerStore,
    pub(super) dir: tempfile::TempDir,
    pub(super) connection: lapin::Connection,
    /// The test's own channel, for what the helpers do not cover.
    pub channel: lapin::Channel,
    worker: Option<InProcessWorker>,
    /// The config file written last: what [`TestApp::cli`] runs against.
    config_file: Mutex<Option<PathBuf>>,
}

impl TestApp {
    /// A test app with a SQLite ledger of its own.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = LedgerStore::Sqlite(dir.path().join("ledger.db"));
        Self::with(dir, ledger).await
    }

    /// A test app whose ledger is a fresh schema on the local PostgreSQL.
    pub async fn with_postgres() -> Self {
        Self::with_postgres_through(5432).await
    }

    /// Like [`TestApp::with_postgres`], the workers reaching PostgreSQL through `port` (a
    /// [`super::proxy::Proxy`] the test can cut).
    pub async fn with_postgres_through(port: u16) -> Self {
        let schema = unique("ledger").replace('-', "_");
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(POSTGRES_URL)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 with database `test`");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        // Plain text, as before the ledger had TLS (the shared server has `ssl = on`, which
        // `prefer` would take): these tests are about the ledger's logic, and their timings were
        // tuned on plain connections; over the debug build's TLS the two-worker test failed its
        // final empty-queue check in 3 of 4 full runs. TLS has its own tests (`tls::`).
        let url = format!(
            "postgres://postgres@127.0.0.1:{port}/test?sslmode=disable&options=-c%20search_path%3D{schema}"
        );
        let dir = tempfile::tempdir().unwrap();
        Self::with(dir, LedgerStore::Postgres { url, schema }).await
    }

    async fn with(dir: tempfile::TempDir, ledger: LedgerStore) -> Self {
        let connection = run_notifier::broker::connect(AMQP_URL, "tests")
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        Self {
            names: Names::new(),
            ledger,
            dir,
            connection,
            channel,
            worker: None,
            config_file: Mutex::new(None),
        }
    }

    /// The test's config: its names, its ledger, admin port 0 (a process takes a free one and logs it; an
    /// in-process worker gets a listener bound by the harness), quick retries (4 attempts,
    /// 300 ms doubling to 1 s, no jitter, `Retry-After` honoured up to 10 s), prefetch 16, a
    /// 5 s shutdown grace; then `change`. Written to a file of its own, which [`TestApp::cli`]
    /// uses from then on.
    pub fn config(&self, change: impl FnOnce(&mut Setup)) -> (PathBuf, Config) {
        let mut setup = Setup::new(|config| {
            let broker = &mut config.broker;
            broker.url = Secret::new(AMQP_URL);
            broker.exchange = self.names.exchange.clone();
            broker.queue = self.names.queue.clone();
            broker.dead_letter_queue = self.names.dead.clone();
            broker.control_exchange = self.names.control.clone();
            broker.prefetch = 16;
            broker.reconnect_max_delay = HumanDuration::secs(1);
            config.worker.shutdown_grace = HumanDuration::secs(5);
            config.retry.max_attempts = 4;
            config.retry.initial_delay = HumanDuration::millis(300);
            config.retry.max_delay = HumanDuration::secs(1);
            config.retry.jitter = false;
            config.retry.max_retry_after = HumanDuration::secs(10);
            // Any free port: the process says which (see `WorkerProcess::admin_url`).
            config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            // Absolute: a config file's relative paths are relative to its (temporary) folder.
            config.templates_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
            match &self.ledger {
                LedgerStore::Sqlite(path) => config.ledger.path = path.clone(),
                LedgerStore::Postgres { url, .. } => config.ledger.url = Some(Secret::new(url)),
            }
        });
        change(&mut setup);
        let (text, config) = setup.finish();
        self.names
            .integrations
            .lock()
            .unwrap()
            .extend(config.integrations.iter().map(|i| i.name().to_string()));
        let path = self.dir.path().join(format!("{}.yaml", unique("config")));
        std::fs::write(&path, text).unwrap();
        *self.config_file.lock().unwrap() = Some(path.clone());
        (path, config)
    }

    /// Starts a worker in this process on the test's config changed by `change`, and waits
    /// until it is ready. One at a time: [`TestApp::stop_worker`] ends it.
    pub async fn spawn_worker(&mut self, change: impl FnOnce(&mut Setup)) {
        assert!(self.worker.is_none(), "one in-process worker at a time");
        // Bound here and handed over: no other test can take the port in between.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = listener.local_addr().unwrap();
        let (_, config) = self.config(|config| {
            config.admin.listen = admin;
            change(config);
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_notifier::app::run_with_admin(
            config,
            listener,
            shutdown.clone(),
        ));
        self.worker = Some(InProcessWorker {
            shutdown,
            task,
            admin,
        });
        wait_for_status(&self.admin_url("/readyz"), 200).await;
    }

    /// Stops the in-process worker as SIGTERM would, and asserts it ended without an error.
    pub async fn stop_worker(&mut self) {
        let worker = self.worker.take().expect("a worker was spawned");
        worker.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), worker.task)
            .await
            .expect("the worker stops")
            .expect("the worker task did not panic")
            .expect("the worker ended without an error");
    }

    /// `http://<admin listener of the in-process worker><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        let worker = self.worker.as_ref().expect("a worker was spawned");
        format!("http://{}{path}", worker.admin)
    }

    /// Starts `run-notifier run` as its own process on the test's config changed by `change`,
    /// and waits until it is ready. The process is killed if the handle is dropped.
    pub async fn spawn_process(&self, change: impl FnOnce(&mut Setup)) -> WorkerProcess<'_> {
        self.spawn_process_with_env(&[], change).await
    }

    /// Starts `run-notifier run` as its own process like [`TestApp::spawn_process`], without
    /// waiting until it is ready.
    pub fn launch_process(&self, change: impl FnOnce(&mut Setup)) -> WorkerProcess<'_> {
        let (path, _) = self.config(change);
        WorkerProcess::launch(self, &path, &[])
    }

    /// [`TestApp::spawn_process`] with extra environment variables.
    pub async fn spawn_process_with_env(
        &self,
        env: &[(&str, &str)],
        change: impl FnOnce(&mut Setup),
    ) -> WorkerProcess<'_> {
        let (path, _) = self.config(change);
        WorkerProcess::start(self, &path, env).await
    }

    /// The config file written last (by `config`, `spawn_worker` or `spawn_process`).
    pub fn config_file(&self) -> PathBuf {
        self.config_file
            .lock()
            .unwrap()
            .clone()
            .expect("no config written yet")
    }

    /// Runs `run-notifier args… --config <the config file written last>`, asserts success and
    /// returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        super::cli::succeed(&self.config_file(), args)
    }

    /// The test's own directory (config files, process logs, the SQLite ledger).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown.cancel();
            worker.task.abort();
        }
        let names = self.names.clone();
        let schema = match &self.ledger {
            LedgerStore::Postgres { schema, .. } => Some(schema.clone()),
            LedgerStore::Sqlite(_) => None,
        };
        // `Drop` cannot await, and may run while the test's runtime unwinds a panic: clean up
        // on a thread with a runtime of its own.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(super::broker::delete_everything(&names, schema.as_deref()))
        })
        .join();
        match cleaned {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("test cleanup of {}: {err}", self.names.queue),
            Err(_) => eprintln!("test cleanup of {} panicked", self.names.queue),
        }
    }
}
