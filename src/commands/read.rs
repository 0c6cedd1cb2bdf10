//! `hvkvp read`: copy matching records out under a shared lock, release
//! it, then print. Printing never happens under the lock: a reader piped
//! into `less` must not stall the daemon, whose host request times out
//! after 30 s.

use std::io::{BufWriter, IsTerminal, Write};
use std::time::Duration;

use crate::cli::{OnOff, ReadArgs};
use crate::commands::{os_bytes, show_key, tell_no_match, warn_if_misaligned, Ctx};
use crate::error::{Error, Exit};
use crate::matcher::{MatchOptions, Matcher};
use crate::output::{self, Entry, Format, Style};
use crate::pool::{Access, Pool, PoolId};
use crate::record;

pub fn run(ctx: &Ctx, pool: Option<PoolId>, a: &ReadArgs) -> anyhow::Result<Exit> {
    let quiet = ctx.quiet || a.noout;
    let (matcher, format, first_only) = if let Some(k) = &a.key {
        let k = os_bytes(k);
        let m = if a.matching.ignore_case {
            Matcher::exact_fold(k)
        } else {
            Matcher::exact(k)
        };
        (m, Format::Value, true)
    } else if let Some(p) = &a.pattern {
        let o = MatchOptions {
            exact: a.matching.exact == Some(OnOff::On),
            ignore_case: a.matching.ignore_case,
            invert: a.matching.invert,
            regex: a.matching.regex,
        };
        (Matcher::pattern(os_bytes(p), &o)?, Format::Kv, false)
    } else {
        (Matcher::all(), Format::Kv, false)
    };
    let format = a.output.unwrap_or(format);
    if a.null && format == Format::Json {
        return Err(Error::Input("-0 and -o json do not go together: pick one".into()).into());
    }

    let pools = if a.all_pools {
        existing_pools(ctx)?
    } else {
        vec![pool.unwrap_or(PoolId::EXTERNAL)]
    };
    let mut entries = Vec::new();
    for id in &pools {
        collect(
            ctx,
            *id,
            &matcher,
            first_only,
            &mut entries,
            ctx.timeout,
            true,
        )?;
    }

    if entries.is_empty() {
        if let (Some(k), false) = (&a.key, a.all_pools) {
            let id = pools[0];
            match elsewhere(ctx, id, &matcher) {
                Some(other) => crate::commands::say(&format!(
                    "{} is in pool {other}: use -p {}",
                    show_key(os_bytes(k)),
                    other.number()
                )),
                None => tell_no_match(&format!(
                    "{}: no such key in pool {id}",
                    show_key(os_bytes(k))
                )),
            }
        } else {
            tell_no_match("no records matched");
        }
        return Ok(Exit::NoMatch);
    }

    if !quiet {
        let stdout = std::io::stdout();
        let style = Style {
            format,
            null: a.null,
            show_pool: a.all_pools,
            escape: stdout.is_terminal(),
        };
        let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
        output::write_entries(&mut out, &entries, &style)?;
        out.flush()?;
    }
    Ok(Exit::Success)
}

/// The pools whose files exist, in order. A missing directory is an error.
fn existing_pools(ctx: &Ctx) -> Result<Vec<PoolId>, Error> {
    if !ctx.dir.is_dir() {
        return Err(Error::NoPoolDir {
            dir: ctx.dir.clone(),
        });
    }
    Ok(PoolId::ALL
        .into_iter()
        .filter(|id| ctx.dir.join(id.file_name()).exists())
        .collect())
}

/// Copy the matching records of one pool into `out`.
fn collect(
    ctx: &Ctx,
    id: PoolId,
    matcher: &Matcher,
    first_only: bool,
    out: &mut Vec<Entry>,
    timeout: Duration,
    warn: bool,
) -> Result<(), Error> {
    let mut pool = Pool::open(&ctx.dir, id, Access::Read, timeout)?;
    let found = pool.scan(|p| {
        let mut found = Vec::new();
        let entry = |r: crate::pool::Rec<'_>| Entry {
            pool: id.number(),
            index: r.index,
            key: r.key().to_vec(),
            value: r.value().to_vec(),
        };
        if let Some(k) = matcher.exact_key() {
            // Compare in place: length first, then bytes; no cut, no copy.
            for r in p.records() {
                if record::key_is(r.key_field(), k) {
                    found.push(entry(r));
                    if first_only {
                        break;
                    }
                }
            }
        } else {
            for r in p.records() {
                if matcher.is_match(r.key()) {
                    found.push(entry(r));
                    if first_only {
                        break;
                    }
                }
            }
        }
        found
    })?;
    if warn {
        warn_if_misaligned(&pool);
    }
    drop(pool); // unlock before anything is printed
    out.extend(found);
    Ok(())
}

/// Which other pool holds the key, for the "use -p N" hint. Best effort: a
/// pool that cannot be read at once is skipped.
fn elsewhere(ctx: &Ctx, not: PoolId, matcher: &Matcher) -> Option<PoolId> {
    let timeout = ctx.timeout.min(Duration::from_secs(1));
    PoolId::ALL.into_iter().filter(|&id| id != not).find(|&id| {
        let mut found = Vec::new();
        collect(ctx, id, matcher, true, &mut found, timeout, false).is_ok() && !found.is_empty()
    })
}
