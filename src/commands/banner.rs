//! What `run` says when it starts: version, config file, admin address, ledger, broker and
//! integrations, so that a first look at the output tells what is running against what. Never
//! a credential: URLs are shown without user, password or query.

use std::path::Path;

use url::Url;

use crate::config::Config;

/// The facts of the banner, each as (label, value).
pub fn facts(config: &Config, path: &Path) -> Vec<(&'static str, String)> {
    let ledger = match &config.ledger.url {
        Some(url) => format!("PostgreSQL {}", without_credentials(url.expose())),
        None => format!("SQLite {}", config.ledger.path.display()),
    };
    let broker = &config.broker;
    let integrations: Vec<String> = config
        .integrations
        .iter()
        .map(|i| format!("{} ({})", i.name(), i.kind()))
        .collect();
    vec![
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("config", path.display().to_string()),
        (
            "admin",
            format!(
                "http://{} (/healthz, /readyz, /metrics)",
                config.admin.listen
            ),
        ),
        ("ledger", ledger),
        (
            "broker",
            format!(
                "{} (exchange {}, queue {})",
                without_credentials(broker.url.expose()),
                broker.exchange,
                broker.queue
            ),
        ),
        (
            "integrations",
            if integrations.is_empty() {
                "none".to_owned()
            } else {
                integrations.join(", ")
            },
        ),
    ]
}

/// The banner as aligned lines, for a terminal.
pub fn text(config: &Config, path: &Path) -> String {
    let mut out = String::from("run-notifier starting\n");
    for (label, value) in facts(config, path) {
        out.push_str(&format!("  {label:<13} {value}\n"));
    }
    out
}

/// Prints the banner: aligned lines on a terminal, one structured log event otherwise (JSON
/// logs stay one object a line).
pub fn show(config: &Config, path: &Path, terminal: bool) {
    if terminal {
        print!("{}", text(config, path));
        return;
    }
    let facts = facts(config, path);
    let get = |label: &str| {
        facts
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    tracing::info!(
        version = get("version"),
        config = get("config"),
        admin = get("admin"),
        ledger = get("ledger"),
        broker = get("broker"),
        integrations = get("integrations"),
        "run-notifier starting"
    );
}

/// `scheme://host:port/path` of `url`: no user, password, query or fragment (any could hold a
/// secret). Text that does not parse is not shown at all.
fn without_credentials(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            without_credentials("amqps://user:s3cret@mq.internal:5671/prod"),
            "amqps://mq.internal:5671/prod"
        );
        assert_eq!(
            without_credentials("postgres://u:pw@db:5432/ledger?password=pw2&sslmode=require"),
            "postgres://db:5432/ledger"
        );
        assert_eq!(without_credentials("not a url pw"), "(not a URL)");
    }

    #[test]
    fn on_a_terminal_the_banner_is_aligned_lines() {
        let yaml = "integrations:\n  - name: hook\n    type: webhook\n    url: https://h.example/x\n    secrets:\n      - whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
        let config = Config::parse(yaml, Default::default()).unwrap();
        assert_eq!(
            text(&config, Path::new("config/run-notifier.yaml")),
            format!(
                "run-notifier starting\n\
                 \x20 version       {}\n\
                 \x20 config        config/run-notifier.yaml\n\
                 \x20 admin         http://127.0.0.1:9464 (/healthz, /readyz, /metrics)\n\
                 \x20 ledger        SQLite run-notifier.db\n\
                 \x20 broker        amqp://127.0.0.1:5672/%2f (exchange runs, queue run-notifier.events)\n\
                 \x20 integrations  hook (webhook)\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
