//! Which repositories a Git-host integration may write to: its `repositories:` allowlist of
//! globs, checked against the repository an event names before anything is read or written.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Deserializer, de};

/// `repositories:` of an integration that writes to repositories: globs over the repository's
/// path on its host (`owner/repo` on GitHub, `workspace/slug` on Bitbucket, the full path with
/// subgroups on GitLab). `*` stays within one path segment, `**` spans segments (GitLab
/// subgroups); matching ignores case, as GitHub, GitLab and Bitbucket do. Left out: every
/// repository the credential reaches.
#[derive(Clone, Default)]
pub struct Repositories {
    /// Empty only when the key is left out (an empty list is refused at load).
    globs: Vec<RepositoryGlob>,
}

/// One compiled pattern, with its text for messages.
#[derive(Clone)]
struct RepositoryGlob {
    text: String,
    matcher: GlobMatcher,
}

impl Repositories {
    /// `Ok` when the integration may write to the repository at `path`; otherwise why not, as
    /// a sentence (the event is skipped, not failed).
    pub fn admit(&self, path: &dyn fmt::Display) -> Result<(), String> {
        let path = path.to_string();
        if self.globs.is_empty() || self.globs.iter().any(|g| g.matcher.is_match(&path)) {
            return Ok(());
        }
        Err(format!(
            "repository `{path}` matches none of `repositories`"
        ))
    }

    /// Patterns with more segments than a repository path of this host has (`parts`), which
    /// could never match, as sentences: `github.com/acme/*` where `acme/*` was meant.
    pub fn problems_for_paths_of(&self, parts: usize, example: &str) -> Vec<String> {
        self.globs
            .iter()
            .filter(|glob| !glob.text.contains("**") && glob.text.split('/').count() > parts)
            .map(|glob| {
                format!(
                    "`repositories`: `{}` can never match: repositories here are `{example}`",
                    glob.text
                )
            })
            .collect()
    }
}

impl fmt::Debug for Repositories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.globs.iter().map(|glob| &glob.text))
            .finish()
    }
}

impl<'de> Deserialize<'de> for Repositories {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        if texts.is_empty() {
            return Err(de::Error::custom(
                "`repositories` is empty: list at least one repository, or leave the key out to \
                 allow every repository the credential reaches",
            ));
        }
        let globs = texts
            .into_iter()
            .map(|text| RepositoryGlob::parse(text).map_err(de::Error::custom))
            .collect::<Result<_, _>>()?;
        Ok(Self { globs })
    }
}

impl RepositoryGlob {
    /// Compiles one pattern, or says how it is malformed.
    fn parse(text: String) -> Result<Self, String> {
        let fail = |why: &str| Err(format!("`{text}` is not a repository pattern: {why}"));
        if text.contains("://") || text.starts_with("git@") || text.ends_with(".git") {
            return fail("write the repository's path, such as `acme/web-app`, not a git remote");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return fail("it contains whitespace");
        }
        let segments: Vec<&str> = text.split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return fail("it has an empty path segment (a leading, trailing or double `/`)");
        }
        if segments.iter().any(|s| s.contains("**") && *s != "**") {
            return fail("`**` must be a whole path segment, as in `acme/**`");
        }
        if segments.len() < 2 {
            return fail(
                "a repository path has at least two segments, such as `acme/web-app` or `acme/*`",
            );
        }
        // `*` must not cross `/`, so that `acme/*` does not reach into GitLab subgroups.
        let glob = GlobBuilder::new(&text)
            .literal_separator(true)
            .case_insensitive(true)
            .backslash_escape(true)
            .build();
        match glob {
            Ok(glob) => Ok(Self {
                matcher: glob.compile_matcher(),
                text,
            }),
            Err(err) => fail(&err.kind().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(patterns: &[&str]) -> Repositories {
        serde_json::from_value(serde_json::json!(patterns)).unwrap()
    }

    fn error(patterns: serde_json::Value) -> String {
        serde_json::from_value::<Repositories>(patterns.clone())
            .expect_err(&format!("{patterns} is refused"))
            .to_string()
    }

    #[test]
    fn left_out_it_admits_every_repository() {
        assert_eq!(Repositories::default().admit(&"any/repo"), Ok(()));
    }

    #[test]
    fn a_star_matches_within_one_segment() {
        let allowed = allow(&["acme/*", "platform/web-app"]);
        for path in ["acme/web-app", "acme/api", "platform/web-app"] {
            assert_eq!(allowed.admit(&path), Ok(()), "{path}");
        }
        for path in [
            "platform/api",
            "acme/sub/web-app",
            "evil/acme",
            "acmecorp/web-app",
        ] {
            assert_eq!(
                allowed.admit(&path),
                Err(format!(
                    "repository `{path}` matches none of `repositories`"
                )),
            );
        }
    }

    #[test]
    fn a_double_star_spans_gitlab_subgroups() {
        let allowed = allow(&["acme/**"]);
        for path in ["acme/web-app", "acme/platform/web-app", "acme/a/b/c"] {
            assert_eq!(allowed.admit(&path), Ok(()), "{path}");
        }
        assert!(allowed.admit(&"other/acme/web-app").is_err());
        let named = allow(&["**/web-app"]);
        assert_eq!(named.admit(&"acme/platform/web-app"), Ok(()));
        assert!(named.admit(&"acme/web-app-2").is_err());
    }

    #[test]
    fn matching_ignores_case_as_the_hosts_do() {
        let allowed = allow(&["Acme/Web-App", "platform/*"]);
        assert_eq!(allowed.admit(&"acme/web-app"), Ok(()));
        assert_eq!(allowed.admit(&"PLATFORM/API"), Ok(()));
    }

    #[test]
    fn question_marks_classes_and_alternatives_work() {
        let allowed = allow(&["acme/svc-?", "acme/[ab]pi", "team/{web,api}"]);
        for path in ["acme/svc-1", "acme/api", "acme/bpi", "team/web", "team/api"] {
            assert_eq!(allowed.admit(&path), Ok(()), "{path}");
        }
        assert!(allowed.admit(&"acme/svc-10").is_err());
        assert!(allowed.admit(&"team/docs").is_err());
    }

    #[test]
    fn malformed_patterns_are_refused_saying_why() {
        for (pattern, why) in [
            ("acme/[web", "unclosed character class"),
            ("acme/{web,api", "unclosed alternate group"),
            ("acme/web**", "`**` must be a whole path segment"),
            ("acme", "at least two segments"),
            ("**", "at least two segments"),
            ("acme/", "empty path segment"),
            ("/acme/web", "empty path segment"),
            ("acme//web", "empty path segment"),
            ("acme/web app", "whitespace"),
            ("https://github.com/acme/web", "not a git remote"),
            ("git@github.com:acme/web", "not a git remote"),
            ("acme/web.git", "not a git remote"),
        ] {
            let message = error(serde_json::json!([pattern]));
            assert!(
                message.starts_with(&format!("`{pattern}` is not a repository pattern: ")),
                "{message}"
            );
            assert!(message.contains(why), "{pattern}: {message}");
        }
        assert!(error(serde_json::json!([])).contains("`repositories` is empty"));
    }

    #[test]
    fn patterns_longer_than_the_hosts_paths_are_problems() {
        let allowed = allow(&["github.com/acme/*", "acme/*", "acme/**"]);
        assert_eq!(
            allowed.problems_for_paths_of(2, "owner/repo"),
            [
                "`repositories`: `github.com/acme/*` can never match: repositories here are `owner/repo`"
            ]
        );
        assert!(allowed.problems_for_paths_of(usize::MAX, "").is_empty());
    }

    #[test]
    fn debug_shows_the_patterns() {
        assert_eq!(
            format!("{:?}", allow(&["acme/*", "b/c"])),
            r#"["acme/*", "b/c"]"#
        );
    }
}
