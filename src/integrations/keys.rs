//! The keys an integration entry accepts, so that a typo in one is named with the list. Serde
//! cannot say it: an entry flattens [`Common`](super::Common) and [`Filters`](crate::route::Filters)
//! into the kind's own struct, and under `flatten` its unknown-field error has no list and
//! comes only after every required field is found. The `keyed!` macro wraps a config struct
//! and lists its own fields; a flattened field contributes the keys of its struct, read from
//! serde itself by [`struct_fields`].

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A config struct whose accepted keys are known.
pub trait Keys {
    /// Every key it accepts, in declaration order.
    fn keys() -> Vec<&'static str>;
}

/// Declares a config struct unchanged and implements [`Keys`] for it from its fields: a
/// field's name, or for a `#[serde(flatten)]` field the fields of its struct.
macro_rules! keyed {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$($attr:tt)*])*
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$($attr)*])* $fvis $field: $ty, )*
        }

        impl $crate::integrations::Keys for $name {
            fn keys() -> Vec<&'static str> {
                let mut keys = Vec::new();
                $(
                    let flattened = [$(stringify!($($attr)*)),*]
                        .iter()
                        .any(|attr| $crate::integrations::keys::is_flatten(attr));
                    if flattened {
                        keys.extend($crate::integrations::keys::struct_fields::<$ty>());
                    } else {
                        keys.push(stringify!($field));
                    }
                )*
                keys
            }
        }
    };
}
pub(crate) use keyed;

/// Whether an attribute, as `stringify!` writes it, is `serde(flatten)`.
pub fn is_flatten(attr: &str) -> bool {
    let compact: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    compact == "serde(flatten)"
}

/// The field names a derived struct `T` hands to `deserialize_struct` (its keys; renamed ones
/// as renamed), or none when `T` is not such a struct.
pub fn struct_fields<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    let mut fields = Vec::new();
    let _ = T::deserialize(FieldsOf(&mut fields));
    fields
}

/// A deserializer that only notes the fields it is asked for, then stops the parse.
struct FieldsOf<'a>(&'a mut Vec<&'static str>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fields noted")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldsOf<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::{Common, IntegrationConfig};
    use crate::route::Filters;

    #[test]
    fn flattened_structs_give_their_fields() {
        assert_eq!(
            struct_fields::<Common>(),
            [
                "name",
                "timeout",
                "concurrency",
                "circuit_breaker",
                "send_traceparent"
            ]
        );
        assert!(struct_fields::<Filters>().contains(&"only_failed"));
        assert!(struct_fields::<String>().is_empty());
    }

    #[test]
    fn an_entry_lists_its_own_fields_and_those_it_flattens() {
        assert_eq!(
            IntegrationConfig::keys_of("webhook").unwrap(),
            [
                "name",
                "type",
                "timeout",
                "concurrency",
                "circuit_breaker",
                "send_traceparent",
                "projects",
                "branches",
                "tags",
                "reasons",
                "only_failed",
                "url",
                "secrets",
                "hub_secret",
                "headers"
            ]
        );
        let github = IntegrationConfig::keys_of("github_status").unwrap();
        for key in ["api_url", "auth", "context", "only_failed"] {
            assert!(github.contains(&key), "{github:?}");
        }
        assert_eq!(IntegrationConfig::keys_of("pager"), None);
    }
}
