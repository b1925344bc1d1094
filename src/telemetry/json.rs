//! JSON log lines written straight from the fields: the same lines as tracing-subscriber's JSON
//! format (`timestamp`, `level`, the event's fields, `target`, and `spans` with each span's
//! `name` and fields), without its cost on the hot path: it keeps each span's fields as a JSON
//! map and parses and re-serializes that map for every `record` on the span and for every
//! line written inside it. Here a span's fields are a JSON fragment (`"k":v,…`) that a
//! `record` appends to and a line copies as it is.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats a span's fields as a JSON fragment: `"k":v` pairs joined by commas, no braces.
#[derive(Debug, Default)]
pub struct JsonFields;

/// Formats an event as one JSON line, its spans' fragments copied in (needs [`JsonFields`]).
#[derive(Debug, Default)]
pub struct JsonLine;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut pairs = Pairs::new(&mut writer, true);
        fields.record(&mut pairs);
        pairs.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        let mut pairs = Pairs::new(&mut added, true);
        fields.record(&mut pairs);
        pairs.result?;
        let mut repeated = false;
        fields.record(&mut |field: &Field, _: &dyn fmt::Debug| {
            repeated |= current.fields.contains(&format!("\"{}\":", field.name()));
        });
        if repeated {
            // A field recorded again: its new value replaces the old (rare, so the slow way).
            current.fields = merged(&current.fields, &added)?;
        } else if !added.is_empty() {
            if !current.fields.is_empty() {
                current.fields.push(',');
            }
            current.fields.push_str(&added);
        }
        Ok(())
    }
}

/// `fragment` with the pairs of `added`, a key in both taking its value from `added`.
fn merged(fragment: &str, added: &str) -> Result<String, fmt::Error> {
    let map = |pairs: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&format!("{{{pairs}}}"))
            .map_err(|_| fmt::Error)
    };
    let mut fields = map(fragment)?;
    fields.extend(map(added)?);
    let object = serde_json::Value::Object(fields).to_string();
    Ok(object[1..object.len() - 1].to_owned())
}

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events forwarded from the `log` crate carry their real target and level here.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", metadata.level())?;
        let mut pairs = Pairs::new(&mut writer, false);
        event.record(&mut pairs);
        pairs.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, metadata.target())?;
        if let Some(scope) = ctx.event_scope() {
            writer.write_str(",\"spans\":[")?;
            for (index, span) in scope.from_root().enumerate() {
                if index > 0 {
                    writer.write_char(',')?;
                }
                writer.write_str("{\"name\":")?;
                string(&mut writer, span.name())?;
                let extensions = span.extensions();
                let fields = extensions.get::<FormattedFields<JsonFields>>();
                if let Some(fields) = fields.filter(|f| !f.fields.is_empty()) {
                    writer.write_char(',')?;
                    writer.write_str(&fields.fields)?;
                }
                writer.write_char('}')?;
            }
            writer.write_char(']')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes visited fields as `"k":v` pairs, each after a comma unless it is the first.
struct Pairs<'a, W> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> Pairs<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    /// Writes one pair; `log.*` fields (the `log` crate's metadata, already used) are left out.
    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.out.write_char(',')?;
            }
            string(self.out, name)?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for Pairs<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |out| {
            out.write_char('"')?;
            write!(Escaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes them as null too.
        match value.is_finite() {
            true => self.pair(field, |out| write!(out, "{value}")),
            false => self.pair(field, |out| out.write_str("null")),
        }
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Passes text on with JSON's string escapes.
struct Escaped<'a, W>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            match escape {
                "" => write!(self.0, "\\u{byte:04x}")?,
                escape => self.0.write_str(escape)?,
            }
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests;
