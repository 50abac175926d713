//! Integration tests: the host, its plugins and its command line, run for real.

// Helpers here are test code too: a panic is a failed test with a line number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod cache;
mod common;
mod extract;
mod load;
mod real_payloads;
mod sandbox;
mod seed_compat;
