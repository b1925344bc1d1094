//! The deployment examples agree with the worker: the Kubernetes manifest parses, its config is
//! valid, and its probes, port and grace period match that config; no production config
//! carries a secret; the Dockerfile builds the way CI does and runs as a non-root user.

use std::collections::HashMap;
use std::process::Command;

use run_notifier::commands::trial::EXAMPLE_SECRET;
use run_notifier::config::Config;
use serde_json::Value;

/// The variables the Kubernetes Secret ships empty, each with a stand-in an operator would set.
const OPERATOR_SET: [(&str, &str); 5] = [
    ("AMQP_URL", "amqps://run-notifier:s3cret@rabbitmq:5671/%2f"),
    (
        "LEDGER_URL",
        "postgres://run_notifier:s3cret@postgres:5432/run_notifier",
    ),
    (
        "WEBHOOK_SECRET",
        "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
    ),
    ("GITHUB_TOKEN", "github_pat_0123456789"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/x",
    ),
];

fn manifests() -> Vec<Value> {
    let text = std::fs::read_to_string("deploy/kubernetes.yaml").unwrap();
    serde_saphyr::from_multiple(&text).expect("deploy/kubernetes.yaml is YAML")
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The Secret's values as the pod's environment.
fn secret_env(documents: &[Value]) -> HashMap<String, String> {
    of_kind(documents, "Secret")["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn configmap_config(documents: &[Value]) -> &str {
    of_kind(documents, "ConfigMap")["data"]["run-notifier.yaml"]
        .as_str()
        .unwrap()
}

#[test]
fn kubernetes_probes_port_and_grace_match_the_config_they_carry() {
    let documents = manifests();
    let mut env = secret_env(&documents);
    env.extend(OPERATOR_SET.map(|(k, v)| (k.to_owned(), v.to_owned())));
    let config = Config::parse(configmap_config(&documents), env)
        .unwrap_or_else(|err| panic!("the ConfigMap's config: {err}"));

    let pod = &of_kind(&documents, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let port = config.admin.listen.port();
    assert!(
        config.admin.listen.ip().is_unspecified(),
        "probes come from outside the pod: listen on 0.0.0.0"
    );
    assert_eq!(container["ports"][0]["containerPort"], port);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], port);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], port);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= config.worker.shutdown_grace.as_secs() + 5,
        "terminationGracePeriodSeconds {grace} must exceed shutdown_grace plus the hand-back"
    );
    assert!(
        config.ledger.url.is_some(),
        "replicas share a PostgreSQL ledger"
    );
    assert!(pod["securityContext"]["runAsNonRoot"].as_bool().unwrap());
}

#[test]
fn no_production_config_carries_a_secret_and_a_missing_one_stops_the_start_by_name() {
    let documents = manifests();
    let error = Config::parse(configmap_config(&documents), secret_env(&documents))
        .expect_err("the Secret as shipped must not start a worker");
    for (name, _) in OPERATOR_SET {
        assert!(
            error.contains(&format!(
                "the environment variable `{name}` is set but empty"
            )),
            "{name} not named in:\n{error}"
        );
    }

    // The image's config, as `docker run` without the variables would meet it.
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config", "config/container.yaml"])
        .env_remove("AMQP_URL")
        .env_remove("WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "`${WEBHOOK_SECRET:?the receiver's whsec_ signing secret}`: the environment variable `WEBHOOK_SECRET` is not set",
        "the environment variable `AMQP_URL` is not set",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_run-notifier"))
        .args(["check-config", "--config", "config/container.yaml"])
        .env("AMQP_URL", OPERATOR_SET[0].1)
        .env("WEBHOOK_SECRET", OPERATOR_SET[2].1)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Not even in a default: no literal signing secret in any file a production config is
    // built from, and the public example secret is a default only in the dev config.
    for file in [
        "config/container.yaml",
        "deploy/kubernetes.yaml",
        "Dockerfile",
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        let literal = text.match_indices("whsec_").find(|(at, _)| {
            text[at + 6..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        });
        assert_eq!(literal.map(|(at, _)| &text[at..at + 12]), None, "{file}");
    }
    let dev = std::fs::read_to_string("config/run-notifier.yaml").unwrap();
    assert!(dev.contains(&format!("${{WEBHOOK_SECRET:-{EXAMPLE_SECRET}}}")));
}

#[test]
fn the_dockerfile_builds_like_ci_and_runs_unprivileged_with_templates_and_config() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    assert!(dockerfile.contains("cargo build --profile dist --locked"));
    // Dependencies are built from Cargo.toml and Cargo.lock alone, before the sources come in,
    // so that a source change does not rebuild them.
    let dependencies = dockerfile.find("COPY Cargo.toml Cargo.lock").unwrap();
    let sources = dockerfile.find("COPY src src").unwrap();
    assert!(dockerfile[dependencies..sources].contains("cargo build --profile dist --locked"));
    assert!(
        toml_like::dist_profile().strip,
        "the dist profile strips the binary"
    );
    assert!(dockerfile.contains("COPY templates templates"));
    assert!(dockerfile.contains("COPY config config"));
    assert!(
        dockerfile.contains("COPY migrations migrations"),
        "sqlx embeds the migrations at build time"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert_ne!(user.trim(), "root");
    assert_ne!(user.trim(), "0");
}

/// The `[profile.dist]` section of Cargo.toml, read by hand (no TOML parser among the
/// dependencies).
mod toml_like {
    pub struct Profile {
        pub strip: bool,
    }

    pub fn dist_profile() -> Profile {
        let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
        let section = manifest
            .split("\n[")
            .find(|s| s.starts_with("profile.dist]"))
            .expect("a [profile.dist] section");
        Profile {
            strip: section.lines().any(|l| l.replace(' ', "") == "strip=true"),
        }
    }
}

#[test]
fn the_build_context_leaves_out_target_and_kubernetes_never_pulls_latest() {
    let ignore = std::fs::read_to_string(".dockerignore").unwrap();
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    // Everything is left out but what the Dockerfile copies: target/ is not among those.
    assert!(lines.contains(&"*"), "{ignore}");
    assert!(!lines.iter().any(|l| l.starts_with("!target")), "{ignore}");
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    for line in dockerfile.lines().filter_map(|l| l.strip_prefix("COPY ")) {
        let from = line.split_whitespace().next().unwrap();
        if !from.starts_with("--from") {
            let included = from.split(' ').all(|part| {
                lines.contains(&format!("!{part}").as_str())
                    || lines.contains(&format!("!{part}/").as_str())
            });
            assert!(included, "COPY {from} is left out by .dockerignore");
        }
    }

    let documents = manifests();
    let container = &of_kind(&documents, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let image = container["image"].as_str().unwrap();
    assert!(
        container["imagePullPolicy"] == "IfNotPresent"
            || (image.contains(':') && !image.ends_with(":latest")),
        "{image} would be pulled on every start"
    );
    assert!(!image.ends_with(":latest"), "{image}");
}
