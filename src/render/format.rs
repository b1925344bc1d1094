//! A markup as a value: how a template's values are escaped, what its templates must produce,
//! and how the `json` helper escapes strings in it.

use super::escape::{
    escape_json, escape_slack, escape_slack_json, escape_teams, escape_teams_json,
};
use super::gitlab::escape_gitlab_markdown;
use super::markdown::escape_markdown;

/// A markup: how values are escaped when a template inserts them with `{{value}}`, and what
/// its templates must produce. A kind names its own ([`Kind::MARKUP`](crate::integrations::Kind::MARKUP));
/// a new markup is a new value, defined beside the kind that needs it, not a change here.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Names the markup, and its registry: two values of one name share their templates.
    pub name: &'static str,
    /// How `{{value}}` is escaped.
    pub escape: fn(&str) -> String,
    /// Whether its templates produce JSON documents (checked to parse at load): then
    /// `{{json value}}` writes raw JSON, else JSON text escaped like any value.
    pub json: bool,
    /// How the strings inside a value written by `{{json value}}` are escaped for the
    /// receiver, in a JSON markup whose `escape` does more than JSON's (Slack's entities).
    pub json_strings: Option<fn(&str) -> String>,
    /// Why `{{{…}}}` and `{{&…}}` are refused, or `None` where they are allowed (plain text,
    /// which has no markup to escape).
    pub unescaped_refusal: Option<&'static str>,
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Format {}

const MARKDOWN_REFUSAL: &str =
    "skip Markdown escaping: a value could add links, mentions, HTML or break the layout";

impl Format {
    /// JSON documents: values become the inside of a JSON string.
    pub const JSON: Format = Format {
        name: "json",
        escape: escape_json,
        json: true,
        json_strings: None,
        unescaped_refusal: Some("skip JSON escaping: a quote in a value would break the document"),
    };
    /// Slack Block Kit JSON: as [`Format::JSON`], and Slack's `&`, `<`, `>` become entities
    /// first, so a value can never form a link, a mention (`<!channel>`) or a broken card.
    pub const SLACK_JSON: Format = Format {
        name: "slack_json",
        escape: escape_slack_json,
        json: true,
        json_strings: Some(escape_slack),
        unescaped_refusal: Some(
            "skip JSON and Slack escaping: a value could break the message, or add links and mentions",
        ),
    };
    /// Adaptive Card JSON: as [`Format::JSON`], and no value can form a link, even in a
    /// Markdown `TextBlock` (see [`escape_teams_json`]).
    pub const TEAMS_JSON: Format = Format {
        name: "teams_json",
        escape: escape_teams_json,
        json: true,
        json_strings: Some(escape_teams),
        unescaped_refusal: Some(
            "skip JSON and Teams escaping: a value could break the card, or add links",
        ),
    };
    /// GitHub-flavoured Markdown: no markup, HTML, links, mentions or table breaks from values.
    pub const MARKDOWN: Format = Format {
        name: "markdown",
        escape: escape_markdown,
        json: false,
        json_strings: None,
        unescaped_refusal: Some(MARKDOWN_REFUSAL),
    };
    /// GitLab-flavoured Markdown: as [`Format::MARKDOWN`], and no references (`#1`, `!1`,
    /// `~label`…) or quick actions, without relying on HTML entities.
    pub const GITLAB_MARKDOWN: Format = Format {
        name: "gitlab_markdown",
        escape: escape_gitlab_markdown,
        json: false,
        json_strings: None,
        unescaped_refusal: Some(MARKDOWN_REFUSAL),
    };
    /// Plain text (a commit status description): values as they are.
    pub const TEXT: Format = Format {
        name: "text",
        escape: handlebars::no_escape,
        json: false,
        json_strings: None,
        unescaped_refusal: None,
    };

    /// Whether templates of this format produce JSON documents (checked to parse at load).
    pub fn is_json(self) -> bool {
        self.json
    }
}
