//! Finding things on GitHub before a comment is written: the open pull requests of a commit,
//! and this worker's earlier comment for a run (paging through every comment of the PR; only
//! comments it wrote count, whoever else copied the marker).

use serde::Deserialize;

use super::client::GithubClient;
use super::identity::Identity;
use crate::event::{CommitSha, Repo};
use crate::failure::DeliveryError;
use crate::integrations::Io;

/// GitHub's largest page.
pub const PER_PAGE: u32 = 100;
/// A guard against a server whose pages never end: 100,000 comments.
const MAX_PAGES: u32 = 1_000;

/// The parts of a pull request the lookup needs.
#[derive(Debug, Deserialize)]
struct PullRequest {
    number: u64,
    state: String,
    head: Head,
}

#[derive(Debug, Deserialize)]
struct Head {
    sha: String,
}

/// The parts of a comment the search needs.
#[derive(Debug, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    /// `null` for a deleted account.
    #[serde(default)]
    user: Option<Author>,
}

#[derive(Debug, Deserialize)]
struct Author {
    login: String,
}

/// Open pull requests whose head is `sha` (a closed PR, or one whose head moved on, is not
/// about this run), from `GET /repos/{o}/{r}/commits/{sha}/pulls`.
pub async fn open_pulls_with_head(
    client: &GithubClient,
    repo: &Repo,
    sha: &CommitSha,
    io: &Io<'_>,
) -> Result<Vec<u64>, DeliveryError> {
    let route = format!(
        "/repos/{}/{}/commits/{sha}/pulls?per_page={PER_PAGE}",
        repo.owner, repo.name
    );
    let page = client.get_page::<PullRequest>(&route, io).await?;
    Ok(page
        .items
        .into_iter()
        .filter(|pr| {
            pr.state == "open" && pr.head.sha.to_ascii_lowercase().starts_with(sha.as_str())
        })
        .map(|pr| pr.number)
        .collect())
}

/// The id of the first comment on pull request `number` that `identity` wrote and whose body
/// holds `marker`, looking at every page of comments. A person's comment is never edited,
/// even when it quotes the marker.
pub async fn find_comment(
    client: &GithubClient,
    repo: &Repo,
    number: u64,
    marker: &str,
    identity: &Identity,
    io: &Io<'_>,
) -> Result<Option<u64>, DeliveryError> {
    // Pages are asked for by number rather than by following `Link` URLs, so that every request
    // goes to `api_url` (a `Link` could name another host, and the token must not go there).
    for page_number in 1..=MAX_PAGES {
        let route = format!(
            "/repos/{}/{}/issues/{number}/comments?per_page={PER_PAGE}&page={page_number}",
            repo.owner, repo.name
        );
        let page = client.get_page::<Comment>(&route, io).await?;
        let marked = page
            .items
            .iter()
            .filter(|comment| comment.body.as_deref().is_some_and(|b| b.contains(marker)));
        for comment in marked {
            // Asked only now: whose comment it is matters once one carries the run's marker.
            let login = identity.login(client, io).await?;
            let author = comment.user.as_ref().map(|user| user.login.as_str());
            if Identity::wrote(login, author) {
                return Ok(Some(comment.id));
            }
        }
        if !page.next || page.items.is_empty() {
            return Ok(None);
        }
    }
    Err(DeliveryError::permanent(format!(
        "pull request #{number} has more than {MAX_PAGES} pages of comments; not searched further"
    )))
}
