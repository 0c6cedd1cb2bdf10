//! Arbitrary bytes as a pool file: opening, scanning, cutting fields,
//! matching, escaping and JSON must never panic, and what they report must
//! agree with the bytes.
//!
//! The fuzz target `pool` runs it on what libFuzzer makes; `tests/fuzz.rs`
//! replays every seed and every artifact through it in `make test`.

use std::time::Duration;

use hvkvp::internal::matcher::{MatchOptions, Matcher};
use hvkvp::internal::output::{Format, Render, Style};
use hvkvp::pool::{Access, Pool, PoolId};
use hvkvp::record::{self, KEY_SIZE, RECORD_SIZE};

/// Check one input; panics where a rule is broken.
pub fn check(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(PoolId::GUEST.file_name()), data).unwrap();
    let mut pool = Pool::open(dir.path(), PoolId::GUEST, Access::Read, Duration::ZERO).unwrap();
    assert_eq!(pool.len(), data.len() / RECORD_SIZE);
    assert_eq!(pool.tail() as usize, data.len() % RECORD_SIZE);
    let substring = Matcher::pattern(
        b"a",
        &MatchOptions {
            ignore_case: true,
            ..Default::default()
        },
    )
    .unwrap();
    let entries = pool
        .scan(|p| {
            let mut entries = Vec::new();
            for r in p.records() {
                let raw = &data[r.index * RECORD_SIZE..(r.index + 1) * RECORD_SIZE];
                assert_eq!(r.bytes(), raw);
                let key = r.key();
                assert!(!key.contains(&0));
                assert_eq!(key, record::field(&raw[..KEY_SIZE]));
                if record::key_is(r.key_field(), key) != record::is_terminated(r.key_field()) {
                    // A key without NUL is all 512 bytes: key_is still matches it.
                    assert_eq!(key.len(), KEY_SIZE);
                }
                let _ = substring.is_match(key);
                entries.push((r.index, key.to_vec(), r.value().to_vec()));
            }
            entries
        })
        .unwrap();
    drop(pool);

    for escape in [false, true] {
        for format in [Format::Kv, Format::Value, Format::Json, Format::Object] {
            let mut out = Vec::new();
            let style = Style {
                format,
                null: false,
                show_pool: escape,
                escape,
            };
            let mut render = Render::new(&mut out, style);
            for (index, key, value) in &entries {
                render.entry(1, *index, key, value).unwrap();
            }
            render.finish().unwrap();
            if escape && format != Format::Json && format != Format::Object {
                // Nothing a terminal acts on gets through.
                assert!(!out.iter().any(|&b| b == 0x1b || b == b'\r'));
            }
            if format == Format::Json {
                // The JSON parses and gives back every field exactly.
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let items = v.as_array().unwrap();
                assert_eq!(items.len(), entries.len());
                for (item, (_, key, value)) in items.iter().zip(&entries) {
                    for (name, bytes) in [("key", key), ("value", value)] {
                        match item.get(format!("{name}_hex")) {
                            Some(hex) => {
                                let hex = hex.as_str().unwrap();
                                assert_eq!(hex.len(), bytes.len() * 2);
                            }
                            None => assert_eq!(item[name].as_str().unwrap().as_bytes(), &bytes[..]),
                        }
                    }
                }
            }
        }
    }
}
