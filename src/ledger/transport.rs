//! How the PostgreSQL ledger's connections are protected, said once when it opens: TLS with the
//! server verified, TLS without verification, or plain text. A remote ledger reached without
//! verification gets a WARN, so a weak `sslmode` (or `prefer` falling back to plain text) shows
//! at start rather than in an audit.

use std::net::IpAddr;
use std::str::FromStr;

use sqlx::AnyPool;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tracing::{info, warn};

/// Logs how connections to the ledger at `url` are protected, asking the server whether this
/// one is encrypted (`pg_stat_ssl`) since `prefer` decides per connection.
pub(super) async fn report(pool: &AnyPool, url: &str) {
    let Ok(options) = PgConnectOptions::from_str(url) else {
        return;
    };
    let mode = options.get_ssl_mode();
    let encrypted: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pool)
            .await
            .ok();
    let encrypted = encrypted.unwrap_or(!matches!(mode, PgSslMode::Disable | PgSslMode::Allow));
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    match assess(&host, mode, encrypted) {
        Assessment::Fine(message) => info!(host, sslmode = name(mode), "{message}"),
        Assessment::Exposed(message) => warn!(host, sslmode = name(mode), "{message}"),
    }
}

/// What to tell the operator about a ledger connection.
#[derive(Debug, PartialEq, Eq)]
enum Assessment {
    Fine(&'static str),
    /// A remote ledger that anyone on the path could read or pose as.
    Exposed(&'static str),
}

fn assess(host: &str, mode: PgSslMode, encrypted: bool) -> Assessment {
    let local = is_local(host);
    match (encrypted, mode) {
        (true, PgSslMode::VerifyFull) => Assessment::Fine(
            "ledger connections use TLS; the server's certificate and name are verified",
        ),
        (true, PgSslMode::VerifyCa) => Assessment::Fine(
            "ledger connections use TLS; the server's certificate is verified, not its name (sslmode=verify-full checks both)",
        ),
        (true, _) if local => {
            Assessment::Fine("ledger connections use TLS, not verified (a local server)")
        }
        (true, _) => Assessment::Exposed(
            "ledger connections use TLS without verifying the server: anyone on the path can pose as it; set sslmode=verify-full in ledger.url (with sslrootcert=<CA file> for a private CA)",
        ),
        (false, _) if local => {
            Assessment::Fine("ledger connections are plain text (a local server)")
        }
        (false, _) => Assessment::Exposed(
            "ledger connections are plain text: credentials and deliveries cross the network readable; set sslmode=verify-full in ledger.url (sslmode=prefer falls back to plain text when the server offers no TLS)",
        ),
    }
}

/// A Unix socket or a loopback address: nothing crosses a network.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposed(host: &str, mode: PgSslMode, encrypted: bool) -> bool {
        matches!(assess(host, mode, encrypted), Assessment::Exposed(_))
    }

    #[test]
    fn a_remote_ledger_without_verification_is_a_warning_and_a_local_one_is_not() {
        for mode in [PgSslMode::Prefer, PgSslMode::Require, PgSslMode::Allow] {
            assert!(exposed("db.internal", mode, true), "{mode:?} encrypted");
            assert!(exposed("10.0.0.7", mode, false), "{mode:?} plain");
            for local in ["localhost", "127.0.0.1", "::1", "[::1]", "/run/postgresql"] {
                assert!(!exposed(local, mode, true), "{local} {mode:?}");
                assert!(!exposed(local, mode, false), "{local} {mode:?}");
            }
        }
        for mode in [PgSslMode::VerifyFull, PgSslMode::VerifyCa] {
            assert!(!exposed("db.internal", mode, true), "{mode:?}");
        }
        assert!(exposed("db.internal", PgSslMode::Disable, false));
    }

    #[test]
    fn the_warning_says_what_to_set() {
        let Assessment::Exposed(message) = assess("db.internal", PgSslMode::Prefer, false) else {
            panic!("plain text to a remote host is exposed");
        };
        assert!(message.contains("plain text"), "{message}");
        assert!(message.contains("sslmode=verify-full"), "{message}");
    }
}
