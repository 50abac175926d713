//! Write a crypto-etl transform plugin in one short file.
//!
//! A plugin is a Rust crate built to a WebAssembly component. It says what it is ([`Plugin::info`]),
//! what it will read and write for a given configuration and input schema ([`Plugin::plan`]), and
//! then transforms the whole snapshot at once ([`Plugin::transform`]). The host checks the plan
//! against the rest of the pipeline before any data moves, gives the plugin only the columns it
//! reads, and checks what comes back against the plan.
//!
//! ```ignore
//! use crypto_etl_plugin_sdk::prelude::*;
//!
//! struct HalfPrice;
//!
//! impl Plugin for HalfPrice {
//!     fn info() -> PluginInfo {
//!         plugin_info!("Half of the current price, for the bargain hunters")
//!     }
//!
//!     fn plan(_config: &Config, _schema: &Schema) -> Result<Plan, PluginError> {
//!         Ok(Plan::new()
//!             .reads("current_price", ColumnType::Float64)
//!             .writes("half_price", ColumnType::Float64, "current_price / 2"))
//!     }
//!
//!     fn transform(input: &Input) -> Result<Output, PluginError> {
//!         let price = input.float64("current_price")?;
//!         let half = price.iter().map(|p| p.map(|p| p / 2.0));
//!         Ok(Output::new().column(Column::float64("half_price", half)))
//!     }
//! }
//!
//! export_plugin!(HalfPrice);
//! ```

mod column;
mod config;
#[cfg(target_arch = "wasm32")]
mod heap;
mod plan;

/// The generated bindings of the WIT interface this SDK targets (`wit/v0.1.0`).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "transform-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_transformer",
        default_bindings_module: "crypto_etl_plugin_sdk::bindings",
    });
}

pub use bindings::crypto_etl::plugin::host::LogLevel;
pub use bindings::crypto_etl::plugin::types::{
    ColumnInfo, ColumnType, Output as WireOutput, PluginError, PluginInfo, Rejection,
    SnapshotContext,
};
pub use column::{Column, Input, Numbers, Output, Schema, Texts, Values};
pub use config::Config;
pub use plan::Plan;

/// The version of the plugin interface this SDK builds against.
pub const INTERFACE_VERSION: &str = "0.1.0";

/// A transform plugin. Implement these three functions and call [`export_plugin!`].
pub trait Plugin {
    /// Name, version and description. Use [`plugin_info!`] to take them from `Cargo.toml`.
    fn info() -> PluginInfo;

    /// What this plugin will read, write, remove and whether it may drop rows, for a batch with
    /// `schema` under `config`. Refuse a bad configuration here with
    /// [`PluginError::InvalidConfig`]: this runs before any data moves.
    fn plan(config: &Config, schema: &Schema) -> Result<Plan, PluginError>;

    /// Transform the snapshot. `input` holds exactly the columns the plan reads.
    fn transform(input: &Input) -> Result<Output, PluginError>;
}

/// Write a line to the host's log (tagged with this plugin's name by the host).
pub fn log(level: LogLevel, message: &str) {
    bindings::crypto_etl::plugin::host::log(level, message);
}

/// `PluginInfo` from this crate's `Cargo.toml` name and version, with a description.
#[macro_export]
macro_rules! plugin_info {
    ($description:expr) => {
        $crate::PluginInfo {
            name: ::std::string::String::from(env!("CARGO_PKG_NAME")),
            version: ::std::string::String::from(env!("CARGO_PKG_VERSION")),
            description: ::std::string::String::from($description),
        }
    };
}

/// Export a [`Plugin`] implementation as this component's `transformer`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __CryptoEtlExport;

        impl $crate::bindings::exports::crypto_etl::plugin::transformer::Guest for __CryptoEtlExport {
            fn info() -> $crate::PluginInfo {
                <$plugin as $crate::Plugin>::info()
            }

            fn plan(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                schema: ::std::vec::Vec<$crate::ColumnInfo>,
            ) -> ::std::result::Result<
                $crate::bindings::crypto_etl::plugin::types::TransformPlan,
                $crate::PluginError,
            > {
                let config = $crate::Config::new(config);
                let schema = $crate::Schema::new(schema);
                let plan = <$plugin as $crate::Plugin>::plan(&config, &schema)?;
                config.check_all_used()?;
                ::std::result::Result::Ok(plan.into_wire())
            }

            fn transform(
                config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                input: $crate::bindings::crypto_etl::plugin::types::Batch,
                context: $crate::SnapshotContext,
            ) -> ::std::result::Result<$crate::WireOutput, $crate::PluginError> {
                let input = $crate::Input::new($crate::Config::new(config), input, context);
                <$plugin as $crate::Plugin>::transform(&input).map($crate::Output::into_wire)
            }
        }

        // Exports exist only in the component; a native build (unit tests) links without them
        // but still type-checks the whole plugin.
        #[cfg(target_family = "wasm")]
        $crate::bindings::__export_transformer!(__CryptoEtlExport with_types_in $crate::bindings);
        #[cfg(not(target_family = "wasm"))]
        const _: () = {
            use $crate::bindings::exports::crypto_etl::plugin::transformer::Guest as _;
            let _ = __CryptoEtlExport::info;
            let _ = __CryptoEtlExport::plan;
            let _ = __CryptoEtlExport::transform;
        };
    };
}

/// Everything a plugin file usually needs.
pub mod prelude {
    pub use crate::{
        Column, ColumnType, Config, Input, LogLevel, Output, Plan, Plugin, PluginError, PluginInfo,
        Schema, SnapshotContext, export_plugin, log, plugin_info,
    };
}
