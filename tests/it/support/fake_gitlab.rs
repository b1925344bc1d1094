//! A GitLab that keeps merge request notes, for the GitLab tests: wiremock answers the note
//! routes from shared state (list in pages, create, edit) and `GET /user` as the token's user,
//! who writes every note the worker posts, so a test sees what a project's merge request would
//! show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The remote of the project every GitLab test uses: nested groups.
pub const REMOTE: &str = "git@gitlab.com:acme/platform/web-app.git";
/// `/api/v4` and the project's encoded path.
pub const PROJECT_ROUTE: &str = "/api/v4/projects/acme%2Fplatform%2Fweb-app";
pub const SHA: &str = "5a7edc9a156e417068060d67109021351fc7d9b8";
/// The token's user (`GET /user`): the author of every note posted through the fake.
pub const BOT_ID: u64 = 99;
/// A person reviewing the merge request: the author of the filler notes.
pub const REVIEWER_ID: u64 = 12;

/// How pages say that another follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// `x-next-page` on every page (empty on the last).
    NextPageHeader,
    /// No paging headers at all (as gitlab.com does on some lists): only an empty page ends.
    NoHeaders,
}

/// One note as GitLab keeps it.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    pub body: String,
    pub system: bool,
    pub edits: u32,
    /// The author's user id.
    pub author: u64,
}

/// The notes of one merge request, `page_size` to a page whatever `per_page` asks (GitLab
/// pages can be short).
#[derive(Clone)]
pub struct Notes {
    pub notes: Arc<Mutex<Vec<Note>>>,
    /// Notes ever added (filler included): the next id, never one a deleted note had.
    added: Arc<AtomicU64>,
    page_size: usize,
    paging: Paging,
}

impl Notes {
    /// `filler` notes by others (every third a system note) before anything is posted.
    pub fn new(filler: usize, page_size: usize, paging: Paging) -> Self {
        let notes = (0..filler)
            .map(|i| Note {
                id: 1_000 + i as u64,
                body: format!("review note {i} <!-- run-notifier:run=another-run -->"),
                system: i % 3 == 0,
                edits: 0,
                author: REVIEWER_ID,
            })
            .collect();
        Self {
            notes: Arc::new(Mutex::new(notes)),
            added: Arc::new(AtomicU64::new(filler as u64)),
            page_size,
            paging,
        }
    }

    /// The notes that hold `marker`.
    pub fn with_marker(&self, marker: &str) -> Vec<Note> {
        let notes = self.notes.lock().unwrap();
        notes
            .iter()
            .filter(|n| n.body.contains(marker))
            .cloned()
            .collect()
    }

    /// The id of the next note added.
    fn next_id(&self) -> u64 {
        5_000 + self.added.fetch_add(1, Ordering::SeqCst)
    }

    /// Note `id` deleted (by someone on the merge request): GitLab no longer knows it.
    pub fn delete(&self, id: u64) {
        self.notes.lock().unwrap().retain(|n| n.id != id);
    }

    /// Adds a note written by `author`; returns its id.
    pub fn add(&self, author: u64, body: &str) -> u64 {
        let mut notes = self.notes.lock().unwrap();
        let id = self.next_id();
        notes.push(Note {
            id,
            body: body.to_owned(),
            system: false,
            edits: 0,
            author,
        });
        id
    }

    /// Mounts the list, create and edit routes of merge request `iid` on `server`, and
    /// `GET /user` (the token's user is [`BOT_ID`]).
    pub async fn mount(&self, server: &MockServer, iid: u64) {
        Mock::given(method("GET"))
            .and(path("/api/v4/user"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": BOT_ID, "username": "project_1_bot"})),
            )
            .mount(server)
            .await;
        let notes = format!("{PROJECT_ROUTE}/merge_requests/{iid}/notes");
        Mock::given(method("GET"))
            .and(path(notes.as_str()))
            .respond_with(self.clone())
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path(notes.as_str()))
            .respond_with(self.clone())
            .mount(server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex(format!(
                "^{}/[0-9]+$",
                notes.replace('.', "\\.")
            )))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }
}

impl Respond for Notes {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut notes = self.notes.lock().unwrap();
        match request.method.as_str() {
            "GET" => {
                let page: usize = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "page")
                    .map_or(1, |(_, v)| v.parse().unwrap());
                let start = (page - 1) * self.page_size;
                let items: Vec<Value> = notes
                    .iter()
                    .skip(start)
                    .take(self.page_size)
                    .map(|n| {
                        let author =
                            json!({"id": n.author, "username": format!("user{}", n.author)});
                        json!({"id": n.id, "body": n.body, "system": n.system, "author": author})
                    })
                    .collect();
                let mut response = ResponseTemplate::new(200).set_body_json(&items);
                if self.paging == Paging::NextPageHeader {
                    let next = if start + self.page_size < notes.len() {
                        (page + 1).to_string()
                    } else {
                        String::new()
                    };
                    response = response.insert_header("x-next-page", next.as_str());
                }
                response
            }
            "POST" => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                let id = self.next_id();
                notes.push(Note {
                    id,
                    body: body["body"].as_str().unwrap().to_owned(),
                    system: false,
                    edits: 0,
                    author: BOT_ID,
                });
                ResponseTemplate::new(201).set_body_json(json!({"id": id, "body": body["body"]}))
            }
            "PUT" => {
                let id: u64 = request
                    .url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                match notes.iter_mut().find(|n| n.id == id) {
                    Some(note) => {
                        note.body = body["body"].as_str().unwrap().to_owned();
                        note.edits += 1;
                        ResponseTemplate::new(200).set_body_json(json!({"id": id}))
                    }
                    None => ResponseTemplate::new(404)
                        .set_body_json(json!({"message": "404 Not found"})),
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
}

/// An event on the GitLab project (a fresh run id), merge request `!42` unless changed.
pub fn gitlab_event(mut event: Value) -> Value {
    event["data"]["commit"]["remoteOrigin"] = json!(REMOTE);
    event
}
