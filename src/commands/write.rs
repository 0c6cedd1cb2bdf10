//! `hvkvp write`: check the key and value against every limit before the
//! pool is opened, then, under the exclusive locks, update the first record
//! of the key in place (removing later duplicates) or append one record.

use std::io::Read;

use crate::cli::{OnOff, WriteArgs};
use crate::commands::{os_bytes, writable, Ctx};
use crate::error::{Error, Exit};
use crate::matcher::Matcher;
use crate::pool::{Access, Pool, PoolId};
use crate::record::{self, check_field, Field, Limits, VALUE_MAX_BYTES};

pub fn run(ctx: &Ctx, pool: Option<PoolId>, a: &WriteArgs) -> anyhow::Result<Exit> {
    if a.exact == Some(OnOff::Off) {
        return Err(Error::Input(
            "write -m off (overwrite every key containing the text) is not supported: \
             name the key exactly, with -i to ignore case"
                .into(),
        )
        .into());
    }
    let key = match (&a.key, &a.key_opt) {
        (Some(k), _) | (None, Some(k)) => os_bytes(k).to_vec(),
        (None, None) => {
            return Err(Error::Input("missing KEY: hvkvp write KEY VALUE".into()).into());
        }
    };
    let value = match (&a.value, &a.value_opt) {
        (Some(v), _) | (None, Some(v)) if v == "-" => read_stdin(a.chomp)?,
        (Some(v), _) | (None, Some(v)) => os_bytes(v).to_vec(),
        // hvkvp 2.0: `write -k KEY` without -v sets an empty value.
        (None, None) if a.key_opt.is_some() => Vec::new(),
        (None, None) => {
            return Err(Error::Input(
                "missing VALUE: hvkvp write KEY VALUE (or - to read the value from stdin)".into(),
            )
            .into());
        }
    };
    let limits = if a.force {
        Limits::FieldOnly
    } else {
        Limits::Host
    };
    check_field(Field::Key, &key, limits)?;
    check_field(Field::Value, &value, limits)?;
    let id = writable(pool.unwrap_or(PoolId::GUEST), a.force)?;

    let mut p = Pool::open(&ctx.dir, id, Access::WriteCreate, ctx.timeout)?;
    p.require_aligned()?;
    let matcher = if a.ignore_case {
        Matcher::exact_fold(&key)
    } else {
        Matcher::exact(&key)
    };
    let hits: Vec<usize> = p.scan(|p| match matcher.exact_key() {
        Some(k) => p
            .records()
            .filter(|r| record::key_is(r.key_field(), k))
            .map(|r| r.index)
            .collect(),
        None => p
            .records()
            .filter(|r| matcher.is_match(r.key()))
            .map(|r| r.index)
            .collect(),
    })?;

    match hits.split_first() {
        Some((&first, later)) => {
            let rec = if a.ignore_case {
                // Keep the stored spelling (hvkvp 2.0 behaviour).
                let stored = p.rec(first).key().to_vec();
                check_field(Field::Key, &stored, limits)?;
                record::encode(&stored, &value)
            } else {
                record::encode(&key, &value)
            };
            if p.rec(first).bytes() != &rec[..] {
                p.update(first, &rec)?;
            }
            if !later.is_empty() {
                // One record per key after a write.
                p.remove(later)?;
            }
        }
        None => p.append(&record::encode(&key, &value))?,
    }
    Ok(Exit::Success)
}

/// The value from stdin, read no further than one byte past the largest
/// value a field can hold (plus the newline --chomp may drop): an endless
/// stdin is refused, not swallowed.
fn read_stdin(chomp: bool) -> Result<Vec<u8>, Error> {
    let cap = VALUE_MAX_BYTES + usize::from(chomp) + 1;
    let mut buf = Vec::with_capacity(cap);
    std::io::stdin()
        .lock()
        .take(cap as u64)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Input(format!("reading the value from stdin: {e}")))?;
    if chomp && buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.len() > VALUE_MAX_BYTES {
        return Err(Error::Input(format!(
            "the value on stdin is longer than {VALUE_MAX_BYTES} bytes, the most a value field \
             holds (stopped reading after {cap} bytes)"
        )));
    }
    Ok(buf)
}
