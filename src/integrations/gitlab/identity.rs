//! Who the worker is on GitLab, so that the note search edits only notes it wrote: the user of
//! its token (`GET /user`; a project or group access token's bot user). Looked up the first
//! time a note carries a run's marker, then kept: it cannot change while the process runs.

use reqwest::Method;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::GitlabClient;
use crate::failure::DeliveryError;
use crate::integrations::Io;

/// The id of the user the integration writes as, looked up once.
#[derive(Debug, Default)]
pub struct Identity {
    user_id: OnceCell<u64>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
}

impl Identity {
    /// The user's id, looked up on the first call; a failed lookup is the delivery's failure
    /// (classified as any answer is) and is tried again by the next delivery.
    pub async fn user_id(&self, client: &GitlabClient, io: &Io<'_>) -> Result<u64, DeliveryError> {
        self.user_id
            .get_or_try_init(|| look_up(client, io))
            .await
            .copied()
    }
}

async fn look_up(client: &GitlabClient, io: &Io<'_>) -> Result<u64, DeliveryError> {
    let context = "cannot tell which notes are ours (GET /user)";
    let request = client.request(Method::GET, "/user", None)?;
    let answer = client
        .send(request, io)
        .await
        .map_err(|err| err.context(context))?;
    let user: User = serde_json::from_str(&answer.body).map_err(|err| {
        DeliveryError::permanent(format!(
            "{context}: GitLab answered with an unexpected user: {err}"
        ))
    })?;
    Ok(user.id)
}
