//! Command line of `run-notifier`: parses arguments and calls the library.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use run_notifier::config::{self, Config};
use run_notifier::{app, commands, integrations, preview, telemetry};
use tokio_util::sync::CancellationToken;

/// Fans a test run's events out to GitHub, GitLab, Bitbucket, Slack, Teams and signed webhooks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config`, on the commands that read one (`verify` and `trial` do not).
#[derive(clap::Args)]
struct ConfigArg {
    /// The YAML config file.
    #[arg(long, global = true, env = "RUN_NOTIFIER_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker until SIGTERM or SIGINT.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the config; exit non-zero with the reasons.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show the exact requests an event file would cause (secrets redacted); send nothing.
    Preview {
        /// A CloudEvents JSON file.
        #[arg(long)]
        event: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Publish an event file to the configured exchange.
    Publish {
        /// A CloudEvents JSON file.
        #[arg(long)]
        event: PathBuf,
        /// Publish even if the worker would dead-letter it (to try the dead-letter path).
        #[arg(long)]
        unchecked: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Inspect the dead-letter queue, or put dead letters back for another try.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// A run's delivery history from the ledger; `deliveries cancel` stops its notifications.
    #[command(args_conflicts_with_subcommands = true)]
    Deliveries {
        /// The run id.
        #[arg(long, required = true)]
        run: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<DeliveriesAction>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check a captured webhook (body on stdin) the way a receiver should.
    Verify {
        /// The `whsec_…` secret.
        #[arg(long)]
        secret: String,
        /// The `webhook-id` header.
        #[arg(long)]
        id: String,
        /// The `webhook-timestamp` header.
        #[arg(long)]
        timestamp: String,
        /// The `webhook-signature` header.
        #[arg(long)]
        signature: String,
        /// Accepted clock difference, in seconds.
        #[arg(long, default_value_t = 300)]
        tolerance: i64,
        /// Check the timestamp against this Unix time instead of the clock (for old captures
        /// and test vectors).
        #[arg(long)]
        now: Option<i64>,
    },
    /// A local receiver answering as Slack, Teams, GitHub, GitLab, Bitbucket and a webhook receiver
    /// would, printing each delivery; the example config's URLs point at it.
    Trial {
        /// Address to listen on.
        #[arg(long, default_value = commands::trial::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// The `whsec_…` secret webhook signatures are checked with (the example config's).
        #[arg(long, env = "WEBHOOK_SECRET", default_value = commands::trial::EXAMPLE_SECRET, hide_env_values = true)]
        webhook_secret: String,
        /// Also print every request body in full.
        #[arg(long)]
        bodies: bool,
    },
}

#[derive(Subcommand)]
enum DeadLettersAction {
    /// Show dead letters without consuming them.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on the event queue for a fresh set of attempts.
    Replay {
        /// Only those of this integration.
        #[arg(long)]
        integration: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum DeliveriesAction {
    /// Cancel a run's pending and in-flight deliveries (on every worker).
    Cancel {
        /// The run id.
        #[arg(long)]
        run: String,
        /// Only this integration (default: all).
        #[arg(long)]
        integration: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config: path } => {
            let tracing = telemetry::init()?;
            let config = path.load()?;
            commands::banner::show(&config, &path.config, std::io::stdout().is_terminal());
            let result = runtime()?.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                app::run(config, shutdown).await
            });
            // After the runtime is gone: sending the last spans blocks.
            drop(tracing);
            result
        }
        Command::CheckConfig { config: path } => {
            let config = path.load()?;
            integrations::build_all(
                &config.integrations,
                &config.templates_dir,
                &integrations::http_client(),
            )?;
            for warning in config.warnings() {
                eprintln!("warning: {}: {warning}", path.config.display());
            }
            println!("{}: {}", path.config.display(), commands::describe(&config));
            Ok(())
        }
        Command::Preview {
            event,
            config: path,
        } => {
            let config = path.load()?;
            print!(
                "{}",
                runtime()?.block_on(preview::preview_file(&config, &event))?
            );
            Ok(())
        }
        Command::Publish {
            event,
            unchecked,
            config: path,
        } => {
            let config = path.load()?;
            let body = commands::read_event(&event, unchecked)?;
            let routing_key = runtime()?.block_on(commands::publish(&config, &body))?;
            println!(
                "published {} to exchange `{}` with routing key `{routing_key}`",
                event.display(),
                config.broker.exchange,
            );
            Ok(())
        }
        Command::DeadLetters {
            action,
            config: path,
        } => {
            let config = path.load()?;
            let output = runtime()?.block_on(async {
                match action {
                    DeadLettersAction::List { limit, json } => {
                        commands::dead_letters::list(&config, limit, json).await
                    }
                    DeadLettersAction::Replay { integration, limit } => {
                        commands::dead_letters::replay(&config, integration.as_deref(), limit).await
                    }
                }
            })?;
            println!("{output}");
            Ok(())
        }
        Command::Deliveries {
            run,
            json,
            action,
            config: path,
        } => {
            let config = path.load()?;
            let output = runtime()?.block_on(async {
                match action {
                    Some(DeliveriesAction::Cancel { run, integration }) => {
                        commands::deliveries::cancel(&config, &run, integration.as_deref()).await
                    }
                    None => {
                        let run = run.expect("clap requires --run");
                        commands::deliveries::history(&config, &run, json).await
                    }
                }
            })?;
            println!("{output}");
            Ok(())
        }
        Command::Verify {
            secret,
            id,
            timestamp,
            signature,
            tolerance,
            now,
        } => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read the body from stdin")?;
            let now = now.unwrap_or_else(|| chrono::Utc::now().timestamp());
            let received = run_notifier::signature::Received {
                id: &id,
                timestamp: &timestamp,
                header: &signature,
                body: &body,
            };
            commands::verify(&secret, &received, now, tolerance)?;
            println!("valid: the signature matches and the timestamp is within {tolerance} s");
            Ok(())
        }
        Command::Trial {
            listen,
            webhook_secret,
            bodies,
        } => {
            let secret = run_notifier::signature::SigningSecret::parse(&webhook_secret)
                .map_err(|err| anyhow::anyhow!("--webhook-secret: {err}"))?;
            runtime()?.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                print!("{}", commands::trial::banner(listener.local_addr()?));
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                commands::trial::serve(listener, secret, bodies, shutdown).await?;
                Ok(())
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// SIGTERM or SIGINT only cancels the token; the worker does the rest.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}
