//! The deployment examples agree with the worker: the Kubernetes manifest parses, its config is
//! valid, and its probes, port and grace period match that config; the Dockerfile builds the
//! way CI does and runs as a non-root user.

use std::collections::HashMap;

use run_notifier::config::Config;
use serde_json::Value;

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

#[test]
fn kubernetes_probes_port_and_grace_match_the_config_they_carry() {
    let documents = manifests();
    let secret = of_kind(&documents, "Secret");
    let env: HashMap<String, String> = secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let config_text = of_kind(&documents, "ConfigMap")["data"]["run-notifier.yaml"]
        .as_str()
        .unwrap();
    let config = Config::parse(config_text, env)
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
fn the_dockerfile_builds_like_ci_and_runs_unprivileged_with_templates_and_config() {
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    assert!(dockerfile.contains("cargo build --release --locked"));
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
