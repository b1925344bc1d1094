//! Fitting a rendered Slack message into Block Kit's limits, so that long user text shortens
//! the message instead of getting it rejected as `invalid_payload`.

use serde_json::Value;

use crate::render::truncate;

/// Slack's Block Kit limits; longer content is cut (a message over a limit is rejected whole).
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_BUTTON_TEXT: usize = 75;
pub const MAX_HEADER_TEXT: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
pub const MAX_ACTION_ELEMENTS: usize = 25;
/// Slack truncates the top-level `text` beyond this.
pub const MAX_TEXT: usize = 40_000;

/// Cuts a rendered message to Slack's limits, so that long user text shortens the message
/// instead of getting it rejected as `invalid_payload`.
pub fn fit(message: &mut Value) {
    cut(message.get_mut("text"), MAX_TEXT);
    if let Some(blocks) = message.get_mut("blocks").and_then(Value::as_array_mut) {
        fit_blocks(blocks);
    }
    if let Some(attachments) = message.get_mut("attachments").and_then(Value::as_array_mut) {
        for attachment in attachments {
            if let Some(blocks) = attachment.get_mut("blocks").and_then(Value::as_array_mut) {
                fit_blocks(blocks);
            }
        }
    }
}

fn fit_blocks(blocks: &mut Vec<Value>) {
    blocks.truncate(MAX_BLOCKS);
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("header") => cut(block.pointer_mut("/text/text"), MAX_HEADER_TEXT),
            Some("section") => {
                cut(block.pointer_mut("/text/text"), MAX_SECTION_TEXT);
                if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
                    fields.truncate(MAX_FIELDS);
                    for field in fields {
                        cut(field.get_mut("text"), MAX_FIELD_TEXT);
                    }
                }
                if let Some(accessory) = block.get_mut("accessory") {
                    fit_element(accessory);
                }
            }
            Some("context") => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(MAX_CONTEXT_ELEMENTS);
                    for element in elements {
                        cut(element.get_mut("text"), MAX_SECTION_TEXT);
                    }
                }
            }
            Some("actions") => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(MAX_ACTION_ELEMENTS);
                    elements.iter_mut().for_each(fit_element);
                }
            }
            _ => {}
        }
    }
}

fn fit_element(element: &mut Value) {
    if element.get("type").and_then(Value::as_str) == Some("button") {
        cut(element.pointer_mut("/text/text"), MAX_BUTTON_TEXT);
    }
}

/// Cuts a string to `max` characters with `…`, never through an entity such as `&amp;`.
fn cut(text: Option<&mut Value>, max: usize) {
    let Some(Value::String(text)) = text else {
        return;
    };
    if text.chars().count() <= max {
        return;
    }
    let mut kept = truncate(text, max);
    kept.pop(); // the `…`
    if let Some(amp) = kept.rfind('&')
        && kept.len() - amp < "&amp;".len()
        && !kept[amp..].contains(';')
    {
        kept.truncate(amp);
    }
    kept.push('…');
    *text = kept;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn long_content_is_cut_to_slack_limits() {
        let long = "x".repeat(5_000);
        let button = json!({"type": "button", "text": {"type": "plain_text", "text": long}});
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": long}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": long},
                   "fields": vec![json!({"type": "mrkdwn", "text": long}); 12],
                   "accessory": button}),
            json!({"type": "actions", "elements": [button]}),
        ];
        blocks.extend(vec![json!({"type": "divider"}); 60]);
        let mut message = json!({"text": "x".repeat(50_000), "attachments": [{"blocks": blocks}]});
        fit(&mut message);
        let blocks = message["attachments"][0]["blocks"].as_array().unwrap();
        let chars = |v: &Value| v.as_str().unwrap().chars().count();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(chars(&blocks[0]["text"]["text"]), MAX_HEADER_TEXT);
        assert_eq!(chars(&blocks[1]["text"]["text"]), MAX_SECTION_TEXT);
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), MAX_FIELDS);
        assert!(fields.iter().all(|f| chars(&f["text"]) == MAX_FIELD_TEXT));
        assert_eq!(
            chars(&blocks[1]["accessory"]["text"]["text"]),
            MAX_BUTTON_TEXT
        );
        assert_eq!(
            chars(&blocks[2]["elements"][0]["text"]["text"]),
            MAX_BUTTON_TEXT
        );
        assert_eq!(chars(&message["text"]), MAX_TEXT);
        assert!(message["text"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn cutting_never_splits_an_entity() {
        let mut text = json!(format!("{}&amp;tail", "a".repeat(72)));
        cut(Some(&mut text), MAX_BUTTON_TEXT);
        assert_eq!(text, json!(format!("{}…", "a".repeat(72))));
    }
}
