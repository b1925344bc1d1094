//! How the GitHub integrations authenticate: a token, or a GitHub App installation whose
//! short-lived tokens octocrab exchanges and refreshes before they expire.

use std::path::PathBuf;

use octocrab::models::{AppId, InstallationId};
use serde::{Deserialize, Deserializer, de};

use crate::secret::Secret;

/// `auth:` of a GitHub integration: `token`, or `app_id` + `installation_id` + a private key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubAuth {
    /// A personal access token (fine-grained or classic) or an installation token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The GitHub App's id.
    #[serde(default, deserialize_with = "id")]
    pub app_id: Option<u64>,
    /// The id of the App's installation on the repositories' account.
    #[serde(default, deserialize_with = "id")]
    pub installation_id: Option<u64>,
    /// The App's private key (PEM), usually `${GITHUB_APP_PRIVATE_KEY}`.
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// A file holding the App's private key (PEM).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

/// A credential ready to use.
#[derive(Clone)]
pub enum Credential {
    Token(Secret),
    App {
        app_id: AppId,
        installation_id: InstallationId,
        key: octocrab::EncodingKey,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(***)"),
            Credential::App {
                app_id,
                installation_id,
                ..
            } => write!(f, "App({app_id}, installation {installation_id}, key ***)"),
        }
    }
}

impl Credential {
    /// What identifies the credential to the rate limiter (hashed there).
    pub fn limiter_parts(&self) -> Vec<String> {
        match self {
            Credential::Token(token) => vec!["token".into(), token.expose().to_owned()],
            Credential::App {
                app_id,
                installation_id,
                ..
            } => vec![
                "app".into(),
                app_id.to_string(),
                installation_id.to_string(),
            ],
        }
    }

    /// The `Authorization` value of a planned request (marked sensitive, so `preview` prints
    /// it redacted). An App's installation token is only known at send time.
    pub fn authorization(&self) -> String {
        match self {
            Credential::Token(token) => format!("Bearer {}", token.expose()),
            Credential::App { .. } => "Bearer <installation token, exchanged at send time>".into(),
        }
    }
}

impl GithubAuth {
    /// Rules the grammar cannot express; reads and parses the private key, so that a bad key
    /// stops the start.
    pub fn problems(&self) -> Vec<String> {
        match self.credential() {
            Ok(_) => Vec::new(),
            Err(problem) => vec![problem],
        }
    }

    /// The credential, or a sentence saying what is wrong (never quoting a secret).
    pub fn credential(&self) -> Result<Credential, String> {
        let app_fields = self.app_id.is_some()
            || self.installation_id.is_some()
            || self.private_key.is_some()
            || self.private_key_file.is_some();
        match (&self.token, app_fields) {
            (Some(_), true) => Err(
                "`auth` takes either `token` or the GitHub App fields (`app_id`, `installation_id`, `private_key` or `private_key_file`), not both".into(),
            ),
            (None, false) => Err(
                "`auth` needs a `token`, or `app_id`, `installation_id` and `private_key` or `private_key_file`".into(),
            ),
            (Some(token), false) if token.expose().trim().is_empty() => {
                Err("`auth.token` is empty".into())
            }
            // octocrab would panic on a token a header cannot carry: refuse it here.
            (Some(token), false)
                if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .is_err() =>
            {
                Err("`auth.token` has characters a header cannot carry (a line break?)".into())
            }
            (Some(token), false) => Ok(Credential::Token(token.clone())),
            (None, true) => self.app(),
        }
    }

    fn app(&self) -> Result<Credential, String> {
        let app_id = self.app_id.ok_or("`auth.app_id` is missing")?;
        let installation_id = self
            .installation_id
            .ok_or("`auth.installation_id` is missing")?;
        let pem = match (&self.private_key, &self.private_key_file) {
            (Some(_), Some(_)) => {
                return Err("`auth` takes `private_key` or `private_key_file`, not both".into());
            }
            (None, None) => {
                return Err("`auth` needs `private_key` or `private_key_file`".into());
            }
            (Some(key), None) => key.expose().as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read(path).map_err(|err| {
                format!(
                    "`auth.private_key_file`: cannot read {}: {err}",
                    path.display()
                )
            })?,
        };
        let key = octocrab::EncodingKey::from_rsa_pem(&pem).map_err(|err| {
            format!("`auth`: the private key is not an RSA private key in PEM form ({err})")
        })?;
        Ok(Credential::App {
            app_id: AppId(app_id),
            installation_id: InstallationId(installation_id),
            key,
        })
    }
}

/// An id written as a number, or as a string of digits (what `${VAR}` expands to).
fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    match Option::<Id>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Id::Number(n)) => Ok(Some(n)),
        Some(Id::Text(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom("must be a positive integer id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(yaml: &str) -> GithubAuth {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_token_or_a_complete_app_is_required_and_explained() {
        let cases = [
            ("{}", "needs a `token`"),
            ("token: ''", "is empty"),
            ("token: \"ghp_secret\\n\"", "a header cannot carry"),
            ("{token: t, app_id: 1}", "not both"),
            (
                "{app_id: 1, private_key: x}",
                "`auth.installation_id` is missing",
            ),
            ("{app_id: 1, installation_id: 2}", "needs `private_key` or"),
            (
                "{app_id: 1, installation_id: 2, private_key: x, private_key_file: /k}",
                "not both",
            ),
            (
                "{app_id: 1, installation_id: 2, private_key_file: /nonexistent/key.pem}",
                "cannot read /nonexistent/key.pem",
            ),
            (
                "{app_id: 1, installation_id: 2, private_key: not-a-key-but-secret}",
                "not an RSA private key in PEM form",
            ),
        ];
        for (yaml, expected) in cases {
            let problems = auth(yaml).problems();
            assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
            assert!(problems[0].contains(expected), "{yaml}: {problems:?}");
            assert!(
                !problems[0].contains("not-a-key-but-secret"),
                "{problems:?}"
            );
        }
        assert!(auth("token: ghp_x").problems().is_empty());
    }

    #[test]
    fn ids_may_be_numbers_or_digit_strings() {
        let parsed = auth("{app_id: '12', installation_id: 34}");
        assert_eq!(
            (parsed.app_id, parsed.installation_id),
            (Some(12), Some(34))
        );
        let error = serde_saphyr::from_str::<GithubAuth>("app_id: twelve").unwrap_err();
        assert!(error.to_string().contains("positive integer id"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let credential = auth("token: ghp_secret").credential().unwrap();
        assert_eq!(format!("{credential:?}"), "Token(***)");
        assert!(!format!("{:?}", auth("token: ghp_secret")).contains("ghp_secret"));
    }
}
