//! Repositories named by a git remote: https, scp-like `git@host:owner/repo` and `ssh://`;
//! and the remote itself with its credentials taken out.

use std::borrow::Cow;
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

/// `remote` without the secret part of its user-info, for every output to see instead:
/// - with a scheme other than ssh (`https://x-access-token:<token>@host/…`,
///   `https://gitlab-ci-token:<job token>@host/…`, `https://<token>@host/…`), the whole
///   user-info goes, since a user name alone may be a token there;
/// - `ssh://` (and `git+ssh://`, `ssh+git://`) keeps the user name, which only picks the account
///   (`git`), and loses a password: `ssh://user:pass@host/…` becomes `ssh://user@host/…`;
/// - scp-like `git@host:owner/repo` has no secret and stays; `user:pass@host:…` loses `:pass`.
pub fn without_credentials(remote: &str) -> Cow<'_, str> {
    if let Some((scheme, rest)) = remote.split_once("://") {
        // RFC 3986: the authority ends at the first `/`, `?` or `#`; user-info ends at its last `@`.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let Some((user_info, host)) = rest[..authority_end].rsplit_once('@') else {
            return Cow::Borrowed(remote);
        };
        let ssh = matches!(
            scheme.trim().to_ascii_lowercase().as_str(),
            "ssh" | "git+ssh" | "ssh+git"
        );
        let user = match user_info.split_once(':') {
            Some((user, _)) if ssh => user,
            None if ssh => return Cow::Borrowed(remote),
            _ => "",
        };
        let at = if user.is_empty() { "" } else { "@" };
        let after = &rest[authority_end..];
        Cow::Owned(format!("{scheme}://{user}{at}{host}{after}"))
    } else {
        // scp-like `[user@]host:path`: the user-info ends at the last `@` before the last `:`.
        let Some((user_info, rest)) = remote
            .rfind(':')
            .and_then(|colon| remote[..colon].rfind('@'))
            .map(|at| (&remote[..at], &remote[at..]))
        else {
            return Cow::Borrowed(remote);
        };
        match user_info.split_once(':') {
            Some((user, _)) => Cow::Owned(format!("{user}{rest}")),
            None => Cow::Borrowed(remote),
        }
    }
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
    fn credentials_are_taken_out_of_remotes() {
        for (remote, expected) in [
            (
                "https://gitlab-ci-token:glcbt-64_s3cr3t@gitlab.com/acme/web-app.git",
                "https://gitlab.com/acme/web-app.git",
            ),
            (
                "https://x-access-token:ghs_s3cr3t@github.com/acme/web-app.git",
                "https://github.com/acme/web-app.git",
            ),
            // A token alone as the user name (GitHub accepts it).
            (
                "https://ghp_s3cr3t@github.com/acme/web-app",
                "https://github.com/acme/web-app",
            ),
            (
                "HTTP://oauth2:s3cr3t@Git.Example.com:8443/a/b?x#y",
                "HTTP://Git.Example.com:8443/a/b?x#y",
            ),
            ("https://u:p%40ss@host", "https://host"),
            ("git://anon:s3cr3t@host/a/b.git", "git://host/a/b.git"),
            // ssh keeps the account, never a password.
            (
                "ssh://deploy:s3cr3t@host:22/a/b.git",
                "ssh://deploy@host:22/a/b.git",
            ),
            ("git+ssh://git:s3cr3t@host/a/b", "git+ssh://git@host/a/b"),
            ("deploy:s3cr3t@host:a/b.git", "deploy@host:a/b.git"),
        ] {
            assert_eq!(without_credentials(remote), expected, "{remote}");
        }
    }

    #[test]
    fn remotes_without_secrets_stay_as_they_are() {
        for remote in [
            "https://github.com/acme/web-app.git",
            "ssh://git@github.com/acme/web-app.git",
            "ssh://git@github.com:22/acme/web-app",
            "git@github.com:acme/web-app.git",
            "github.com:acme/web-app.git",
            "git@github.com:acme/web-app@v2.git",
            "https://github.com/acme/web-app@v2",
            "/home/me/repo",
            "C:\\src\\repo",
            "file:///srv/git/repo.git",
            "",
        ] {
            assert!(
                matches!(without_credentials(remote), Cow::Borrowed(r) if r == remote),
                "{remote}"
            );
        }
    }

    #[test]
    fn a_remote_without_credentials_names_the_same_repository() {
        let remote = "https://x-access-token:ghs_s3cr3t@github.com/acme/web-app.git";
        assert_eq!(
            Repo::from_remote(&without_credentials(remote)),
            Repo::from_remote(remote)
        );
    }

    #[test]
    fn host_match_ignores_case_and_www() {
        let repo = Repo::from_remote("https://github.com/a/b").unwrap();
        assert!(repo.is_on("GitHub.com"));
        assert!(repo.is_on("www.github.com"));
        assert!(!repo.is_on("github.acme.corp"));
    }
}
