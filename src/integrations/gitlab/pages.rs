//! Reading GitLab's paged lists: the open merge requests of a commit, and this worker's
//! earlier note for a run (searching every page of a merge request's notes; only notes it
//! wrote count, whoever else copied the marker).

use super::GitlabClient;
use super::identity::Identity;
use super::project::ProjectPath;
use crate::event::CommitSha;
use crate::failure::DeliveryError;
use crate::integrations::Io;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// GitLab's largest page.
pub const PER_PAGE: u32 = 100;
/// A guard against a server whose pages never end: 100,000 notes.
const MAX_PAGES: u32 = 1_000;

/// The parts of a merge request the lookup needs.
#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    state: String,
    #[serde(default)]
    sha: Option<String>,
}

/// The parts of a note the search needs.
#[derive(Debug, Deserialize)]
struct Note {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    author: Option<Author>,
}

#[derive(Debug, Deserialize)]
struct Author {
    id: u64,
}

/// Whether another page follows `page`. GitLab says so in `x-next-page` (empty on the last
/// page) or a `Link: rel="next"`; gitlab.com leaves both out on some large lists, and pages
/// can be short (items are filtered after paging), so without them only an empty page ends
/// the list.
fn has_next(headers: &HeaderMap, items: usize) -> bool {
    if let Some(next) = headers.get("x-next-page") {
        return !String::from_utf8_lossy(next.as_bytes()).trim().is_empty();
    }
    if let Some(link) = headers.get(reqwest::header::LINK) {
        return String::from_utf8_lossy(link.as_bytes()).contains("rel=\"next\"");
    }
    items > 0
}

/// The pages of one list, read one at a time: `route` has no query yet, or ends in one.
struct Pages<'a> {
    client: &'a GitlabClient,
    route: &'a str,
    /// The page asked for next; `None` once the list has ended.
    next: Option<u32>,
}

impl<'a> Pages<'a> {
    fn of(client: &'a GitlabClient, route: &'a str) -> Self {
        Self {
            client,
            route,
            next: Some(1),
        }
    }

    /// The next page's items, or `None` after the last page.
    async fn next<T: DeserializeOwned>(
        &mut self,
        io: &Io<'_>,
    ) -> Result<Option<Vec<T>>, DeliveryError> {
        let route = self.route;
        let Some(page) = self.next else {
            return Ok(None);
        };
        if page > MAX_PAGES {
            return Err(DeliveryError::permanent(format!(
                "{route} has more than {MAX_PAGES} pages; not searched further"
            )));
        }
        let joiner = if route.contains('?') { '&' } else { '?' };
        let paged = format!("{route}{joiner}per_page={PER_PAGE}&page={page}");
        let request = self.client.request(Method::GET, &paged, None)?;
        let answer = self.client.send(request, io).await?;
        let items: Vec<T> = serde_json::from_str(&answer.body).map_err(|err| {
            DeliveryError::permanent(format!(
                "GitLab answered {route} with an unexpected list: {err}"
            ))
        })?;
        self.next = has_next(&answer.headers, items.len()).then_some(page + 1);
        Ok(Some(items))
    }
}

/// The IIDs of open merge requests whose head is `sha` (a merged MR, or one whose head moved
/// on, is not about this run), from `GET /projects/:id/repository/commits/:sha/merge_requests`.
pub async fn open_merge_requests_with_head(
    client: &GitlabClient,
    project: &ProjectPath,
    sha: &CommitSha,
    io: &Io<'_>,
) -> Result<Vec<u64>, DeliveryError> {
    let route = format!(
        "/projects/{}/repository/commits/{sha}/merge_requests",
        project.encoded()
    );
    let mut iids = Vec::new();
    let mut pages = Pages::of(client, &route);
    while let Some(page) = pages.next::<MergeRequest>(io).await? {
        iids.extend(
            page.into_iter()
                .filter(|mr| {
                    mr.state == "opened"
                        && mr
                            .sha
                            .as_deref()
                            .is_some_and(|head| head.eq_ignore_ascii_case(sha.as_str()))
                })
                .map(|mr| mr.iid),
        );
    }
    iids.sort_unstable();
    iids.dedup();
    Ok(iids)
}

/// The id of the note on merge request `iid` that `identity` wrote and whose body holds
/// `marker`, looking at every page of its notes. A person's note is never edited, even when it
/// quotes the marker (system notes are GitLab's own, so never ours).
pub async fn find_note(
    client: &GitlabClient,
    project: &ProjectPath,
    iid: u64,
    marker: &str,
    identity: &Identity,
    io: &Io<'_>,
) -> Result<Option<u64>, DeliveryError> {
    let route = format!(
        "/projects/{}/merge_requests/{iid}/notes?sort=asc&order_by=created_at",
        project.encoded()
    );
    let mut pages = Pages::of(client, &route);
    while let Some(page) = pages.next::<Note>(io).await? {
        let marked = page.iter().filter(|note| {
            !note.system && note.body.as_deref().is_some_and(|b| b.contains(marker))
        });
        for note in marked {
            // Asked only now: whose note it is matters once one carries the run's marker.
            let me = identity.user_id(client, io).await?;
            if note.author.as_ref().is_some_and(|author| author.id == me) {
                return Ok(Some(note.id));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    reqwest::header::HeaderName::from_static(name),
                    value.parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_next_page_comes_from_headers_or_else_from_a_non_empty_page() {
        assert!(has_next(&headers(&[("x-next-page", "2")]), 100));
        assert!(!has_next(&headers(&[("x-next-page", "")]), 100));
        let link = r#"<https://gitlab.example/api/v4/x?page=3>; rel="next", <…>; rel="last""#;
        assert!(has_next(&headers(&[("link", link)]), 3));
        assert!(!has_next(&headers(&[("link", r#"<…>; rel="first""#)]), 3));
        assert!(
            has_next(&headers(&[]), 7),
            "a short page may not be the last"
        );
        assert!(!has_next(&headers(&[]), 0));
    }
}
