//! The deliveries in flight in this process, by run, so an operator can abort a run's.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

/// In-flight deliveries: (run id, integration) → the token that aborts that delivery.
#[derive(Debug, Default)]
pub struct InFlight {
    tokens: Mutex<HashMap<(String, String), CancellationToken>>,
}

/// Removes its entry when the delivery ends, however it ends.
pub struct Registration<'a> {
    in_flight: &'a InFlight,
    key: (String, String),
    pub token: CancellationToken,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.in_flight
            .tokens
            .lock()
            .expect("not poisoned")
            .remove(&self.key);
    }
}

impl InFlight {
    /// Registers a delivery under a child of `abort`, so shutdown aborts it as well.
    pub fn register(
        &self,
        run_id: &str,
        integration: &str,
        abort: &CancellationToken,
    ) -> Registration<'_> {
        let key = (run_id.to_owned(), integration.to_owned());
        let token = abort.child_token();
        self.tokens
            .lock()
            .expect("not poisoned")
            .insert(key.clone(), token.clone());
        Registration {
            in_flight: self,
            key,
            token,
        }
    }

    /// Aborts the run's in-flight deliveries (to one integration, or all); returns how many.
    pub fn abort(&self, run_id: &str, integration: Option<&str>) -> usize {
        let tokens = self.tokens.lock().expect("not poisoned");
        tokens
            .iter()
            .filter(|((run, name), _)| run == run_id && integration.is_none_or(|i| i == name))
            .map(|(_, token)| token.cancel())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_reaches_only_the_named_run_and_integration() {
        let in_flight = InFlight::default();
        let shutdown = CancellationToken::new();
        let a = in_flight.register("r1", "a", &shutdown);
        let b = in_flight.register("r1", "b", &shutdown);
        let other = in_flight.register("r2", "a", &shutdown);
        assert_eq!(in_flight.abort("r1", Some("b")), 1);
        assert!(b.token.is_cancelled() && !a.token.is_cancelled());
        assert_eq!(in_flight.abort("r1", None), 2);
        assert!(a.token.is_cancelled() && !other.token.is_cancelled());
        drop(a);
        assert_eq!(
            in_flight.abort("r1", None),
            1,
            "ended deliveries are forgotten"
        );
    }

    #[test]
    fn shutdown_reaches_every_registered_delivery() {
        let in_flight = InFlight::default();
        let shutdown = CancellationToken::new();
        let a = in_flight.register("r1", "a", &shutdown);
        shutdown.cancel();
        assert!(a.token.is_cancelled());
    }
}
