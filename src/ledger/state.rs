//! The values the ledger stores and returns.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Progress;

/// Where one notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A worker is delivering it now (under a lease).
    InFlight,
    /// The receiver took it.
    Delivered,
    /// Nothing to send for this run (no commit, no pull request…).
    Skipped,
    /// A transient failure; a retry waits in the broker.
    Failed,
    /// Given up and dead-lettered.
    Dead,
    /// Stopped by an operator (`deliveries cancel`).
    Canceled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InFlight => "in_flight",
            State::Delivered => "delivered",
            State::Skipped => "skipped",
            State::Failed => "failed",
            State::Dead => "dead",
            State::Canceled => "canceled",
        }
    }

    /// Reads a stored state. A value this version does not know is an error, not a guess: a
    /// delivery in an unknown state is neither sent nor settled.
    pub fn parse(text: &str) -> Result<Self, UnknownState> {
        Ok(match text {
            "in_flight" => State::InFlight,
            "delivered" => State::Delivered,
            "skipped" => State::Skipped,
            "failed" => State::Failed,
            "dead" => State::Dead,
            "canceled" => State::Canceled,
            other => return Err(UnknownState(other.to_owned())),
        })
    }

    /// Reads the state in a row's column `index`.
    pub(super) fn from_column(row: &AnyRow, index: usize) -> Result<Self, sqlx::Error> {
        let text: String = row.try_get(index)?;
        Self::parse(&text).map_err(|unknown| sqlx::Error::Decode(Box::new(unknown)))
    }
}

/// A stored state this version does not know (a newer version, or a hand edit, wrote it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ledger holds the state `{0}`, which this version does not know")]
pub struct UnknownState(pub String);

/// Identifies one claim, so that only its owner can end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimId {
    id: String,
    resumed: bool,
    /// How far the run got at the integration, read with the claim.
    progress: Option<Progress>,
}

impl ClaimId {
    pub fn new() -> Self {
        Self {
            id: format!("{:032x}", rand::random::<u128>()),
            resumed: false,
            progress: None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub(super) fn resuming(mut self, resumed: bool, progress: Option<Progress>) -> Self {
        self.resumed = resumed;
        self.progress = progress;
        self
    }

    /// How far the run got at the integration when this claim was taken: read in the same
    /// write, and no other event of the run can move it while the claim is held.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Whether this claim took over a row an earlier attempt left (failed, dead, or in flight
    /// past its lease: that worker may have died after the receiver answered). Whether the
    /// earlier attempt reached the receiver is then unknown.
    pub fn resumed(&self) -> bool {
        self.resumed
    }
}

impl Default for ClaimId {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt owns the delivery now.
    Claimed(ClaimId),
    /// Already finished (delivered or skipped): do not send again.
    Done(State),
    /// An operator canceled it: drop the message.
    Canceled,
    /// Another attempt holds it until this Unix-ms instant.
    Busy { lease_until_ms: i64 },
    /// Another event of the run is being delivered to the integration (by any worker): its
    /// turn ends when that delivery does.
    Waiting,
}

/// One row of a run's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub integration: String,
    pub event_type: String,
    pub state: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub receipt: Option<String>,
    pub event_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Entry {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            integration: row.try_get(0)?,
            event_type: row.try_get(1)?,
            state: State::from_column(row, 2)?.as_str(),
            attempts: row.try_get(3)?,
            last_error: row.try_get(4)?,
            receipt: row.try_get(5)?,
            event_id: row.try_get(6)?,
            created_at: row.try_get(7)?,
            updated_at: row.try_get(8)?,
        })
    }
}
