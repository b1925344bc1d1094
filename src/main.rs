//! Command line of `run-notifier`: parses arguments and calls the library.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use run_notifier::config::{self, Config};
use run_notifier::{commands, integrations, preview, telemetry, worker};
use tokio_util::sync::CancellationToken;

/// Fans run-canceled events out to GitHub, Bitbucket, Slack, Teams and signed webhooks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The YAML config file.
    #[arg(long, global = true, env = "RUN_NOTIFIER_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker until SIGTERM or SIGINT.
    Run,
    /// Validate the config; exit non-zero with the reasons.
    CheckConfig,
    /// Show the exact requests an event file would cause (secrets redacted); send nothing.
    Preview {
        /// A CloudEvents JSON file.
        #[arg(long)]
        event: PathBuf,
    },
    /// Publish an event file to the configured exchange.
    Publish {
        /// A CloudEvents JSON file.
        #[arg(long)]
        event: PathBuf,
        /// Publish even if the worker would dead-letter it (to try the dead-letter path).
        #[arg(long)]
        unchecked: bool,
    },
    /// Inspect the dead-letter queue, or put dead letters back for another try.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
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
        Command::Run => {
            telemetry::init();
            let config = Config::load(&cli.config)?;
            runtime()?.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                worker::run(config, shutdown).await
            })
        }
        Command::CheckConfig => {
            let config = Config::load(&cli.config)?;
            integrations::build_all(
                &config.integrations,
                &config.templates_dir,
                &integrations::http_client(),
            )
            .map_err(run_notifier::render::TemplateError::all)?;
            println!("{}: {}", cli.config.display(), commands::describe(&config));
            Ok(())
        }
        Command::Preview { event } => {
            let config = Config::load(&cli.config)?;
            print!(
                "{}",
                runtime()?.block_on(preview::preview_file(&config, &event))?
            );
            Ok(())
        }
        Command::Publish { event, unchecked } => {
            let config = Config::load(&cli.config)?;
            let body = commands::read_event(&event, unchecked)?;
            runtime()?.block_on(commands::publish(&config, &body))?;
            println!(
                "published {} to exchange `{}` with routing key `{}`",
                event.display(),
                config.broker.exchange,
                config.broker.routing_key
            );
            Ok(())
        }
        Command::DeadLetters { action } => {
            let config = Config::load(&cli.config)?;
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
        Command::Deliveries { run, json, action } => {
            let config = Config::load(&cli.config)?;
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
        } => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read the body from stdin")?;
            commands::verify(&secret, &id, &timestamp, &signature, &body, tolerance)?;
            println!("valid: the signature matches and the timestamp is within {tolerance} s");
            Ok(())
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
