//! The PostgreSQL ledger over TLS: `sslmode=verify-full`/`verify-ca` with `sslrootcert`, client
//! certificates with `sslcert`/`sslkey`, and what a wrong CA or name looks like.

use run_notifier::config::{LedgerConfig, Secret};
use run_notifier::ledger::{Ledger, LedgerError};

use super::cluster::{CERT_USER, Cluster};
use super::pki::Pki;
use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};

async fn open(url: &str) -> Result<Ledger, LedgerError> {
    Ledger::open(&LedgerConfig {
        url: Some(Secret::new(url)),
        ..LedgerConfig::default()
    })
    .await
}

/// `sslmode=verify-full&sslrootcert=<the CA>`.
fn verified_by(pki: &Pki) -> String {
    format!(
        "sslmode=verify-full&sslrootcert={}",
        pki.ca_file().display()
    )
}

#[tokio::test]
async fn a_worker_on_a_verified_tls_ledger_delivers_and_its_connections_are_encrypted() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "ledger");
    let cluster = Cluster::start(&pki);
    let url = cluster.url("postgres", "localhost", &verified_by(&pki));
    let receiver = Receiver::ok().await;
    let mut app = TestApp::new().await;
    app.spawn_worker(|config| {
        config.ledger.url = Some(Secret::new(&url));
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;

    let run = unique("run");
    app.publish(&event_for(&run)).await;
    receiver.wait_for(1).await;
    let (encrypted, all) = cluster.tcp_connections().await;
    assert!(all >= 1, "the worker holds ledger connections");
    assert_eq!(
        encrypted, all,
        "every ledger connection is encrypted (pg_stat_ssl)"
    );
    // The command line reads the same ledger over TLS.
    wait_until(
        "the delivery is recorded",
        std::time::Duration::from_secs(10),
        || {
            let states = app.delivery_states(&run);
            async move { states.get("hook").map(String::as_str) == Some("delivered") }
        },
    )
    .await;
    app.stop_worker().await;
}

#[tokio::test]
async fn a_ledger_whose_certificate_another_ca_signed_or_names_another_host_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "ledger");
    let other = Pki::new(certs.path(), "other");
    let cluster = Cluster::start(&pki);

    open(&cluster.url("postgres", "localhost", &verified_by(&pki)))
        .await
        .expect("the right CA and name")
        .close()
        .await;

    let wrong_ca = open(&cluster.url("postgres", "localhost", &verified_by(&other)))
        .await
        .expect_err("a CA that did not sign the server's certificate");
    let message = wrong_ca.to_string();
    assert!(
        message.starts_with("ledger database: ")
            && message.ends_with("invalid peer certificate: UnknownIssuer"),
        "{message}"
    );

    // The certificate is for `localhost`, not for 127.0.0.1.
    let wrong_name = open(&cluster.url("postgres", "127.0.0.1", &verified_by(&pki)))
        .await
        .expect_err("a name the certificate does not hold");
    let message = wrong_name.to_string();
    assert!(
        message.contains(r#"invalid peer certificate: certificate not valid for name "127.0.0.1""#),
        "{message}"
    );

    // verify-ca checks the CA only; require encrypts without checking anything.
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", pki.ca_file().display());
    open(&cluster.url("postgres", "127.0.0.1", &ca_only))
        .await
        .expect("verify-ca ignores the name")
        .close()
        .await;
    open(&cluster.url("postgres", "127.0.0.1", "sslmode=require"))
        .await
        .expect("require does not verify")
        .close()
        .await;
}

#[tokio::test]
async fn a_ledger_that_requires_a_client_certificate_takes_sslcert_and_sslkey() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "ledger");
    let cluster = Cluster::start(&pki);
    cluster.create_cert_user().await;
    let client = pki.issue(CERT_USER, &[]);

    let with_certificate = format!(
        "{}&sslcert={}&sslkey={}",
        verified_by(&pki),
        client.cert.display(),
        client.key.display()
    );
    let ledger = open(&cluster.url(CERT_USER, "localhost", &with_certificate))
        .await
        .expect("the client certificate is accepted");
    let (encrypted, all) = cluster.tcp_connections().await;
    assert!(
        all >= 1 && encrypted == all,
        "{encrypted} of {all} encrypted"
    );
    ledger.close().await;

    let without = open(&cluster.url(CERT_USER, "localhost", &verified_by(&pki)))
        .await
        .expect_err("no client certificate");
    let message = without.to_string();
    assert!(
        message.contains("connection requires a valid client certificate"),
        "{message}"
    );
}

#[tokio::test]
async fn a_ledger_with_the_wrong_ca_keeps_the_worker_unready_and_its_log_says_why() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "ledger");
    let other = Pki::new(certs.path(), "other");
    let cluster = Cluster::start(&pki);
    let app = TestApp::new().await;
    let worker = app.launch_process(|config| {
        config.ledger.url = Some(Secret::new(cluster.url(
            "postgres",
            "localhost",
            &verified_by(&other),
        )));
    });

    wait_until(
        "the log says why the ledger cannot be opened",
        std::time::Duration::from_secs(30),
        || async {
            worker.logs().lines().any(|line| {
                line.contains(r#""level":"WARN""#)
                    && line.contains("cannot open the ledger yet")
                    && line.contains(r#""error":"ledger database: error communicating with database: invalid peer certificate: UnknownIssuer""#)
            })
        },
    )
    .await;
    let ready = reqwest::get(worker.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ledger"], "unreachable");
}

/// `prefer`, the default, takes TLS when the server offers it (before, the ledger had no TLS at
/// all, and every URL without `sslmode` went in plain text).
#[tokio::test]
async fn a_ledger_url_without_sslmode_is_encrypted_when_the_server_offers_tls() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "ledger");
    let cluster = Cluster::start(&pki);

    let ledger = open(&cluster.url("postgres", "127.0.0.1", ""))
        .await
        .expect("an unverified connection is allowed by default");
    let (encrypted, all) = cluster.tcp_connections().await;
    assert!(
        all >= 1 && encrypted == all,
        "{encrypted} of {all} encrypted"
    );
    ledger.close().await;
}
