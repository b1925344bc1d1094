//! Holds requests against GitHub's OpenAPI description of the check-run endpoints (an excerpt
//! checked in as `tests/fixtures/github-check-runs-openapi.json`, its source noted in it): the
//! JSON Schema keywords that excerpt uses, read more strictly than GitHub's schema in one way,
//! a property the schema does not list is an error (GitHub ignores it, so it is a mistake).

use serde_json::Value;

/// The excerpt of GitHub's OpenAPI description.
pub fn check_runs_description() -> Value {
    serde_json::from_str(include_str!(
        "../../fixtures/github-check-runs-openapi.json"
    ))
    .unwrap()
}

/// Every way `value` breaks `schema`, each naming where (`body.output.summary`).
pub fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(schema, value, "body", true, &mut found);
    found
}

fn check(schema: &Value, value: &Value, at: &str, strict: bool, found: &mut Vec<String>) {
    if let Some(kind) = schema["type"].as_str() {
        let fits = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            other => panic!("the excerpt uses type {other}, which this checker does not know"),
        };
        if !fits {
            found.push(format!("{at}: {value} is not of type {kind}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(max), Some(text)) = (schema["maxLength"].as_u64(), value.as_str())
        && text.chars().count() as u64 > max
    {
        found.push(format!("{at}: longer than {max} characters"));
    }
    if let (Some(max), Some(items)) = (schema["maxItems"].as_u64(), value.as_array())
        && items.len() as u64 > max
    {
        found.push(format!("{at}: more than {max} items"));
    }
    if schema["format"] == "date-time"
        && let Some(text) = value.as_str()
        && chrono::DateTime::parse_from_rfc3339(text).is_err()
    {
        found.push(format!("{at}: {text:?} is not a date-time"));
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                found.push(format!("{at}: `{name}` is required"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, inner) in object {
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => check(property, inner, &format!("{at}.{name}"), strict, found),
                None if strict => found.push(format!("{at}: `{name}` is not in the schema")),
                None => {}
            }
        }
    }
    // The branches of `oneOf` and `anyOf` only narrow what the schema already allows.
    let passing = |branches: &Vec<Value>| {
        branches
            .iter()
            .filter(|branch| {
                let mut inner = Vec::new();
                check(branch, value, at, false, &mut inner);
                inner.is_empty()
            })
            .count()
    };
    if let Some(branches) = schema["oneOf"].as_array()
        && passing(branches) != 1
    {
        found.push(format!(
            "{at}: matches {} of the oneOf branches, not exactly one",
            passing(branches)
        ));
    }
    if let Some(branches) = schema["anyOf"].as_array()
        && passing(branches) == 0
    {
        found.push(format!("{at}: matches none of the anyOf branches"));
    }
}

/// Every way the query of `url` breaks the operation's documented query parameters.
pub fn query_violations(parameters: &Value, url: &url::Url) -> Vec<String> {
    let mut found = Vec::new();
    for (name, text) in url.query_pairs() {
        let Some(schema) = parameters.get(name.as_ref()) else {
            found.push(format!(
                "query: `{name}` is not a parameter of the operation"
            ));
            continue;
        };
        let value = match schema["type"].as_str() {
            Some("integer") => match text.parse::<u64>() {
                Ok(number) => Value::from(number),
                Err(_) => {
                    found.push(format!("query: `{name}={text}` is not an integer"));
                    continue;
                }
            },
            _ => Value::from(text.as_ref()),
        };
        check(schema, &value, &format!("query.{name}"), true, &mut found);
    }
    found
}
