//! The Slack and Teams bodies as receivers get them, for every sample event: snapshots, hostile
//! strings kept as JSON strings, and the Teams card checked against the Adaptive Card schema.

use run_notifier::event::RunCanceled;
use run_notifier::integrations::Integration;
use run_notifier::render::sample_events;
use serde_json::Value;

use crate::support::providers::{build, notification};
use crate::support::{slack, teams};

/// The shipped template of `kind` (`slack` or `teams`), built as the worker builds it.
fn integration(kind: &str) -> Integration {
    match kind {
        "slack" => build(slack(
            "slack",
            "https://hooks.slack.com/services/T000/B000/XXXX",
        )),
        _ => build(teams(
            "teams",
            "https://prod-01.westus.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=XXXX",
        )),
    }
}

/// The body the integration would POST; it must parse as JSON.
fn body(integration: &Integration, event: &RunCanceled) -> Value {
    // Slack and Teams plan without reading anything, so the plan is ready at the first poll.
    let requests = futures_util::FutureExt::now_or_never(
        integration.preview(&notification(integration, event)),
    )
    .expect("plans without waiting")
    .unwrap()
    .requests();
    assert_eq!(requests.len(), 1);
    serde_json::from_slice(&requests[0].body).expect("the body is JSON")
}

fn hostile() -> RunCanceled {
    sample_events()
        .into_iter()
        .find(|(label, _)| *label == "hostile")
        .unwrap()
        .1
}

#[test]
fn slack_bodies_match_their_snapshots() {
    let slack = integration("slack");
    for (label, event) in sample_events() {
        insta::assert_json_snapshot!(format!("slack-{label}"), body(&slack, &event));
    }
}

#[test]
fn teams_bodies_match_their_snapshots() {
    let teams = integration("teams");
    for (label, event) in sample_events() {
        insta::assert_json_snapshot!(format!("teams-{label}"), body(&teams, &event));
    }
}

/// Slack's escaping undone: what a Slack user reads (the zero-width joiner that breaks bare
/// links is invisible).
fn as_read_in_slack(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace('\u{200D}', "")
}

/// Every string in a JSON document.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => vec![],
    }
}

#[test]
fn hostile_strings_stay_inside_slack_strings_and_the_branch_reads_intact() {
    let event = hostile();
    let branch = event.data.commit.branch.clone().unwrap();
    let message = body(&integration("slack"), &event);

    let fields = message
        .pointer("/attachments/0/blocks/1/fields")
        .and_then(Value::as_array)
        .unwrap();
    let shown = fields
        .iter()
        .filter_map(|f| f["text"].as_str()?.strip_prefix("*Branch*\n"))
        .next()
        .expect("a Branch field");
    assert_eq!(as_read_in_slack(shown), branch);
    for text in strings(&message) {
        assert!(
            !text.contains('<'),
            "a raw `<` could open a Slack link or mention: {text}"
        );
    }
    assert!(message["text"].as_str().unwrap().contains("&lt;script&gt;"));
}

/// An event whose every text carries a bare link, a Markdown link, emphasis and a list marker.
fn linky() -> RunCanceled {
    let mut event = hostile();
    let text = "- *bold* [click](https://evil.example/phish) http://evil.example www.evil.example";
    event.data.cancellation.actor = text.into();
    event.data.cancellation.note = Some(text.into());
    event.data.project_name = Some(text.into());
    event.data.group_id = Some(text.into());
    event.data.commit.branch = Some(text.into());
    event.data.commit.message = Some(text.into());
    event
}

#[test]
fn slack_values_cannot_auto_link() {
    let message = body(&integration("slack"), &linky());
    let button = message
        .pointer("/attachments/0/blocks/2/elements/0/url")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    for text in strings(&message).into_iter().filter(|t| *t != button) {
        let lower = text.to_ascii_lowercase();
        assert!(
            !lower.contains("://") && !lower.contains("www."),
            "{text:?}"
        );
    }
    // And Slack is told not to look for links, channels or mentions in mrkdwn at all.
    let mut mrkdwn = 0;
    let mut stack = vec![&message];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                    mrkdwn += 1;
                    assert_eq!(map.get("verbatim"), Some(&Value::Bool(true)), "{value}");
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(mrkdwn >= 5);
}

/// Every `TextBlock` text and fact of a card, the places where Teams renders Markdown.
fn markdown_texts(card: &Value) -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack = vec![card];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                match map.get("type").and_then(Value::as_str) {
                    Some("TextBlock") => texts.push(map["text"].as_str().unwrap().to_owned()),
                    Some("FactSet") => {
                        for fact in map["facts"].as_array().unwrap() {
                            texts.push(fact["title"].as_str().unwrap().to_owned());
                            texts.push(fact["value"].as_str().unwrap().to_owned());
                        }
                    }
                    _ => {}
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    texts
}

/// The texts of every `TextRun`, which Teams renders without Markdown.
fn text_runs(card: &Value) -> Vec<String> {
    card["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "RichTextBlock")
        .flat_map(|e| e["inlines"].as_array().unwrap().iter())
        .map(|run| run["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn teams_values_appear_only_in_text_runs_and_cannot_link() {
    let event = linky();
    let message = body(&integration("teams"), &event);
    let card = &message["attachments"][0]["content"];
    // TextBlocks and facts render Markdown: no event value may reach them.
    let markdown = markdown_texts(card);
    assert!(!markdown.is_empty());
    for text in &markdown {
        assert!(
            !text.contains("evil") && !text.contains("bold"),
            "an event value reached Markdown: {text:?}"
        );
    }
    let runs = text_runs(card);
    assert!(
        runs.iter().filter(|r| r.contains("evil")).count() >= 4,
        "{runs:?}"
    );
    for run in &runs {
        let lower = run.to_ascii_lowercase();
        assert!(
            !lower.contains("://") && !lower.contains("www.") && !run.contains("]("),
            "{run:?}"
        );
    }
    // The branch reads as it is (the joiner is invisible).
    let branch = event.data.commit.branch.clone().unwrap();
    assert!(
        runs.iter().any(|r| r.replace('\u{200D}', "") == branch),
        "{runs:?}"
    );
}

#[test]
fn hostile_strings_stay_inside_teams_strings_and_the_branch_is_intact() {
    let event = hostile();
    let branch = event.data.commit.branch.clone().unwrap();
    let message = body(&integration("teams"), &event);
    let card = &message["attachments"][0]["content"];
    let runs = text_runs(card);
    assert!(
        runs.iter().any(|r| r.replace('\u{200D}', "") == branch),
        "{runs:?}"
    );
    assert!(runs[0].contains("<script>"));
}

/// Element types of Adaptive Cards up to 1.4, with the fields each requires.
const ELEMENTS: &[(&str, &[&str])] = &[
    ("TextBlock", &["text"]),
    ("Image", &["url"]),
    ("Media", &["sources"]),
    ("RichTextBlock", &["inlines"]),
    ("ActionSet", &["actions"]),
    ("Container", &["items"]),
    ("ColumnSet", &[]),
    ("FactSet", &["facts"]),
    ("ImageSet", &["images"]),
    ("Input.Text", &["id"]),
    ("Input.Number", &["id"]),
    ("Input.Date", &["id"]),
    ("Input.Time", &["id"]),
    ("Input.Toggle", &["id", "title"]),
    ("Input.ChoiceSet", &["id"]),
];
const ACTIONS: &[(&str, &[&str])] = &[
    ("Action.OpenUrl", &["url"]),
    ("Action.Submit", &[]),
    ("Action.ShowCard", &["card"]),
    ("Action.ToggleVisibility", &["targetElements"]),
    ("Action.Execute", &[]),
];

/// Checks one element or action against `known`; returns what is wrong, with its JSON path.
fn check_typed(value: &Value, known: &[(&str, &[&str])], path: &str, problems: &mut Vec<String>) {
    let kind = value["type"].as_str().unwrap_or("");
    let Some((_, required)) = known.iter().find(|(name, _)| *name == kind) else {
        problems.push(format!("{path}: unknown type `{kind}`"));
        return;
    };
    for field in *required {
        if value.get(field).is_none_or(Value::is_null) {
            problems.push(format!("{path}: {kind} needs `{field}`"));
        }
    }
    match kind {
        "TextBlock" if !value["text"].is_string() => {
            problems.push(format!("{path}: `text` must be a string"))
        }
        "RichTextBlock" => {
            for (i, run) in value["inlines"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if run["type"] != "TextRun" || !run["text"].is_string() {
                    problems.push(format!(
                        "{path}.inlines[{i}]: needs a TextRun with a string `text`"
                    ));
                }
            }
        }
        "FactSet" => {
            for (i, fact) in value["facts"].as_array().into_iter().flatten().enumerate() {
                if !fact["title"].is_string() || !fact["value"].is_string() {
                    problems.push(format!(
                        "{path}.facts[{i}]: needs string `title` and `value`"
                    ));
                }
            }
        }
        "Container" => check_elements(&value["items"], &format!("{path}.items"), problems),
        "ColumnSet" => {
            for (i, column) in value["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                check_elements(
                    &column["items"],
                    &format!("{path}.columns[{i}].items"),
                    problems,
                );
            }
        }
        "ActionSet" => check_actions(&value["actions"], &format!("{path}.actions"), problems),
        "Action.OpenUrl" => {
            let url = value["url"].as_str().unwrap_or("");
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                problems.push(format!("{path}: `url` must be an absolute http(s) URL"));
            }
        }
        _ => {}
    }
}

fn check_elements(elements: &Value, path: &str, problems: &mut Vec<String>) {
    for (i, element) in elements.as_array().into_iter().flatten().enumerate() {
        check_typed(element, ELEMENTS, &format!("{path}[{i}]"), problems);
    }
}

fn check_actions(actions: &Value, path: &str, problems: &mut Vec<String>) {
    for (i, action) in actions.as_array().into_iter().flatten().enumerate() {
        check_typed(action, ACTIONS, &format!("{path}[{i}]"), problems);
    }
}

/// The Workflows envelope and the Adaptive Card schema's required fields.
fn adaptive_card_problems(message: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if message["type"] != "message" {
        problems.push("the message `type` must be `message`".into());
    }
    let attachments = message["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if attachments.len() != 1 {
        problems.push(format!(
            "expected one attachment, got {}",
            attachments.len()
        ));
        return problems;
    }
    if attachments[0]["contentType"] != "application/vnd.microsoft.card.adaptive" {
        problems.push("the attachment is not an Adaptive Card".into());
    }
    let card = &attachments[0]["content"];
    if card["type"] != "AdaptiveCard" {
        problems.push("the card `type` must be `AdaptiveCard`".into());
    }
    if !matches!(
        card["version"].as_str(),
        Some("1.0" | "1.1" | "1.2" | "1.3" | "1.4")
    ) {
        problems.push(format!(
            "card version {} is not 1.0 to 1.4",
            card["version"]
        ));
    }
    if !card["body"].is_array() {
        problems.push("the card needs a `body` array".into());
    }
    check_elements(&card["body"], "body", &mut problems);
    check_actions(&card["actions"], "actions", &mut problems);
    problems
}

#[test]
fn teams_cards_satisfy_the_adaptive_card_schema_for_every_sample_event() {
    let teams = integration("teams");
    for (label, event) in sample_events() {
        let message = body(&teams, &event);
        assert_eq!(
            adaptive_card_problems(&message),
            Vec::<String>::new(),
            "{label}"
        );
        let card = &message["attachments"][0]["content"];
        let title = card["body"][0]["inlines"][0]["text"].as_str().unwrap();
        assert!(title.starts_with("Run cancelled by "), "{label}: {title}");
        assert_eq!(
            title.contains("⚡ fail-fast"),
            label == "fail-fast",
            "{label}"
        );
        assert_eq!(card["actions"][0]["url"], event.data.run_url.as_str());
    }
}

#[test]
fn the_schema_check_itself_catches_malformed_cards() {
    let teams = integration("teams");
    let mut message = body(&teams, &sample_events()[0].1);
    message["attachments"][0]["content"]["body"][0]["type"] = "Textblock".into();
    message["attachments"][0]["content"]["actions"][0]
        .as_object_mut()
        .unwrap()
        .remove("url");
    message["attachments"][0]["content"]["version"] = "1.6".into();
    let problems = adaptive_card_problems(&message).join("\n");
    for expected in [
        "body[0]: unknown type `Textblock`",
        "actions[0]: Action.OpenUrl needs `url`",
        "card version \"1.6\" is not 1.0 to 1.4",
    ] {
        assert!(
            problems.contains(expected),
            "missing {expected} in:\n{problems}"
        );
    }
}

#[test]
fn slack_messages_have_text_a_header_a_colour_and_a_button_within_limits() {
    let slack = integration("slack");
    for (label, event) in sample_events() {
        let message = body(&slack, &event);
        assert!(!message["text"].as_str().unwrap().is_empty(), "{label}");
        let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.starts_with("Run cancelled by "), "{label}");
        assert!(header.chars().count() <= 150, "{label}");
        assert_eq!(
            header.contains("⚡ fail-fast"),
            label == "fail-fast",
            "{label}"
        );
        let attachment = &message["attachments"][0];
        let red = event.data.results.failures > 0;
        assert_eq!(
            attachment["color"],
            if red { "#d92d20" } else { "#9aa0a6" },
            "{label}"
        );
        let blocks = attachment["blocks"].as_array().unwrap();
        let button = &blocks.last().unwrap()["elements"][0];
        assert_eq!(button["text"]["text"], "View run");
        assert_eq!(button["url"], event.data.run_url.as_str());
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(fields.len() <= 10);
        assert!(
            fields
                .iter()
                .all(|f| f["text"].as_str().unwrap().chars().count() <= 2000)
        );
    }
}

/// A commit message that would link, mention and break out of a string if written raw.
const RAW_MESSAGE: &str = "Fix \"quotes\" <!channel> <https://evil.example/login|the docs>\nsee [docs](https://evil.example/phish)";

/// `integration` built with the custom template `source` (a file of its own).
fn with_template(spec: crate::support::Spec, source: &str) -> (Integration, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.json.hbs");
    std::fs::write(&path, source).unwrap();
    (build(spec.with("template", &path)), dir)
}

#[test]
fn json_helper_values_stay_inert_in_custom_slack_and_teams_cards() {
    let mut event = hostile();
    event.data.commit.message = Some(RAW_MESSAGE.into());
    let run_url = event.data.run_url.to_string();

    let (slack_app, _dir) = with_template(
        slack("slack", "https://hooks.slack.com/services/T000/B000/XXXX"),
        r#"{
  "text": "Run cancelled",
  "blocks": [
    { "type": "section", "text": { "type": "mrkdwn", "text": {{json commit.message}} } },
    { "type": "actions", "elements": [
      { "type": "button", "text": { "type": "plain_text", "text": "View run" }, "url": {{json runUrl}} }
    ] }
  ]
}"#,
    );
    let message = body(&slack_app, &event);
    let text = message
        .pointer("/blocks/0/text/text")
        .unwrap()
        .as_str()
        .unwrap();
    assert!(!text.contains(['<', '>']), "could link or mention: {text}");
    assert!(!text.contains("://"), "Slack would link it: {text}");
    assert_eq!(as_read_in_slack(text), RAW_MESSAGE, "reads as written");
    assert_eq!(
        message.pointer("/blocks/1/elements/0/url").unwrap(),
        &run_url
    );

    let (teams_card, _dir) = with_template(
        teams("teams", "https://example.com/x"),
        r#"{
  "type": "message",
  "attachments": [ {
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {
      "type": "AdaptiveCard", "version": "1.4",
      "body": [ { "type": "TextBlock", "wrap": true, "text": {{json commit.message}} } ],
      "actions": [ { "type": "Action.OpenUrl", "title": "View run", "url": {{json runUrl}} } ]
    }
  } ]
}"#,
    );
    let message = body(&teams_card, &event);
    let card = &message["attachments"][0]["content"];
    let text = card.pointer("/body/0/text").unwrap().as_str().unwrap();
    for live in ["](", "://"] {
        assert!(!text.contains(live), "Teams would link it: {text}");
    }
    assert_eq!(
        text.replace('\u{200D}', ""),
        RAW_MESSAGE,
        "reads as written"
    );
    assert_eq!(card.pointer("/actions/0/url").unwrap(), &run_url);
}
