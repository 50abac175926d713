//! Integration tests: the host, its plugins and its command line, run for real.

// Helpers here are test code too: a panic is a failed test with a line number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod author;
mod backfill;
mod bad_input;
mod cache;
mod common;
mod config;
mod deploy;
mod extract;
mod lambda;
mod load;
mod publish;
mod real_payloads;
mod report;
mod sandbox;
mod seed_compat;
mod snowflake;
