//! How the GitLab integrations authenticate: an access token in `PRIVATE-TOKEN`, or an OAuth
//! token as a bearer.

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::secret::Secret;

/// `auth:` of a GitLab integration: exactly one of `token` and `oauth_token`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabAuth {
    /// A personal, project or group access token (scope `api`), sent as `PRIVATE-TOKEN`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// An OAuth 2 access token (scope `api`), sent as `Authorization: Bearer`.
    #[serde(default)]
    pub oauth_token: Option<Secret>,
}

impl GitlabAuth {
    /// The header that carries the credential and its value, or a sentence saying what is
    /// wrong (never quoting the secret).
    pub fn header(&self) -> Result<(HeaderName, String), String> {
        let (name, value) = match (&self.token, &self.oauth_token) {
            (Some(token), None) => (
                HeaderName::from_static("private-token"),
                token.expose().trim().to_owned(),
            ),
            (None, Some(token)) => (AUTHORIZATION, format!("Bearer {}", token.expose().trim())),
            (None, None) => {
                return Err("`auth` needs `token` (an access token) or `oauth_token`".into());
            }
            (Some(_), Some(_)) => {
                return Err("`auth` takes `token` or `oauth_token`, not both".into());
            }
        };
        if value.is_empty() || value == "Bearer " || value == "Bearer" {
            return Err("`auth`: the token is empty".into());
        }
        if HeaderValue::from_str(&value).is_err() {
            return Err("`auth`: the token contains characters a header cannot carry".into());
        }
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>, oauth: Option<&str>) -> GitlabAuth {
        GitlabAuth {
            token: token.map(Secret::new),
            oauth_token: oauth.map(Secret::new),
        }
    }

    #[test]
    fn access_tokens_go_in_private_token_and_oauth_tokens_as_bearer() {
        let (name, value) = auth(Some("glpat-x"), None).header().unwrap();
        assert_eq!(
            (name.as_str(), value.as_str()),
            ("private-token", "glpat-x")
        );
        let (name, value) = auth(None, Some("oa")).header().unwrap();
        assert_eq!(
            (name.as_str(), value.as_str()),
            ("authorization", "Bearer oa")
        );
    }

    #[test]
    fn bad_auth_is_explained_without_the_secret() {
        for (case, expected) in [
            (auth(None, None), "needs `token`"),
            (auth(Some("glpat-secret"), Some("x")), "not both"),
            (auth(Some(" "), None), "empty"),
            (auth(None, Some("")), "empty"),
            (auth(Some("glpat-secret\n1"), None), "cannot carry"),
        ] {
            let problem = case.header().unwrap_err();
            assert!(problem.contains(expected), "{problem}");
            assert!(!problem.contains("glpat-secret"), "{problem}");
        }
    }
}
