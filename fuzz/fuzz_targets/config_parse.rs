//! Any config text, with `${VAR}` values from a small environment: `Config::parse` must answer
//! `Ok` or `Err`, never panic. The first line of the input is the value of `FUZZ_VALUE`, so
//! hostile interpolated values (secrets, URLs) reach every field that takes one.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use run_notifier::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (value, yaml) = text.split_once('\n').unwrap_or(("", text));
    let env = HashMap::from([
        ("FUZZ_VALUE".to_owned(), value.to_owned()),
        ("WEBHOOK_SECRET".to_owned(), value.to_owned()),
        ("AMQP_URL".to_owned(), value.to_owned()),
    ]);
    let _ = Config::parse(yaml, env);
});
