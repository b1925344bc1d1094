//! How the Bitbucket integration authenticates: an Atlassian API token (basic auth with the
//! account e-mail) or a repository/project/workspace access token (bearer).
//!
//! App Passwords are gone: Atlassian stopped creating them on 2025-09-09 and they stopped
//! working on 2026-06-09. They authenticated with the Bitbucket *username*; API tokens
//! authenticate with the Atlassian account *e-mail*. The old keys `username` and `password`
//! are still read (as `email` and `api_token`) so that a config only needs new values, and a
//! `username` that is not an e-mail is refused at load with that explanation instead of a 401
//! on every send.

use base64::Engine as _;
use serde::Deserialize;

use crate::secret::Secret;

/// `auth:` of a Bitbucket integration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitbucketAuth {
    /// With `api_token`: the Atlassian account's e-mail (basic auth). `username` is read as an
    /// older name of it.
    #[serde(default, alias = "username")]
    pub email: Option<String>,
    /// An Atlassian API token with Bitbucket scopes. `password` is read as an older name of it.
    #[serde(default, alias = "password")]
    pub api_token: Option<Secret>,
    /// A repository, project or workspace access token (bearer).
    #[serde(default)]
    pub token: Option<Secret>,
}

/// Why a `username` that is not an e-mail cannot work any more.
const NOT_AN_EMAIL: &str = "`auth.email` must be the Atlassian account's e-mail address: API \
     tokens authenticate with the e-mail, and the App Passwords that used a Bitbucket username \
     stopped working on 2026-06-09 (create an API token, or use an access token as `token`)";

impl BitbucketAuth {
    /// The `Authorization` header value, or a sentence saying what is wrong.
    pub fn authorization(&self) -> Result<String, String> {
        match (&self.email, &self.api_token, &self.token) {
            (Some(email), Some(api_token), None) if !email.is_empty() => {
                if !looks_like_email(email) {
                    return Err(NOT_AN_EMAIL.into());
                }
                if api_token.expose().trim().is_empty() {
                    return Err("`auth.api_token` is empty".into());
                }
                let pair = format!("{email}:{}", api_token.expose());
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, None, Some(token)) if !token.expose().trim().is_empty() => {
                Ok(format!("Bearer {}", token.expose()))
            }
            (None, None, None) => Err(
                "`auth` needs `email` and `api_token` (an Atlassian API token), or `token` (an \
                 access token)"
                    .into(),
            ),
            (_, _, Some(_)) if self.email.is_some() || self.api_token.is_some() => {
                Err("`auth` takes `email` + `api_token`, or `token`, not both".into())
            }
            (None, None, Some(_)) => Err("`auth.token` is empty".into()),
            _ => Err("`auth.email` and `auth.api_token` go together and must not be empty".into()),
        }
    }
}

/// `local@domain`: enough to tell an e-mail from a Bitbucket username.
fn looks_like_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(email: Option<&str>, api_token: Option<&str>, token: Option<&str>) -> BitbucketAuth {
        BitbucketAuth {
            email: email.map(str::to_owned),
            api_token: api_token.map(Secret::new),
            token: token.map(Secret::new),
        }
    }

    #[test]
    fn api_tokens_use_basic_auth_with_the_email_and_access_tokens_bearer() {
        assert_eq!(
            auth(Some("ci@example.com"), Some("tk"), None)
                .authorization()
                .unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("ci@example.com:tk")
            )
        );
        assert_eq!(
            auth(None, None, Some("tk")).authorization().unwrap(),
            "Bearer tk"
        );
    }

    #[test]
    fn auth_combinations_are_explained_without_secrets() {
        for (case, expected) in [
            (auth(None, None, None), "needs `email` and `api_token`"),
            (auth(Some("ci@x.io"), None, Some("tk")), "not both"),
            (auth(Some("ci@x.io"), None, None), "go together"),
            (auth(None, Some("secret-pw"), None), "go together"),
            (auth(None, None, Some(" ")), "is empty"),
            (auth(Some("ci@x.io"), Some(" "), None), "is empty"),
            (auth(Some("ci-bot"), Some("secret-pw"), None), "2026-06-09"),
        ] {
            let problem = case.authorization().unwrap_err();
            assert!(problem.contains(expected), "{problem}");
            assert!(!problem.contains("secret-pw"));
        }
    }

    #[test]
    fn the_old_key_names_are_read_as_email_and_api_token() {
        let auth: BitbucketAuth =
            serde_json::from_str(r#"{"username": "ci@example.com", "password": "tk"}"#).unwrap();
        assert_eq!(auth.email.as_deref(), Some("ci@example.com"));
        assert_eq!(auth.api_token.unwrap().expose(), "tk");
    }
}
