//! `broker.tls` as the operator writes it: relative files found from the config's folder, and
//! each mistake named at load.

use crate::support::cli::run_notifier;

use super::pki::Pki;

fn check_config(config: &std::path::Path) -> std::process::Output {
    run_notifier(&["check-config", "--config", config.to_str().unwrap()])
}

const HEAD: &str = "broker:\n  url: amqps://guest:guest@mq.internal:5671/%2f\n  tls:\n";

#[test]
fn broker_tls_files_are_found_from_the_config_folder_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    let pki = Pki::new(&dir.path().join("certs"), "mq");
    let client = pki.issue("run-notifier", &[]);
    let config = dir.path().join("run-notifier.yaml");
    std::fs::write(
        &config,
        format!(
            "{HEAD}    ca_file: certs/mq-ca.pem\n    client_cert_file: {}\n    client_key_file: {}\nintegrations: []\n",
            client.cert.display(),
            client.key.display()
        ),
    )
    .unwrap();
    // Run from elsewhere: the relative path is the config folder's, not the working directory's.
    let checked = check_config(&config);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    std::fs::write(
        &config,
        format!("{HEAD}    ca_file: certs/missing.pem\nintegrations: []\n"),
    )
    .unwrap();
    let refused = check_config(&config);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    let missing = dir.path().join("certs/missing.pem");
    assert!(
        message.contains(&format!(
            "broker.tls.ca_file {}: cannot be read: No such file or directory",
            missing.display()
        )),
        "{message}"
    );
}

#[test]
fn broker_tls_needs_amqps_and_a_client_certificate_needs_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run-notifier.yaml");
    std::fs::write(
        &config,
        "broker:\n  url: amqp://guest:guest@mq.internal:5672/%2f\n  tls:\n    client_cert_file: /etc/client.pem\nintegrations: []\n",
    )
    .unwrap();
    let refused = check_config(&config);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(
            "broker.tls is only used with an amqps:// broker.url: use amqps://, or remove broker.tls"
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "broker.tls.client_cert_file and broker.tls.client_key_file go together: set both for mutual TLS, or neither"
        ),
        "{message}"
    );
}
