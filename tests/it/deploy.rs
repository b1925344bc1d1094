//! The deployment examples agree with the worker: the Kubernetes manifest parses, its config is
//! valid, and its probes, port and grace period match that config; the pod runs with least
//! privilege behind a NetworkPolicy; no production config carries a secret; the Dockerfile
//! builds the way CI does and runs as a non-root user.

use std::collections::HashMap;
use std::process::Command;

use run_notifier::commands::trial::EXAMPLE_SECRET;
use run_notifier::config::Config;
use serde_json::{Value, json};

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

/// Every `port` of a NetworkPolicy rule, with its protocol.
fn rule_ports(rule: &Value) -> Vec<(u64, String)> {
    rule["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let protocol = p["protocol"].as_str().unwrap_or("TCP");
                    (p["port"].as_u64().unwrap(), protocol.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_pod_runs_with_least_privilege_and_talks_only_to_what_it_needs() {
    let documents = manifests();
    let deployment = of_kind(&documents, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false, "no API token");
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod_security["runAsNonRoot"], true);
    for container in pod["containers"].as_array().unwrap() {
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{container}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{container}");
        assert_eq!(
            security["capabilities"]["drop"],
            json!(["ALL"]),
            "{container}"
        );
        assert!(security["capabilities"]["add"].is_null(), "{container}");
    }

    let policy = of_kind(&documents, "NetworkPolicy");
    let spec = &policy["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"],
        "the policy selects the worker's pods"
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    let admin_port = pod["containers"][0]["ports"][0]["containerPort"]
        .as_u64()
        .unwrap();
    let ingress = spec["ingress"].as_array().unwrap();
    assert!(!ingress.is_empty());
    for rule in ingress {
        assert_eq!(
            rule_ports(rule),
            [(admin_port, "TCP".to_owned())],
            "ingress only to the admin port: {rule}"
        );
    }
    let egress = spec["egress"].as_array().unwrap();
    let allowed: Vec<(u64, String)> = egress.iter().flat_map(rule_ports).collect();
    for rule in egress {
        assert!(
            !rule_ports(rule).is_empty(),
            "a rule without ports allows all: {rule}"
        );
    }
    let tcp = |port: u64| (port, "TCP".to_owned());
    for needed in [
        (53, "UDP".to_owned()),
        tcp(53),
        tcp(5672),
        tcp(5671),
        tcp(5432),
        tcp(443),
    ] {
        assert!(
            allowed.contains(&needed),
            "{needed:?} not allowed: {allowed:?}"
        );
    }
    assert_eq!(allowed.len(), 6, "nothing more: {allowed:?}");
    // Only HTTPS goes anywhere; DNS, the broker and the ledger are named destinations.
    for rule in egress {
        if rule_ports(rule) != [tcp(443)] {
            assert!(
                rule["to"].as_array().is_some_and(|to| !to.is_empty()),
                "{rule}"
            );
        }
    }
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
