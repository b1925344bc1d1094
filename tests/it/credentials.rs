//! Credentials in a producer's `remoteOrigin` (a CI job token, an installation token) never
//! travel: not to a receiver's body or headers, not into a template, a log line or a dead
//! letter's headers. The run still reaches its repository.

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::support::{
    Receiver, TestApp, event_for, github_status, gitlab_status, slack, unique, wait_until, webhook,
};

const GITHUB_TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
const GITLAB_TOKEN: &str = "glcbt-64_s3cr3tJobT0ken";

/// A template every kind renders the remote into, to see what templates get.
const REMOTE_CONTEXT: &str = "remote {{commit.remoteOrigin}}";

#[tokio::test]
async fn tokens_in_remote_origin_reach_no_receiver_log_or_dead_letter_header() {
    let app = TestApp::new().await;
    let hook = Receiver::ok().await;
    let refusing = Receiver::scripted(vec![], ResponseTemplate::new(400)).await;
    let chat = Receiver::scripted(vec![], ResponseTemplate::new(200).set_body_string("ok")).await;
    let created = ResponseTemplate::new(201).set_body_json(json!({"id": 1}));
    let github = Receiver::scripted(vec![], created.clone()).await;
    let gitlab = Receiver::scripted(vec![], created).await;
    let mut worker = app
        .spawn_process_with_env(&[("RUST_LOG", "debug")], |config| {
            config.add(webhook("hook", &hook.url("/hook")));
            config.add(webhook("refusing", &refusing.url("/refusing")));
            config.add(slack("chat", &chat.url("/chat")));
            config.add(github_status("gh", &github.server.uri()).with("context", REMOTE_CONTEXT));
            config.add(gitlab_status("gl", &gitlab.url("/api/v4")).with("context", REMOTE_CONTEXT));
            config.retry.max_attempts = 1;
        })
        .await;

    let mut on_github = event_for(&unique("run"));
    on_github["data"]["commit"]["remoteOrigin"] = json!(format!(
        "https://x-access-token:{GITHUB_TOKEN}@github.com/acme/web-app.git"
    ));
    let mut on_gitlab = event_for(&unique("run"));
    on_gitlab["data"]["commit"]["remoteOrigin"] = json!(format!(
        "https://gitlab-ci-token:{GITLAB_TOKEN}@gitlab.com/acme/web-app.git"
    ));
    app.publish(&on_github).await;
    app.publish(&on_gitlab).await;

    let hooked = hook.wait_for(2).await;
    chat.wait_for(2).await;
    let github_status = github.wait_for(1).await.remove(0);
    let gitlab_status = gitlab.wait_for(1).await.remove(0);
    let letters = app.wait_for_dead_letters(2).await;
    wait_until(
        "both runs are settled in the ledger",
        std::time::Duration::from_secs(10),
        || async {
            [&on_github, &on_gitlab].iter().all(|event| {
                app.delivery_states(event["data"]["runId"].as_str().unwrap())
                    .len()
                    == 5
            })
        },
    )
    .await;
    worker.stop().await;

    // What the outputs see instead: the remote without its user-info, still the repository.
    let remotes: Vec<_> = hooked
        .iter()
        .map(|r| r.json()["commit"]["remoteOrigin"].clone())
        .collect();
    assert!(remotes.contains(&json!("https://github.com/acme/web-app.git")));
    assert!(remotes.contains(&json!("https://gitlab.com/acme/web-app.git")));
    assert_eq!(
        github_status.path,
        "/repos/acme/web-app/statuses/5a7edc9a156e417068060d67109021351fc7d9b8"
    );
    assert_eq!(
        github_status.json()["context"],
        "remote https://github.com/acme/web-app.git"
    );
    assert_eq!(
        gitlab_status.json()["name"],
        "remote https://gitlab.com/acme/web-app.git"
    );

    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    for receiver in [&hook, &refusing, &chat, &github, &gitlab] {
        for request in receiver.received() {
            seen.push((
                format!("{} {}", receiver.url(""), request.path),
                request.body,
            ));
            for (name, value) in &request.headers {
                seen.push((format!("header {name}"), value.as_bytes().to_vec()));
            }
        }
    }
    seen.push(("the worker's log".into(), worker.logs().into_bytes()));
    for letter in &letters {
        for (name, value) in letter.headers.inner() {
            seen.push((
                format!("dead-letter header {name}"),
                format!("{value:?}").into_bytes(),
            ));
        }
    }
    for token in [GITHUB_TOKEN, GITLAB_TOKEN] {
        for (place, bytes) in &seen {
            assert!(
                !String::from_utf8_lossy(bytes).contains(token),
                "{token} in {place}"
            );
        }
    }
}
