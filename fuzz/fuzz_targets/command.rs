//! The `command` fuzz target: see `fuzz/check/command.rs`.
#![no_main]

#[path = "../check/command.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
