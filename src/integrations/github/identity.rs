//! Who the worker is on GitHub, so that the comment search edits only comments it wrote: a
//! token's user (`GET /user`), or a GitHub App's bot `<slug>[bot]` (`GET /app` with the App's
//! JWT, since an installation token cannot call `GET /user`). Looked up the first time a
//! comment carries a run's marker, then kept: it cannot change while the process runs.

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::auth::Credential;
use super::client::GithubClient;
use crate::failure::{DeliveryError, error_chain};
use crate::integrations::{Answer, Io};

/// What a failed lookup says first.
const LOOKING_UP: &str = "cannot tell which comments are ours";

/// The login the integration writes as, looked up once.
#[derive(Debug, Default)]
pub struct Identity {
    login: OnceCell<String>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct App {
    slug: String,
}

impl Identity {
    /// The login, looked up on the first call; a failed lookup is the delivery's failure
    /// (classified as any answer is) and is tried again by the next delivery.
    pub async fn login(&self, client: &GithubClient, io: &Io<'_>) -> Result<&str, DeliveryError> {
        self.login
            .get_or_try_init(|| look_up(client, io))
            .await
            .map(String::as_str)
    }

    /// Whether a comment whose author is `author` (none for a deleted account) was written by
    /// `login` (GitHub logins ignore case).
    pub fn wrote(login: &str, author: Option<&str>) -> bool {
        author.is_some_and(|author| author.eq_ignore_ascii_case(login))
    }
}

async fn look_up(client: &GithubClient, io: &Io<'_>) -> Result<String, DeliveryError> {
    match client.credential() {
        Credential::Token(_) => {
            let request = client.request(Method::GET, "/user", None)?;
            let answer = client
                .send(request, io)
                .await
                .map_err(|err| err.context(&format!("{LOOKING_UP} (GET /user)")))?;
            Ok(parse::<User>(&answer, "/user")?.login)
        }
        Credential::App { app_id, key, .. } => {
            let jwt = octocrab::auth::create_jwt(*app_id, key).map_err(|err| {
                DeliveryError::permanent(format!(
                    "{LOOKING_UP}: cannot sign the GitHub App's JWT: {}",
                    error_chain(&err)
                ))
            })?;
            // Sent as it is: `client.send` would put an installation token in the JWT's place.
            let mut request = client.request(Method::GET, "/app", None)?;
            request.header(AUTHORIZATION, &format!("Bearer {jwt}"), true);
            let answer = io
                .send(request)
                .await
                .map_err(|err| err.context(&format!("{LOOKING_UP} (GET /app)")))?;
            Ok(format!("{}[bot]", parse::<App>(&answer, "/app")?.slug))
        }
    }
}

/// The answer of `GET {route}` as `T`; an answer of another shape is transient, as for pages.
fn parse<T: DeserializeOwned>(answer: &Answer, route: &str) -> Result<T, DeliveryError> {
    serde_json::from_str(&answer.body).map_err(|err| {
        DeliveryError::transient(format!(
            "{LOOKING_UP}: GitHub answered GET {route} with unexpected JSON: {err}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_match_whatever_their_case_and_a_ghost_is_nobody() {
        assert!(Identity::wrote("ci-bot", Some("CI-Bot")));
        assert!(Identity::wrote("notifier[bot]", Some("notifier[bot]")));
        assert!(!Identity::wrote("notifier[bot]", Some("notifier")));
        assert!(!Identity::wrote("ci-bot", None));
    }
}
