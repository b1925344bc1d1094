//! Which commit on which hosted repository an event is about, for the integrations that put
//! something on a commit (statuses, pull request comments).

use crate::event::{CommitSha, Repo, RunEvent};

/// The repository and commit of a run, when the run has both and the repository is on `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitTarget {
    pub repo: Repo,
    pub sha: CommitSha,
}

impl CommitTarget {
    /// `Err` says, as a sentence, why the event has nothing for an integration on `host`
    /// (a skip, not a failure: runs outside git are normal).
    pub fn of(event: &RunEvent, host: &str) -> Result<Self, String> {
        let sha = event
            .data
            .commit
            .sha
            .clone()
            .ok_or_else(|| "the run has no commit sha".to_owned())?;
        Ok(Self {
            repo: repo_on(event, host)?,
            sha,
        })
    }
}

/// The run's repository when it is on `host`; `Err` says why not.
pub fn repo_on(event: &RunEvent, host: &str) -> Result<Repo, String> {
    let repo = match event.data.commit.remote_origin.as_deref() {
        None => return Err("the run has no commit.remoteOrigin".to_owned()),
        Some(remote) => Repo::from_remote(remote)
            .ok_or_else(|| "commit.remoteOrigin names no owner/repository".to_owned())?,
    };
    if !repo.is_on(host) {
        return Err(format!("the repository is on {}, not on {host}", repo.host));
    }
    Ok(repo)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(commit: serde_json::Value) -> RunEvent {
        let mut value: serde_json::Value =
            serde_json::from_str(include_str!("../../config/example-event.json")).unwrap();
        value["data"]["commit"] = commit;
        RunEvent::parse(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn runs_without_sha_repo_or_on_another_host_are_skipped_with_a_reason() {
        let sha = "5a7edc9a156e417068060d67109021351fc7d9b8";
        let cases = [
            (
                json!({"remoteOrigin": "https://github.com/a/b"}),
                "no commit sha",
            ),
            (json!({"sha": sha}), "no commit.remoteOrigin"),
            (
                json!({"sha": sha, "remoteOrigin": "/srv/repo"}),
                "names no owner",
            ),
            (
                json!({"sha": sha, "remoteOrigin": "git@bitbucket.org:a/b.git"}),
                "on bitbucket.org, not on github.com",
            ),
        ];
        for (commit, reason) in cases {
            let error = CommitTarget::of(&event(commit), "github.com").unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
        let target = CommitTarget::of(
            &event(json!({"sha": sha, "remoteOrigin": "git@github.com:a/b.git"})),
            "github.com",
        )
        .unwrap();
        assert_eq!(target.repo.to_string(), "a/b");
        assert_eq!(target.sha.as_str(), sha);
    }
}
