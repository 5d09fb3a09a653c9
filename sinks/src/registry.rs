//! The macro that turns the one list of sink kinds (invoked in `lib.rs`)
//! into the sinks' modules and [`SinkConfig`](crate::SinkConfig):
//! `[[sink]] kind = "..."` → the config type that implements
//! [`SinkFactory`](crate::SinkFactory). The binary's config, `outflow run`
//! and `outflow check` go through `SinkConfig::factory` and never name a
//! kind.

/// Declares [`SinkConfig`] (one variant per kind, tagged by `kind`) and its
/// dispatch to each kind's factory.
macro_rules! sinks {
    ($( $(#[$cfg:meta])* $module:ident: $variant:ident($config:ty) = $kind:literal, )*) => {
        $( $(#[$cfg])* pub mod $module; )*

        /// One `[[sink]]`: its kind (the `kind` key) and its settings.
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        pub enum SinkConfig {
            $( $(#[$cfg])* #[serde(rename = $kind)] $variant($config), )*
        }

        impl SinkConfig {
            /// The `kind` this sink was configured with.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( $(#[$cfg])* SinkConfig::$variant(_) => $kind, )*
                }
            }

            /// The kind's factory: `validate`, `build`, `preflight`.
            pub fn factory(&self) -> &dyn $crate::SinkFactory {
                match self {
                    $( $(#[$cfg])* SinkConfig::$variant(c) => c, )*
                }
            }
        }
    };
}

pub(crate) use sinks;

impl crate::SinkConfig {
    /// The sink's name (its offsets are stored under it).
    pub fn name(&self) -> &str {
        self.factory().name()
    }
}
