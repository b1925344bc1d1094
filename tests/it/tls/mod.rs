//! TLS to every service, verified: the PostgreSQL ledger against a private server with
//! `ssl = on`, and RabbitMQ behind a TLS listener, each with a CA and certificates made by the
//! test. Each is reached with verification on and refused with the wrong CA or name, and what
//! the operator sees when it is refused is checked.

mod broker;
mod cluster;
mod config;
mod ledger;
mod pki;
mod proxy;

use run_notifier::config::Secret;

use crate::support::TestApp;
use cluster::Cluster;
use pki::Pki;
use proxy::TlsProxy;

/// With no CA named anywhere, both services are verified against the system roots, which
/// `SSL_CERT_FILE` replaces: the worker trusting the test's CA that way becomes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_trust_the_system_roots_which_ssl_cert_file_can_name() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "system");
    let cluster = Cluster::start(&pki);
    let proxy = TlsProxy::start(&pki.issue("rabbitmq", &["localhost"]), None).await;
    let app = TestApp::new().await;

    let ca = pki.ca_file();
    let mut worker = app
        .spawn_process_with_env(&[("SSL_CERT_FILE", ca.to_str().unwrap())], |config| {
            config.broker.url = Secret::new(proxy.url("localhost"));
            config.ledger.url = Some(Secret::new(cluster.url(
                "postgres",
                "localhost",
                "sslmode=verify-full",
            )));
        })
        .await;

    assert!(proxy.handshakes() >= 1, "the worker came through TLS");
    let (encrypted, all) = cluster.tcp_connections().await;
    assert!(
        all >= 1 && encrypted == all,
        "{encrypted} of {all} encrypted"
    );
    let logs = worker.logs();
    assert!(
        logs.contains("ledger connections use TLS; the server's certificate and name are verified"),
        "{logs}"
    );
    worker.stop().await;
}
