//! `deliveries`: a run's history from the ledger, and canceling a run's notifications.

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat};

use crate::broker::{self, Publisher};
use crate::config::Config;
use crate::control::ControlMessage;
use crate::event::{EventType, RunId};
use crate::integrations::IntegrationName;
use crate::ledger::{CancelReport, Entry, Ledger};

/// The run's history as a table (or JSON lines when `json`).
pub async fn history(config: &Config, run_id: &str, json: bool) -> anyhow::Result<String> {
    let ledger = Ledger::open(&config.ledger)
        .await
        .context("cannot open the ledger")?;
    let entries = ledger
        .history(&parse_run_id(run_id)?)
        .await
        .context("cannot read the ledger")?;
    ledger.close().await;
    if json {
        return Ok(serde_json::to_string_pretty(&entries)?);
    }
    if entries.is_empty() {
        return Ok(format!("no deliveries recorded for run {run_id}"));
    }
    Ok(table(&entries))
}

/// The run id given on the command line, or why it cannot be one.
fn parse_run_id(text: &str) -> anyhow::Result<RunId> {
    RunId::parse(text).map_err(|err| anyhow::anyhow!("the run id {err}"))
}

fn table(entries: &[Entry]) -> String {
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.integration.clone(),
                e.state.to_owned(),
                e.attempts.to_string(),
                time(e.created_at),
                time(e.updated_at),
                e.last_error
                    .clone()
                    .or_else(|| e.receipt.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "INTEGRATION",
        "STATE",
        "ATTEMPTS",
        "FIRST",
        "LAST",
        "RESULT",
    ]
    .map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &[String; 6]| {
        let mut text = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        text.push_str(&row[5]);
        text.trim_end().to_owned()
    };
    std::iter::once(line(&header))
        .chain(rows.iter().map(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Cancels the run's pending deliveries (to one integration, or all configured), keeps the
/// others from starting, and tells every worker to abort those in flight.
pub async fn cancel(
    config: &Config,
    run_id: &str,
    integration: Option<&str>,
) -> anyhow::Result<String> {
    let names: Vec<&IntegrationName> = match integration {
        Some(name) => match config.integration(name) {
            Some(integration) => vec![integration.name()],
            None => bail!("no integration is named `{name}` in the config"),
        },
        None => config.integrations.iter().map(|i| i.name()).collect(),
    };
    let ledger = Ledger::open(&config.ledger)
        .await
        .context("cannot open the ledger")?;
    let run = parse_run_id(run_id)?;
    // Every event type of the run: a start still waiting for a retry is canceled like an end.
    let mut report = CancelReport::default();
    for event_type in EventType::ALL {
        let part = ledger
            .cancel(&run, event_type.as_str(), &names)
            .await
            .context("cannot update the ledger")?;
        let named = |name: String| match event_type {
            EventType::Canceled => name,
            other => format!("{name} ({other})"),
        };
        report.canceled.extend(
            part.canceled
                .into_iter()
                .map(|(name, state)| (named(name), state)),
        );
        report.unchanged.extend(
            part.unchanged
                .into_iter()
                .map(|(name, state)| (named(name), state)),
        );
        for name in part.prevented {
            if !report.prevented.contains(&name) {
                report.prevented.push(name);
            }
        }
    }
    ledger.close().await;

    let connection = broker::connect_to(&config.broker, "cli").await.context(
        "canceled in the ledger, but cannot reach the broker to abort in-flight deliveries",
    )?;
    let publisher = Publisher::open(&connection).await?;
    let message = ControlMessage::CancelRun {
        run_id: run_id.to_owned(),
        integration: integration.map(str::to_owned),
    };
    message
        .broadcast(&publisher, &config.broker.control_exchange)
        .await
        .context("canceled in the ledger, but cannot broadcast the abort to the workers")?;
    let _ = connection.close(200, "done".into()).await;
    Ok(summary(run_id, &report))
}

fn summary(run_id: &str, report: &CancelReport) -> String {
    let mut lines = vec![if report.canceled.is_empty() {
        format!("canceled 0 deliveries of run {run_id}: nothing was pending")
    } else {
        let list: Vec<_> = report
            .canceled
            .iter()
            .map(|(name, state)| format!("{name} (was {})", state.as_str()))
            .collect();
        format!(
            "canceled {} deliveries of run {run_id}: {}",
            report.canceled.len(),
            list.join(", ")
        )
    }];
    if !report.prevented.is_empty() {
        lines.push(format!(
            "not started, now never will: {}",
            report.prevented.join(", ")
        ));
    }
    if !report.unchanged.is_empty() {
        let list: Vec<_> = report
            .unchanged
            .iter()
            .map(|(name, state)| format!("{name} ({})", state.as_str()))
            .collect();
        lines.push(format!(
            "already finished, left as they are: {}",
            list.join(", ")
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::State;
    use crate::protocol::EVENT_TYPE;

    #[test]
    fn summary_says_what_was_canceled_and_what_was_not() {
        let report = CancelReport {
            canceled: vec![
                ("slack".into(), State::InFlight),
                ("hook".into(), State::Failed),
            ],
            prevented: vec!["teams".into()],
            unchanged: vec![("status".into(), State::Delivered)],
        };
        assert_eq!(
            summary("r1", &report),
            "canceled 2 deliveries of run r1: slack (was in_flight), hook (was failed)\n\
             not started, now never will: teams\n\
             already finished, left as they are: status (delivered)"
        );
        assert_eq!(
            summary("r1", &CancelReport::default()),
            "canceled 0 deliveries of run r1: nothing was pending"
        );
    }

    #[test]
    fn history_table_aligns_columns() {
        let entry = |integration: &str, state, result: &str| Entry {
            integration: integration.into(),
            event_type: EVENT_TYPE.into(),
            state,
            attempts: 1,
            last_error: None,
            receipt: Some(result.into()),
            event_id: None,
            created_at: 1_795_291_738_000,
            updated_at: 1_795_291_739_000,
        };
        let text = table(&[
            entry("hook", "delivered", "HTTP 200"),
            entry("a-long-name", "failed", "HTTP 503"),
        ]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("INTEGRATION  STATE      ATTEMPTS"),
            "{text}"
        );
        assert!(lines[1].starts_with("hook         delivered  1"), "{text}");
        assert!(lines[1].ends_with("HTTP 200"));
    }
}
