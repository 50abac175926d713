//! A valid WebAssembly component that is not a crypto-etl plugin: it exports no `transformer`.

/// Never called; present so the component has some code.
pub fn nothing() -> u32 {
    42
}
