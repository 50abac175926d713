//! The default plugins, compiled to WebAssembly by `host/build.rs` and embedded in the binary,
//! so the host works with no manifest and no plugin files at all. They run in the same sandbox
//! as any other plugin.

/// A plugin shipped inside the host.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub wasm: &'static [u8],
}

pub const CLEAN: Builtin =
    Builtin { name: "clean", wasm: include_bytes!(env!("CRYPTO_ETL_BUILTIN_CLEAN")) };

pub const MARKET_SHARE: Builtin =
    Builtin { name: "market-share", wasm: include_bytes!(env!("CRYPTO_ETL_BUILTIN_MARKET_SHARE")) };

pub const ALL: [Builtin; 2] = [CLEAN, MARKET_SHARE];

/// The built-in plugin called `name`.
pub fn find(name: &str) -> Option<Builtin> {
    ALL.into_iter().find(|b| b.name == name)
}
