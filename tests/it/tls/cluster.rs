//! A PostgreSQL of one test, with TLS on: initialised from the installed server binaries in a
//! temporary folder, on a free port, and stopped and deleted when dropped. The shared server on
//! 5432 is never touched. The server refuses to run as root, so as root it runs as `postgres`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Row;

use super::pki::{Pki, set_mode};

/// The role that must log in with a client certificate (`cert` in `pg_hba.conf`); the
/// certificate's common name is the role's name.
pub const CERT_USER: &str = "certuser";

/// A running private PostgreSQL cluster, with `ssl = on` and a server certificate for
/// `localhost` signed by the test's CA.
pub struct Cluster {
    pub port: u16,
    dir: tempfile::TempDir,
    server: Server,
}

impl Cluster {
    /// Initialises and starts a cluster whose server certificate `pki` signs for `localhost`;
    /// client certificates are checked against the same CA.
    pub fn start(pki: &Pki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::find(dir.path());
        let data = dir.path().join("data");
        let issued = pki.issue("postgres-server", &["localhost"]);
        let copy = |name: &str, from: &Path| {
            let to = dir.path().join(name);
            std::fs::copy(from, &to).unwrap();
            to
        };
        let (cert, key, ca) = (
            copy("server.crt", &issued.cert),
            copy("server.key", &issued.key),
            copy("ca.crt", &pki.ca_file()),
        );
        set_mode(&key, 0o600);
        server.hand_over(dir.path());
        server.run(server.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ]));
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n\
             fsync = off\nshared_buffers = 16MB\nmax_connections = 40\n",
            dir.path().display(),
            cert.display(),
            key.display(),
            ca.display(),
        ));
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
                 host all {CERT_USER} 127.0.0.1/32 reject\n\
                 host all all 127.0.0.1/32 trust\n"
            ),
        )
        .unwrap();
        server.hand_over(dir.path());
        let log = dir.path().join("server.log");
        // A port found free may be taken before the server binds it: then try another.
        for _ in 0..5 {
            let port = free_port();
            let started = server
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-w", "-t", "60", "-o", &format!("-p {port}"), "-l"])
                .arg(&log)
                .arg("start")
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            if started.success() {
                return Self { port, dir, server };
            }
            eprintln!(
                "the private PostgreSQL did not start on port {port}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("the private PostgreSQL did not start");
    }

    /// `postgres://<user>@<host>:<port>/postgres?<query>`.
    pub fn url(&self, user: &str, host: &str, query: &str) -> String {
        format!("postgres://{user}@{host}:{}/postgres?{query}", self.port)
    }

    /// A connection over the Unix socket, for the test's own queries.
    pub async fn admin(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = format!(
            "postgres://postgres@localhost/postgres?host={}&port={}",
            self.dir.path().display(),
            self.port
        );
        sqlx::AnyPool::connect(&url).await.unwrap()
    }

    /// Creates the role that logs in with a client certificate.
    pub async fn create_cert_user(&self) {
        let admin = self.admin().await;
        // PostgreSQL 15 and later let only the owner create tables in `public`.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {CERT_USER} LOGIN; GRANT CREATE ON SCHEMA public TO {CERT_USER}"
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }

    /// The TCP connections of clients as `pg_stat_ssl` sees them: (encrypted, all).
    pub async fn tcp_connections(&self) -> (i64, i64) {
        let admin = self.admin().await;
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        admin.close().await;
        (row.get(0), row.get(1))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .server
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// The installed PostgreSQL server's binaries, and whether they must run as `postgres`.
struct Server {
    bin: PathBuf,
    /// The tests run as root, which the server refuses.
    as_postgres: bool,
}

impl Server {
    /// The newest installed version (Debian keeps its binaries out of `PATH`); `dir` is a
    /// folder the tests made, to learn whether they run as root.
    fn find(dir: &Path) -> Self {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL in /usr/lib/postgresql (scripts/services.sh installs it)")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let version = path.file_name()?.to_str()?.parse().ok()?;
                Some((version, path.join("bin")))
            })
            .filter(|(_, bin)| bin.join("initdb").exists())
            .collect();
        versions.sort();
        Self {
            bin: versions
                .pop()
                .expect("an initdb in /usr/lib/postgresql/*/bin")
                .1,
            as_postgres: dir.metadata().unwrap().uid() == 0,
        }
    }

    /// The binary `name`, run as `postgres` when the tests run as root.
    fn command(&self, name: &str) -> Command {
        if self.as_postgres {
            // In /usr/sbin, which a root shell's PATH need not hold.
            let runuser = Path::new("/usr/sbin/runuser");
            let mut command = Command::new(if runuser.exists() {
                runuser
            } else {
                Path::new("runuser")
            });
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join(name));
            command
        } else {
            Command::new(self.bin.join(name))
        }
    }

    fn run(&self, command: &mut Command) {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// As root, gives the folder and everything in it to `postgres`, which runs the server.
    fn hand_over(&self, dir: &Path) {
        if self.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown -R postgres {}", dir.display());
        }
    }
}

/// A port free on 127.0.0.1 a moment ago. PostgreSQL cannot be asked to bind port 0 and say
/// which it took, so the caller tries again when another process took it in between.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
