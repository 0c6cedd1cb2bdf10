//! The `pool` fuzz target: see `fuzz/check/pool.rs`.
#![no_main]

#[path = "../check/pool.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
