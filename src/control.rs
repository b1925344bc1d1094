//! Operator commands broadcast to every worker over the control exchange.

use lapin::BasicProperties;
use serde::{Deserialize, Serialize};

use crate::broker::{PublishError, Publisher};

/// A command every worker acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "camelCase")]
pub enum ControlMessage {
    /// Abort the run's in-flight deliveries (to one integration, or all).
    #[serde(rename_all = "camelCase")]
    CancelRun {
        run_id: String,
        integration: Option<String>,
    },
}

impl ControlMessage {
    /// Parses a control message; anything else is ignored by the caller (logged).
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// Broadcasts the message to every worker bound to `exchange`. Transient: a worker that is
    /// not running has nothing in flight, and the ledger carries the cancel for later.
    pub async fn broadcast(
        &self,
        publisher: &Publisher,
        exchange: &str,
    ) -> Result<(), PublishError> {
        let body = serde_json::to_vec(self).expect("control messages serialise");
        let properties = BasicProperties::default().with_content_type("application/json".into());
        match publisher.publish(exchange, "", &body, properties).await {
            // No worker is consuming: nothing in flight to abort.
            Err(PublishError::Unroutable { .. }) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_round_trips_as_json() {
        let message = ControlMessage::CancelRun {
            run_id: "r1".into(),
            integration: Some("hook".into()),
        };
        let body = serde_json::to_string(&message).unwrap();
        assert_eq!(
            body,
            r#"{"command":"cancelRun","runId":"r1","integration":"hook"}"#
        );
        assert_eq!(ControlMessage::parse(body.as_bytes()).unwrap(), message);
        assert!(ControlMessage::parse(b"{\"command\":\"reboot\"}").is_err());
    }
}
