//! Repositories named by a git remote: https, scp-like `git@host:owner/repo` and `ssh://`.

use std::fmt;

/// A hosted repository, `owner/name` on `host` (lower-cased host, no `.git`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub host: String,
    pub owner: String,
    pub name: String,
}

impl Repo {
    /// Parses a git remote. Anything that is not `host` + exactly `owner/name` is `None`
    /// (a local path, a nested GitLab group): such runs simply have no repository.
    pub fn from_remote(remote: &str) -> Option<Self> {
        let (host, path) = host_and_path(remote)?;
        let (owner, name) = path.split_once('/')?;
        (valid_segment(owner) && valid_segment(name)).then(|| Self {
            host,
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether the repository lives on `host` (case-insensitive, `www.` ignored).
    pub fn is_on(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.host == host.strip_prefix("www.").unwrap_or(&host)
    }
}

/// A git remote's host (lower case, no `www.`, no user or port) and repository path (no
/// surrounding `/`, no `.git`), for the https, scp-like and `ssh://` forms; `None` for local
/// paths and other schemes. The path is not checked: callers decide how many parts it has.
pub fn host_and_path(remote: &str) -> Option<(String, &str)> {
    let remote = remote.trim();
    let (host, path) = if let Some((scheme, rest)) = remote.split_once("://") {
        if !matches!(
            scheme.to_ascii_lowercase().as_str(),
            "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git"
        ) {
            return None;
        }
        let (authority, path) = rest.split_once('/')?;
        // Credentials may precede the host (`https://token@host/...`): never keep them.
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host_port.split_once(':').map_or(host_port, |(h, _)| h);
        (host, path)
    } else {
        // scp-like syntax: `[user@]host:owner/repo.git`
        let (user_host, path) = remote.split_once(':')?;
        let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
        (host, path)
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    host_ok.then(|| (host.to_owned(), path))
}

/// One part of a repository path: letters, digits, `-`, `_`, `.`, and not `.` or `..`.
pub fn valid_segment(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(host: &str, owner: &str, name: &str) -> Option<Repo> {
        Some(Repo {
            host: host.into(),
            owner: owner.into(),
            name: name.into(),
        })
    }

    #[test]
    fn every_remote_form_names_the_same_repository() {
        let expected = repo("github.com", "acme", "web-app");
        for remote in [
            "https://github.com/acme/web-app.git",
            "https://github.com/acme/web-app",
            "https://github.com/acme/web-app/",
            "http://www.github.com/acme/web-app.git",
            "https://x-access-token:ghs_secret@github.com/acme/web-app.git",
            "git@github.com:acme/web-app.git",
            "git@github.com:acme/web-app",
            "github.com:acme/web-app.git",
            "ssh://git@github.com/acme/web-app.git",
            "ssh://git@github.com:22/acme/web-app",
            "git://github.com/acme/web-app.git",
            "  HTTPS://GitHub.com/acme/web-app.git  ",
        ] {
            assert_eq!(Repo::from_remote(remote), expected, "{remote}");
        }
    }

    #[test]
    fn enterprise_and_bitbucket_hosts_are_kept() {
        assert_eq!(
            Repo::from_remote("git@github.acme.corp:platform/api.git"),
            repo("github.acme.corp", "platform", "api")
        );
        assert_eq!(
            Repo::from_remote("https://bitbucket.org/team/repo.name.git"),
            repo("bitbucket.org", "team", "repo.name")
        );
    }

    #[test]
    fn remotes_that_name_no_single_repository_are_none() {
        for remote in [
            "",
            "/home/me/repo",
            "file:///srv/git/repo.git",
            "https://gitlab.com/group/sub/repo.git",
            "https://github.com/acme",
            "https://github.com/acme/../etc",
            "https://github.com/acme/web app",
            "git@github.com:acme/<script>.git",
            "https://github.com/acme/repo?x=1",
        ] {
            assert_eq!(Repo::from_remote(remote), None, "{remote}");
        }
    }

    #[test]
    fn host_match_ignores_case_and_www() {
        let repo = Repo::from_remote("https://github.com/a/b").unwrap();
        assert!(repo.is_on("GitHub.com"));
        assert!(repo.is_on("www.github.com"));
        assert!(!repo.is_on("github.acme.corp"));
    }
}
