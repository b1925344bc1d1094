//! How the Bitbucket integration authenticates: basic (username + app password or API token)
//! or a bearer access token.

use base64::Engine as _;
use serde::Deserialize;

use crate::secret::Secret;

/// `auth:` of a Bitbucket integration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitbucketAuth {
    /// With `password`: basic auth (for API tokens, the Atlassian account's email).
    #[serde(default)]
    pub username: Option<String>,
    /// An app password or API token.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A repository, project or workspace access token (bearer).
    #[serde(default)]
    pub token: Option<Secret>,
}

impl BitbucketAuth {
    /// The `Authorization` header value, or a sentence saying what is wrong.
    pub fn authorization(&self) -> Result<String, String> {
        match (&self.username, &self.password, &self.token) {
            (Some(user), Some(password), None) if !user.is_empty() => {
                let pair = format!("{user}:{}", password.expose());
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, None, Some(token)) if !token.expose().trim().is_empty() => {
                Ok(format!("Bearer {}", token.expose()))
            }
            (None, None, None) => Err(
                "`auth` needs `username` and `password` (app password or API token), or `token`"
                    .into(),
            ),
            (_, _, Some(_)) if self.username.is_some() || self.password.is_some() => {
                Err("`auth` takes `username` + `password`, or `token`, not both".into())
            }
            (None, None, Some(_)) => Err("`auth.token` is empty".into()),
            _ => {
                Err("`auth.username` and `auth.password` go together and must not be empty".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_combinations_are_explained_without_secrets() {
        let auth =
            |user: Option<&str>, password: Option<&str>, token: Option<&str>| BitbucketAuth {
                username: user.map(str::to_owned),
                password: password.map(Secret::new),
                token: token.map(Secret::new),
            };
        assert_eq!(
            auth(Some("ci"), Some("pw"), None).authorization().unwrap(),
            "Basic Y2k6cHc="
        );
        assert_eq!(
            auth(None, None, Some("tk")).authorization().unwrap(),
            "Bearer tk"
        );
        for (case, expected) in [
            (auth(None, None, None), "needs `username` and `password`"),
            (auth(Some("ci"), None, Some("tk")), "not both"),
            (auth(Some("ci"), None, None), "go together"),
            (auth(None, Some("secret-pw"), None), "go together"),
            (auth(None, None, Some(" ")), "is empty"),
        ] {
            let problem = case.authorization().unwrap_err();
            assert!(problem.contains(expected), "{problem}");
            assert!(!problem.contains("secret-pw"));
        }
    }
}
