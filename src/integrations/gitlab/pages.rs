//! Reading GitLab's paged lists: the open merge requests of a commit, and this worker's
//! earlier note for a run (searching every page of a merge request's notes).

use super::GitlabClient;
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

/// Calls `visit` on each page of `route` (which has no query yet, or ends in one) until it
/// returns `Some` or the pages end.
async fn search<T: DeserializeOwned, R>(
    client: &GitlabClient,
    route: &str,
    io: &Io<'_>,
    mut visit: impl FnMut(Vec<T>) -> Option<R>,
) -> Result<Option<R>, DeliveryError> {
    let joiner = if route.contains('?') { '&' } else { '?' };
    for page in 1..=MAX_PAGES {
        let paged = format!("{route}{joiner}per_page={PER_PAGE}&page={page}");
        let request = client.request(Method::GET, &paged, None)?;
        let answer = client.send(request, io).await?;
        let items: Vec<T> = serde_json::from_str(&answer.body).map_err(|err| {
            DeliveryError::permanent(format!(
                "GitLab answered {route} with an unexpected list: {err}"
            ))
        })?;
        let count = items.len();
        if let Some(found) = visit(items) {
            return Ok(Some(found));
        }
        if !has_next(&answer.headers, count) {
            return Ok(None);
        }
    }
    Err(DeliveryError::permanent(format!(
        "{route} has more than {MAX_PAGES} pages; not searched further"
    )))
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
    search::<MergeRequest, ()>(client, &route, io, |page| {
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
        None
    })
    .await?;
    iids.sort_unstable();
    iids.dedup();
    Ok(iids)
}

/// The id of the note on merge request `iid` whose body holds `marker`, looking at every
/// page of its notes (system notes are GitLab's own and skipped).
pub async fn find_note(
    client: &GitlabClient,
    project: &ProjectPath,
    iid: u64,
    marker: &str,
    io: &Io<'_>,
) -> Result<Option<u64>, DeliveryError> {
    let route = format!(
        "/projects/{}/merge_requests/{iid}/notes?sort=asc&order_by=created_at",
        project.encoded()
    );
    search::<Note, u64>(client, &route, io, |page| {
        page.into_iter()
            .find(|note| !note.system && note.body.as_deref().is_some_and(|b| b.contains(marker)))
            .map(|note| note.id)
    })
    .await
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
