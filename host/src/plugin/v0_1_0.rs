//! Bindings for version 0.1.0 of the plugin interface (`wit/v0.1.0`), and the conversions
//! between its types and the host's (written by [`crate::wire_conversions`]). Each interface
//! version the host accepts gets a module like this one; nothing outside `plugin` sees these
//! types.

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "transform-plugin",
});

pub use self::crypto_etl::plugin::host::LogLevel;
use self::crypto_etl::plugin::types as wire;

/// The name of the export that marks a component as a plugin of this interface version.
pub const EXPORT: &str = "crypto-etl:plugin/transformer@0.1.0";

crate::wire_conversions!(pub wire);
