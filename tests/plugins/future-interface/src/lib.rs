//! Exports `crypto-etl:plugin/transformer@0.2.0`, a version no host accepts yet.

// Natively (workspace-wide builds) nothing is exported, so nothing is used.
#![cfg_attr(not(target_family = "wasm"), allow(dead_code))]

wit_bindgen::generate!({ path: "wit", world: "transform-plugin" });

struct Future;

impl exports::crypto_etl::plugin::transformer::Guest for Future {
    fn info() -> String {
        "from the future".into()
    }
}

#[cfg(target_family = "wasm")]
export!(Future);
