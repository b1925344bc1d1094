//! The macro behind the registry in `integrations/mod.rs`: from one line per kind it makes the
//! config enum (tagged by `type:`) and the enum of built integrations, and dispatches every
//! per-kind fact to that kind's [`Kind`](super::Kind) implementation.

/// `registry! { /// doc \n Variant => module::Kind, … }`; the variant's snake_case name is the
/// `type:` (a unit test checks it equals the kind's `TYPE`).
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident => $kind:ty),+ $(,)?) => {
        /// One configured integration, tagged by `type:` in the YAML.
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        pub enum IntegrationConfig {
            $($(#[$doc])* $variant(<$kind as $crate::integrations::Kind>::Config),)+
        }

        impl IntegrationConfig {
            /// Every `type:` there is, in registry order.
            pub const TYPES: &'static [&'static str] =
                &[$(<$kind as $crate::integrations::Kind>::TYPE),+];

            /// The keys an entry of `type: kind` accepts, `type` among them, or `None` for a
            /// type there is not.
            pub fn keys_of(kind: &str) -> Option<Vec<&'static str>> {
                $(if kind == <$kind as $crate::integrations::Kind>::TYPE {
                    let mut keys = <<$kind as $crate::integrations::Kind>::Config
                        as $crate::integrations::Keys>::keys();
                    let after_name = keys.iter().position(|key| *key == "name").map_or(0, |at| at + 1);
                    keys.insert(after_name, "type");
                    return Some(keys);
                })+
                None
            }

            /// The `type:` of the integration, a bounded metrics label.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::TYPE,)+
                }
            }

            /// Why its receiver cannot join a trace, if it cannot
            /// ([`Kind::NO_TRACES`](super::Kind::NO_TRACES)).
            pub fn no_traces(&self) -> Option<&'static str> {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::NO_TRACES,)+
                }
            }

            /// The event types the kind gets without `events:`.
            pub fn default_events(&self) -> &'static [$crate::event::EventType] {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::DEFAULT_EVENTS,)+
                }
            }

            fn settings(&self) -> &dyn $crate::integrations::Settings {
                match self {
                    $(Self::$variant(config) => config,)+
                }
            }

            /// Compiles and checks this integration's templates into `templates` (a template
            /// that fails stops the start, never a send).
            pub fn register_templates(
                &self,
                templates: &mut $crate::render::Templates,
                dir: &std::path::Path,
            ) -> Result<(), $crate::render::TemplateError> {
                match self {
                    $(Self::$variant(config) => {
                        $crate::integrations::Checks::register_templates(config, templates, dir)
                    })+
                }
            }

            /// Every file path the integration names (templates, key files).
            pub fn paths_mut(&mut self) -> Vec<&mut std::path::PathBuf> {
                match self {
                    $(Self::$variant(config) => {
                        $crate::integrations::Checks::paths_mut(config)
                    })+
                }
            }

            /// Its kind's [`Kind::build`](super::Kind::build).
            fn build_kind(
                &self,
                parts: &$crate::integrations::Parts,
            ) -> Result<Built, $crate::integrations::Problems> {
                match self {
                    $(Self::$variant(config) => {
                        <$kind as $crate::integrations::Kind>::build(config.clone(), parts)
                            .map(Built::$variant)
                    })+
                }
            }
        }

        /// A built integration of one kind.
        #[derive(Debug)]
        enum Built {
            $($variant($kind),)+
        }

        impl Built {
            fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::TYPE,)+
                }
            }

            fn classifier(&self) -> $crate::integrations::Classifier {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::classify,)+
                }
            }

            /// How a step that edits the run's kept object reads its answer: a "gone" is taken.
            fn classifier_unless_gone(&self) -> $crate::integrations::Classifier {
                match self {
                    $(Self::$variant(_) => $crate::integrations::kind::classify_unless_gone::<$kind>,)+
                }
            }

            fn gone(&self, answer: &$crate::integrations::Answer) -> bool {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::gone(answer),)+
                }
            }

            fn settings(&self) -> &dyn $crate::integrations::Settings {
                use $crate::integrations::Kind as _;
                match self {
                    $(Self::$variant(built) => built.config(),)+
                }
            }

            fn default_events(&self) -> &'static [$crate::event::EventType] {
                match self {
                    $(Self::$variant(_) => <$kind as $crate::integrations::Kind>::DEFAULT_EVENTS,)+
                }
            }

            async fn plan(
                &self,
                notification: &$crate::integrations::Notification<'_>,
                io: &$crate::integrations::Io<'_>,
            ) -> Result<$crate::integrations::Plan, $crate::failure::DeliveryError> {
                use $crate::integrations::Kind as _;
                // Boxed: the enum's future is as large as its largest kind's (tens of KiB with
                // the HTTP client's), and every future awaiting it, up to the spawned task,
                // would carry and copy that much for every delivery.
                match self {
                    $(Self::$variant(built) => Box::pin(built.plan(notification, io)).await,)+
                }
            }

            fn draft(
                &self,
                notification: &$crate::integrations::Notification<'_>,
            ) -> Option<$crate::integrations::Draft> {
                use $crate::integrations::Kind as _;
                match self {
                    $(Self::$variant(built) => built.draft(notification),)+
                }
            }

            async fn send(
                &self,
                request: $crate::integrations::OutgoingRequest,
                io: &$crate::integrations::Io<'_>,
            ) -> Result<$crate::integrations::Answer, $crate::failure::DeliveryError> {
                use $crate::integrations::Kind as _;
                // Boxed, as `plan` is.
                match self {
                    $(Self::$variant(built) => Box::pin(built.send(request, io)).await,)+
                }
            }
        }
    };
}
pub(crate) use registry;
