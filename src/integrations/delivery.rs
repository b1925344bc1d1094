//! Delivery: a plan's steps sent in order, the object of the run they keep, and, when the
//! provider says the object the ledger kept is gone, one more plan without it.

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Integration, Io, Notification, Plan, Receipt};
use crate::failure::DeliveryError;

/// What a delivery achieved, and the run's object at the provider when the kind keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub receipt: Receipt,
    pub object_id: Option<String>,
}

impl Integration {
    /// Plans and sends. Checks `cancel` between steps and returns [`DeliveryError::Canceled`]
    /// once it fires.
    pub async fn deliver(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Receipt, DeliveryError> {
        Ok(self.deliver_keeping(notification, cancel).await?.receipt)
    }

    /// [`Integration::deliver`], also saying which object of the run the answers named.
    pub async fn deliver_keeping(
        &self,
        notification: &Notification<'_>,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliveryError> {
        if cancel.is_cancelled() {
            return Err(DeliveryError::Canceled);
        }
        let io = self.io(cancel, Utc::now());
        let mut notification = *notification;
        let mut gone = None;
        loop {
            match self.send_plan(&notification, &io, gone.is_none()).await? {
                Sent::Done(delivered) => return Ok(after_gone(gone, delivered)),
                // The object the ledger kept is gone at the provider: plan again as a delivery
                // without it would, which finds the object by what names it or makes a new
                // one. Steps sent before the gone one are planned again too, harmlessly: the
                // new plan finds what they made and edits it. Only once: that plan edits no
                // kept object, and a "gone" in it fails as the kind classifies it.
                Sent::Gone(what) => {
                    gone = Some(what);
                    notification.object_id = None;
                }
            }
        }
    }

    /// Plans and sends the steps in order. With `may_be_gone`, a step that edits the kept
    /// object and hears that it is gone stops the plan (nothing after it is sent) and says so.
    async fn send_plan(
        &self,
        notification: &Notification<'_>,
        io: &Io<'_>,
        may_be_gone: bool,
    ) -> Result<Sent, DeliveryError> {
        let steps = match self.built.plan(notification, io).await? {
            // Logged at debug level by the dispatcher, like every skip.
            Plan::Skip(reason) => {
                return Ok(Sent::Done(Delivered {
                    receipt: Receipt::Skipped(reason),
                    object_id: None,
                }));
            }
            Plan::Send(steps) => steps,
        };
        let mut done = Vec::with_capacity(steps.len());
        let mut kept = Vec::new();
        for step in steps {
            if io.cancel.is_cancelled() {
                return Err(DeliveryError::Canceled);
            }
            let edits_kept = step.edits_kept().filter(|_| may_be_gone).map(str::to_owned);
            let (request, receipt, object) = step.into_parts();
            let answer = match &edits_kept {
                Some(_) => {
                    let io = Io {
                        classify: self.built.classifier_unless_gone(),
                        ..*io
                    };
                    self.built.send(request, &io).await?
                }
                None => self.built.send(request, io).await?,
            };
            if let Some(what) = edits_kept.filter(|_| self.built.gone(&answer)) {
                return Ok(Sent::Gone(what));
            }
            done.push(receipt(&answer));
            kept.extend(object.and_then(|object| object(&answer)));
        }
        Ok(Sent::Done(Delivered {
            receipt: Receipt::Sent(done.join("; ")),
            object_id: (!kept.is_empty()).then(|| kept.join(" ")),
        }))
    }
}
/// What sending a plan came to.
enum Sent {
    Done(Delivered),
    /// A step that edits the kept object heard that it is gone; names it as the step did.
    Gone(String),
}

/// `delivered`, its receipt saying first which kept object was gone, if one was.
fn after_gone(gone: Option<String>, mut delivered: Delivered) -> Delivered {
    if let Some(what) = gone {
        delivered.receipt = match delivered.receipt {
            Receipt::Sent(text) => Receipt::Sent(format!("{what} was gone; {text}")),
            Receipt::Skipped(reason) => Receipt::Skipped(format!("{what} was gone; {reason}")),
        };
    }
    delivered
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::integrations::github::check_run::GithubCheckRun;
    use crate::integrations::gitlab::note::GitlabMrNote;
    use crate::integrations::kind::classify_unless_gone;
    use crate::integrations::slack_app::SlackApp;
    use crate::integrations::{Answer, Kind};

    /// A step that edits the kept object takes the provider's "gone" as an answer (its
    /// delivery then plans again); any other failure stays what the kind's classifier makes of
    /// it, and so does a "gone" to any other step.
    #[test]
    fn only_a_step_editing_the_kept_object_takes_gone_as_an_answer() {
        let answer = |status: u16, body: &str| Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: reqwest::header::HeaderMap::new(),
            body: body.to_owned(),
        };
        let now = Utc::now();
        let not_found = answer(404, r#"{"message":"Not Found"}"#);
        assert!(GithubCheckRun::classify(&not_found, now).is_err());
        assert_eq!(
            classify_unless_gone::<GithubCheckRun>(&not_found, now),
            Ok(())
        );
        assert_eq!(
            classify_unless_gone::<GitlabMrNote>(&not_found, now),
            Ok(())
        );
        let forbidden = answer(403, r#"{"message":"Forbidden"}"#);
        assert!(classify_unless_gone::<GithubCheckRun>(&forbidden, now).is_err());

        let deleted = answer(200, r#"{"ok":false,"error":"message_not_found"}"#);
        assert!(SlackApp::classify(&deleted, now).is_err());
        assert_eq!(classify_unless_gone::<SlackApp>(&deleted, now), Ok(()));
        for kept_but_locked in ["cant_update_message", "edit_window_closed"] {
            let body = format!(r#"{{"ok":false,"error":"{kept_but_locked}"}}"#);
            let locked = answer(200, &body);
            assert!(classify_unless_gone::<SlackApp>(&locked, now).is_err());
        }
        // Slack says a message is gone in its body; a 404 is no Web API answer.
        assert!(classify_unless_gone::<SlackApp>(&answer(404, ""), now).is_err());
    }
}
