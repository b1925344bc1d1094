//! The GitLab project of a run: the full path from the git remote (nested groups included),
//! and its URL-encoded form as the API's `:id`.

use crate::event::{RunEvent, host_and_path, valid_segment};

/// A GitLab project path such as `group/sub/project` (two or more parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPath(String);

impl ProjectPath {
    /// The project a remote on `host` names; `Err` says why there is none (a skip).
    pub fn of(event: &RunEvent, host: &str) -> Result<Self, String> {
        let remote = event
            .data
            .commit
            .remote_origin
            .as_deref()
            .ok_or("the run has no commit.remoteOrigin")?;
        let (remote_host, path) =
            host_and_path(remote).ok_or("commit.remoteOrigin names no GitLab project")?;
        let wanted = host.to_ascii_lowercase();
        if remote_host != wanted.strip_prefix("www.").unwrap_or(&wanted) {
            return Err(format!("the repository is on {remote_host}, not on {host}"));
        }
        Self::parse(path).ok_or_else(|| "commit.remoteOrigin names no GitLab project".into())
    }

    /// `group/sub/project`: at least two parts, each letters, digits, `-`, `_` or `.`.
    pub fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.split('/').collect();
        (parts.len() >= 2 && parts.iter().all(|part| valid_segment(part)))
            .then(|| Self(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The API's `:id`: the path with `/` as `%2F`. It is one path segment, so a URL builder
    /// must not encode it again (`%252F`), and proxies in front of GitLab must not decode it.
    pub fn encoded(&self) -> String {
        self.0.replace('/', "%2F")
    }
}

impl std::fmt::Display for ProjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(remote: &str) -> RunEvent {
        let mut value: serde_json::Value =
            serde_json::from_str(include_str!("../../../config/example-event.json")).unwrap();
        value["data"]["commit"]["remoteOrigin"] = json!(remote);
        RunEvent::parse(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn every_remote_form_names_the_project_with_its_groups() {
        for remote in [
            "https://gitlab.com/acme/platform/web-app.git",
            "https://gitlab.com/acme/platform/web-app",
            "https://oauth2:glpat-secret@gitlab.com/acme/platform/web-app.git",
            "git@gitlab.com:acme/platform/web-app.git",
            "ssh://git@gitlab.com:2222/acme/platform/web-app.git",
            "ssh://git@GitLab.com/acme/platform/web-app",
        ] {
            let project = ProjectPath::of(&event(remote), "gitlab.com").unwrap();
            assert_eq!(project.as_str(), "acme/platform/web-app", "{remote}");
            assert_eq!(project.encoded(), "acme%2Fplatform%2Fweb-app");
        }
        let flat = ProjectPath::of(&event("git@gitlab.com:acme/web-app.git"), "gitlab.com");
        assert_eq!(flat.unwrap().encoded(), "acme%2Fweb-app");
    }

    #[test]
    fn other_hosts_and_odd_paths_are_skipped_with_a_reason() {
        let self_managed = event("https://git.acme.corp/team/app.git");
        assert!(ProjectPath::of(&self_managed, "git.acme.corp").is_ok());
        for (remote, reason) in [
            (
                "https://github.com/acme/app.git",
                "on github.com, not on gitlab.com",
            ),
            ("https://gitlab.com/acme", "names no GitLab project"),
            ("https://gitlab.com/acme/../etc", "names no GitLab project"),
            ("https://gitlab.com/acme/a%2Fb", "names no GitLab project"),
            ("/srv/git/app", "names no GitLab project"),
        ] {
            let error = ProjectPath::of(&event(remote), "gitlab.com").unwrap_err();
            assert!(error.contains(reason), "{remote}: {error}");
        }
    }
}
