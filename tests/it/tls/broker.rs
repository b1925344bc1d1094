//! RabbitMQ over `amqps://` through a TLS listener: `broker.tls.ca_file` added to the system
//! roots, a client certificate for mutual TLS, and what a wrong CA, name or missing client
//! certificate looks like to the operator.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use run_notifier::config::Secret;

use super::pki::{Issued, Pki};
use super::proxy::TlsProxy;
use crate::support::cli::run_notifier;
use crate::support::{Receiver, TestApp, event_for, unique, wait_until, webhook};

/// `run-notifier publish` of a fresh event on `config`, as an operator runs it.
fn publish(app: &TestApp, config: &Path, run: &str) -> Output {
    let event = app.dir().join(format!("{run}.json"));
    std::fs::write(&event, event_for(run).to_string()).unwrap();
    let (event, config) = (event.to_str().unwrap(), config.to_str().unwrap());
    run_notifier(&["publish", "--event", event, "--config", config])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The broker settings of a config reaching `proxy` by `host`, trusting `ca` and presenting
/// `client`.
fn through(
    proxy: &TlsProxy,
    host: &str,
    ca: Option<PathBuf>,
    client: Option<&Issued>,
) -> impl FnOnce(&mut crate::support::Setup) {
    let url = proxy.url(host);
    let client = client.map(|c| (c.cert.clone(), c.key.clone()));
    move |config| {
        config.broker.url = Secret::new(url);
        config.broker.tls.ca_file = ca;
        config.broker.tls.client_cert_file = client.as_ref().map(|c| c.0.clone());
        config.broker.tls.client_key_file = client.map(|c| c.1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_the_cli_go_through_amqps_with_the_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "broker");
    let proxy = TlsProxy::start(&pki.issue("rabbitmq", &["localhost"]), None).await;
    let receiver = Receiver::ok().await;
    let mut app = TestApp::new().await;
    let hook = receiver.url("/hook");
    let tls = through(&proxy, "localhost", Some(pki.ca_file()), None);
    app.spawn_worker(|config| {
        tls(config);
        config.add(webhook("hook", &hook));
    })
    .await;
    assert!(proxy.handshakes() >= 1, "the worker connected through TLS");

    let seen = proxy.handshakes();
    let published = publish(&app, &app.config_file(), &unique("run"));
    assert!(published.status.success(), "{}", stderr(&published));
    assert!(proxy.handshakes() > seen, "the CLI connected through TLS");
    receiver.wait_for(1).await;
    app.stop_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_or_for_another_name_is_refused_with_the_reason() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "broker");
    let other = Pki::new(certs.path(), "other");
    let proxy = TlsProxy::start(&pki.issue("rabbitmq", &["localhost"]), None).await;
    let app = TestApp::new().await;

    let (wrong_ca, _) = app.config(through(&proxy, "localhost", Some(other.ca_file()), None));
    let refused = publish(&app, &wrong_ca, &unique("run"));
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("cannot connect to the broker: invalid peer certificate: UnknownIssuer"),
        "{message}"
    );

    // The certificate is for `localhost`, not for 127.0.0.1.
    let (wrong_name, _) = app.config(through(&proxy, "127.0.0.1", Some(pki.ca_file()), None));
    let refused = publish(&app, &wrong_name, &unique("run"));
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains(
            "cannot connect to the broker: invalid peer certificate: certificate not valid for name \"127.0.0.1\""
        ),
        "{message}"
    );
    assert_eq!(proxy.handshakes(), 0, "no connection got through");

    // The worker keeps trying, not ready, and says why.
    let worker = app.launch_process(through(&proxy, "localhost", Some(other.ca_file()), None));
    wait_until(
        "the log says why the broker cannot be reached",
        Duration::from_secs(30),
        || async {
            worker.logs().lines().any(|line| {
                line.contains(r#""level":"WARN""#)
                    && line.contains(
                        r#""error":"cannot connect to the broker: invalid peer certificate: UnknownIssuer""#,
                    )
            })
        },
    )
    .await;
    let ready = reqwest::get(worker.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["broker"], "not consuming");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_requires_a_client_certificate_takes_the_configured_one() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::new(certs.path(), "broker");
    let server = pki.issue("rabbitmq", &["localhost"]);
    let proxy = TlsProxy::start(&server, Some(&pki.ca_file())).await;
    let client = pki.issue("run-notifier", &[]);
    let receiver = Receiver::ok().await;
    let mut app = TestApp::new().await;

    let (without, _) = app.config(through(&proxy, "localhost", Some(pki.ca_file()), None));
    let refused = publish(&app, &without, &unique("run"));
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("cannot connect to the broker: received fatal alert: CertificateRequired"),
        "{message}"
    );
    assert_eq!(proxy.handshakes(), 0);

    let hook = receiver.url("/hook");
    let tls = through(&proxy, "localhost", Some(pki.ca_file()), Some(&client));
    app.spawn_worker(|config| {
        tls(config);
        config.add(webhook("hook", &hook));
    })
    .await;
    assert!(
        proxy.handshakes() >= 1,
        "the worker presented its certificate"
    );
    app.publish(&event_for(&unique("run"))).await;
    receiver.wait_for(1).await;
    app.stop_worker().await;
}
