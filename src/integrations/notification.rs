//! What an integration is asked to deliver, and what a delivery achieved.

use sha2::{Digest, Sha256};

use super::IntegrationName;
use crate::event::RunEvent;

/// What an integration is asked to deliver: one event, to one integration, at one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    pub event: &'a RunEvent,
    pub integration: &'a IntegrationName,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// This attempt took over a ledger row an earlier attempt left (its worker may have died
    /// after the receiver answered and before the record).
    pub resumed: bool,
    /// The provider's object an earlier event of the run made at this integration (a Slack
    /// message `ts`), as the ledger kept it: kinds that keep one object per run edit it.
    pub object_id: Option<&'a str>,
}

impl Notification<'_> {
    /// Whether an earlier attempt may already have had its effect: a retry, or a takeover.
    /// Integrations that cannot make a repeated send harmless look before they send again.
    pub fn outcome_unknown(&self) -> bool {
        self.attempt > 1 || self.resumed
    }

    /// Stable id of this run's notification to this integration: the same on every retry and
    /// for every event of the same run and type, so receivers can deduplicate on it.
    pub fn delivery_id(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.event.data.run_id.as_str(),
            self.event.event_type().as_str(),
            self.integration,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        format!("msg_{}", hex::encode(&hash.finalize()[..16]))
    }
}

/// What a delivery achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The receiver took it; the text says what it answered (`HTTP 204`).
    Sent(String),
    /// Nothing to do for this event (for example no commit to put a status on); says why.
    Skipped(String),
}
