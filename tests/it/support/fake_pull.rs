//! A GitHub pull request, #42 of acme/web-app, whose comments the worker writes as `ci-bot`, and
//! the commit statuses of its head: wiremock answers from shared state (list, post, edit, and
//! 404 for a comment it does not hold), so a test sees what the pull request would show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::fake_github::STATUS_PATH;

/// Where the comments of pull request #42 are listed and posted.
pub const COMMENTS_42: &str = "/repos/acme/web-app/issues/42/comments";
/// Where one comment is edited: `{COMMENT}/{id}`.
pub const COMMENT: &str = "/repos/acme/web-app/issues/comments";

/// The comments of #42 as `(id, body)`, all written by the token's user.
pub type Comments = Arc<Mutex<Vec<(u64, String)>>>;

struct FakePull {
    comments: Comments,
    /// Comments ever posted: ids run from 900, never one a deleted comment had.
    posted: AtomicU64,
}

impl Respond for FakePull {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut comments = self.comments.lock().unwrap();
        let path = request.url.path();
        let body = || {
            serde_json::from_slice::<Value>(&request.body).unwrap()["body"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        match (request.method.as_str(), path) {
            ("GET", "/user") => ResponseTemplate::new(200).set_body_json(json!({ "login": "ci-bot" })),
            ("GET", COMMENTS_42) => ResponseTemplate::new(200).set_body_json(
                comments
                    .iter()
                    .map(|(id, body)| json!({ "id": id, "body": body, "user": { "login": "ci-bot" } }))
                    .collect::<Vec<_>>(),
            ),
            ("POST", COMMENTS_42) => {
                let id = 900 + self.posted.fetch_add(1, Ordering::SeqCst);
                comments.push((id, body()));
                ResponseTemplate::new(201).set_body_json(json!({ "id": id }))
            }
            ("PATCH", _) if path.starts_with(COMMENT) => {
                let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                let text = body();
                match comments.iter_mut().find(|(c, _)| *c == id) {
                    Some(comment) => {
                        comment.1 = text;
                        ResponseTemplate::new(200).set_body_json(json!({ "id": id }))
                    }
                    None => ResponseTemplate::new(404).set_body_json(json!({ "message": "Not Found" })),
                }
            }
            ("POST", STATUS_PATH) => ResponseTemplate::new(201).set_body_json(json!({ "id": 1 })),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The GitHub of pull request #42, and its comments.
pub async fn fake_pull() -> (MockServer, Comments) {
    let server = MockServer::start().await;
    let comments = Comments::default();
    Mock::given(any())
        .respond_with(FakePull {
            comments: Arc::clone(&comments),
            posted: AtomicU64::new(0),
        })
        .mount(&server)
        .await;
    (server, comments)
}
