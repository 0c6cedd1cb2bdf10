//! `hvkvp read`: copy matching records out under a shared lock, release
//! it, then print. Printing never happens under the lock: a reader piped
//! into `less` must not stall the daemon, whose host request times out
//! after 30 s.

use std::io::{BufWriter, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::chunk::{Broken, Chunks};
use crate::cli::ReadArgs;
use crate::commands::{key_matcher, os_bytes, Ctx};
use crate::error::{Error, Exit};
use crate::matcher::Matcher;
use crate::output::messages::{say, tell_no_match, warn};
use crate::output::{self, show_key, Entry, Format, Style};
use crate::pool::{self, Access, Pool, PoolId};
use crate::watch::Watch;

/// Print the records of `pool` (default 0) that the arguments name.
pub fn run(ctx: &Ctx, pool: Option<PoolId>, a: &ReadArgs) -> Result<Exit, Error> {
    let quiet = ctx.quiet || a.noout.set;
    let all_pools = a.all_pools.set;
    // Read matches substrings unless -m on.
    let matcher = key_matcher(
        ctx,
        a.key.as_deref(),
        a.pattern.as_deref(),
        &a.matching,
        false,
    )?;
    let (matcher, format, first_only) = match matcher {
        Some(m) if a.key.is_some() => (m, Format::Value, true),
        Some(m) => (m, Format::Kv, false),
        None => (Matcher::all(), Format::Kv, false),
    };
    let format = a.output.unwrap_or(format);
    if a.null && matches!(format, Format::Json | Format::Object) {
        return Err(Error::Input(
            "-0 and -o json/object do not go together: pick one".into(),
        ));
    }

    let pools = if all_pools && a.wait.is_some() {
        // Pools that do not exist yet may be the ones the key comes in.
        PoolId::ALL.to_vec()
    } else if all_pools {
        let pools = pool::existing(&ctx.dir)?;
        if pools.is_empty() {
            return Err(Error::NoPools {
                dir: ctx.dir.clone(),
            });
        }
        pools
    } else {
        vec![pool.unwrap_or(PoolId::EXTERNAL)]
    };
    let q = Query {
        matcher: &matcher,
        first_only,
        join: a.join.then(|| a.key.as_deref().map(os_bytes)).flatten(),
    };

    let style = Style {
        format,
        null: a.null,
        show_pool: all_pools,
        escape: std::io::stdout().is_terminal(),
    };
    // With -a, a pool that cannot be read is named and the others printed;
    // the exit status says one failed.
    let mut failed = false;
    let entries = match a.wait {
        Some(limit) => {
            let key = a.key.as_deref().map(os_bytes).unwrap_or_default();
            match wait_for(ctx, &pools, &q, limit, all_pools.then_some(&mut failed))? {
                Some(found) => found,
                None => {
                    tell_no_match(&format!("{}: timed out waiting for it", show_key(key)));
                    return Ok(if failed {
                        Exit::Environment
                    } else {
                        Exit::NoMatch
                    });
                }
            }
        }
        None => {
            let mut entries = Vec::new();
            for id in &pools {
                let f = match collect(ctx, *id, &q, ctx.timeout) {
                    // The pool asked for is missing: if the key is in
                    // another pool, that is the answer the user needs.
                    Err(e @ Error::NoPoolFile { .. }) if a.key.is_some() && !all_pools => {
                        let Some(other) = elsewhere(ctx, *id, &matcher) else {
                            return Err(e);
                        };
                        let key = a.key.as_deref().map(os_bytes).unwrap_or_default();
                        say(&format!("{e}"));
                        say(&in_pool(key, other));
                        return Ok(Exit::NoMatch);
                    }
                    Err(e) if all_pools && !e.is_broken_pipe() => {
                        say(&format!("error: {}", e.message()));
                        failed = true;
                        continue;
                    }
                    f => f?,
                };
                f.warnings.iter().for_each(|w| warn(w));
                if let Some(why) = f.broken {
                    say(&format!("error: {why}"));
                    return Ok(Exit::NoMatch);
                }
                entries.extend(f.entries);
            }
            entries
        }
    };

    // hvkvp 2.0 printed nothing and exited 0: scripts under `set -e` rely
    // on it.
    if entries.is_empty() && ctx.compat && !failed {
        return Ok(Exit::Success);
    }
    // JSON says "nothing" as an empty array or object, so that a program
    // reading it needs no special case.
    let structured = matches!(format, Format::Json | Format::Object);
    if !quiet && (structured || !entries.is_empty()) {
        print(&entries, &style)?;
    }
    if failed {
        return Ok(Exit::Environment);
    }
    if entries.is_empty() {
        match (&a.key, all_pools) {
            (Some(k), false) => not_found(ctx, pools[0], os_bytes(k), &matcher, a),
            // -a: the key may be in any pool, in another case.
            (Some(k), true) => match other_case(ctx, &pools, os_bytes(k), a) {
                Some((id, stored)) => say(&format!(
                    "{}: no such key; {} in pool {id} differs only in case: spell it so, or add \
                     -i to ignore case",
                    show_key(os_bytes(k)),
                    show_key(&stored)
                )),
                None => tell_no_match("no records matched"),
            },
            (None, _) => tell_no_match("no records matched"),
        }
        return Ok(Exit::NoMatch);
    }
    Ok(Exit::Success)
}

/// Print every record of one pool as `key: value` lines (what a 2.0-form
/// `write` or `delete` shows after the change).
pub(crate) fn print_pool(ctx: &Ctx, id: PoolId) -> Result<(), Error> {
    let q = Query {
        matcher: &Matcher::all(),
        first_only: false,
        join: None,
    };
    let f = collect(ctx, id, &q, ctx.timeout)?;
    f.warnings.iter().for_each(|w| warn(w));
    let style = Style {
        format: Format::Kv,
        null: false,
        show_pool: false,
        escape: std::io::stdout().is_terminal(),
    };
    print(&f.entries, &style)
}

/// Write entries to stdout; escaped on a terminal, exact bytes to a pipe.
fn print(entries: &[Entry], style: &Style) -> Result<(), Error> {
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    output::write_entries(&mut out, entries, style)
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// Why `read KEY` found nothing in pool `id`, where a hint can say more:
/// the key spelt in another case there; the key in another pool; the key
/// in another case in another pool. Scripts that ask for a key that may
/// be absent get the hints on stderr only.
fn not_found(ctx: &Ctx, id: PoolId, key: &[u8], matcher: &Matcher, a: &ReadArgs) {
    if let Some((_, stored)) = other_case(ctx, &[id], key, a) {
        return say(&format!(
            "{}: no such key in pool {id}; {} differs only in case: spell it so, or add -i to \
             ignore case",
            show_key(key),
            show_key(&stored)
        ));
    }
    if let Some(other) = elsewhere(ctx, id, matcher) {
        return say(&in_pool(key, other));
    }
    let others: Vec<PoolId> = PoolId::ALL.into_iter().filter(|&p| p != id).collect();
    match other_case(ctx, &others, key, a) {
        Some((other, stored)) => say(&format!(
            "{}: no such key in pool {id}; {} in pool {other} differs only in case: use -p {} \
             and spell it so, or add -i",
            show_key(key),
            show_key(&stored),
            other.number()
        )),
        None => tell_no_match(&format!("{}: no such key in pool {id}", show_key(key))),
    }
}

/// The first of `pools` holding `key` spelt in another case, and that
/// spelling (`read -p 3 virtualmachinename`), for a hint. None with -i,
/// which already ignores case, and with --join, whose chunks a case hint
/// would not cover. Best effort: a pool locked by a writer this very
/// moment is not waited for (a try-lock), and is passed over.
fn other_case(ctx: &Ctx, pools: &[PoolId], key: &[u8], a: &ReadArgs) -> Option<(PoolId, Vec<u8>)> {
    if a.matching.ignore_case || a.join {
        return None;
    }
    let q = Query {
        matcher: &Matcher::exact_fold(key),
        first_only: true,
        join: None,
    };
    pools.iter().find_map(|&id| {
        let found = collect(ctx, id, &q, Duration::ZERO).ok()?;
        found.entries.into_iter().next().map(|e| (id, e.key))
    })
}

/// `--wait`: look, and until the key is there, sleep until a pool file
/// changes. The watch is set up before the first look, so a write that
/// lands between the look and the sleep still wakes us. A pool file that
/// does not exist yet is a key not there yet, and so is a pool directory
/// removed during the wait (the watch waits for it to come back): only a
/// directory missing from the start is an error, most likely a wrong
/// `--pool-dir` or no daemon.
fn wait_for(
    ctx: &Ctx,
    pools: &[PoolId],
    q: &Query<'_>,
    limit: Option<Duration>,
    mut failed: Option<&mut bool>,
) -> Result<Option<Vec<Entry>>, Error> {
    // Missing, not a directory, or closed to us: say which.
    pool::check_dir(&ctx.dir)?;
    let names = pools.iter().map(|id| id.file_name().into()).collect();
    let mut watch = Watch::new(&ctx.dir, names).map_err(|_| Error::NoPoolDir {
        dir: ctx.dir.clone(),
    })?;
    let deadline = limit.and_then(|l| Instant::now().checked_add(l));
    let mut warned = false;
    loop {
        let mut found = Vec::new();
        for id in pools {
            match collect(ctx, *id, q, ctx.timeout) {
                Ok(f) => {
                    if !warned {
                        f.warnings.iter().for_each(|w| warn(w));
                    }
                    // Not whole yet: keep waiting for a write that makes
                    // it whole, and say once why it is not there.
                    if let Some(why) = f.broken.filter(|_| !warned) {
                        warn(&why);
                    }
                    found.extend(f.entries);
                }
                Err(Error::NoPoolFile { .. } | Error::NoPoolDir { .. }) => {}
                // With -a (`failed` given), a pool that cannot be read is
                // named once and the others are still waited on.
                Err(e) => match failed.as_deref_mut() {
                    Some(failed) => {
                        if !warned {
                            say(&format!("error: {}", e.message()));
                        }
                        *failed = true;
                    }
                    None => return Err(e),
                },
            }
        }
        warned = true;
        if !found.is_empty() {
            return Ok(Some(found));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        watch.wait(deadline);
    }
}

/// What to look for in each pool.
struct Query<'a> {
    matcher: &'a Matcher,
    /// Only the first matching record of a pool (`read KEY`).
    first_only: bool,
    /// `--join`: the key to put back together from its chunks when absent.
    join: Option<&'a [u8]>,
}

/// What one pool gave: the records to print, and warnings to print once the
/// pool is unlocked.
struct Found {
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// `--join` found chunks that do not join up: why.
    broken: Option<String>,
}

/// Copy the matching records of one pool out under its shared lock. With
/// `join`, a key that is absent is put back together from its chunks
/// `KEY.0`, `KEY.1`, … A set of chunks that does not join up to one value
/// (one missing, or chunks of two values) is an error: a shorter or mixed
/// value printed with exit 0 would be taken for the real one.
fn collect(ctx: &Ctx, id: PoolId, q: &Query<'_>, timeout: Duration) -> Result<Found, Error> {
    let mut pool = Pool::open(&ctx.dir, id, Access::Read, timeout)?;
    let (mut entries, chunks) = pool.scan(|p| {
        let mut found = Vec::new();
        for r in p.records() {
            if q.matcher.matches_field(r.key_field()) {
                found.push(Entry {
                    pool: id.number(),
                    index: r.index,
                    key: r.key().to_vec(),
                    value: r.value().to_vec(),
                });
                if q.first_only {
                    break;
                }
            }
        }
        let mut chunks = Chunks::default();
        if let Some(key) = q.join.filter(|_| found.is_empty()) {
            for r in p.records() {
                chunks.see(key, r.index, r.bytes());
            }
        }
        (found, chunks)
    })?;
    let warnings: Vec<String> = pool.misaligned_warning().into_iter().collect();
    drop(pool); // unlock before anything is printed
    let mut broken = None;
    if let (Some(key), false) = (q.join, chunks.is_empty()) {
        match chunks.join() {
            Ok((index, value)) => entries.push(Entry {
                pool: id.number(),
                index,
                key: key.to_vec(),
                value,
            }),
            Err(Broken::Missing(n)) => {
                broken = Some(format!(
                    "{} is missing from pool {id}: the chunks do not make a whole value",
                    show_key(&crate::chunk::chunk_key(key, n as usize))
                ))
            }
            Err(Broken::Mixed) => {
                broken = Some(format!(
                    "the chunks of {} in pool {id} do not join up to one value: a \
                     `write --split` was cut short; write the value again",
                    show_key(key)
                ))
            }
        }
    }
    Ok(Found {
        entries,
        warnings,
        broken,
    })
}

/// The hint for a key found in another pool than the one asked.
fn in_pool(key: &[u8], other: PoolId) -> String {
    format!(
        "{} is in pool {other}: use -p {}",
        show_key(key),
        other.number()
    )
}

/// Which other pool holds the key, for the "use -p N" hint. Best effort: a
/// pool that cannot be read at once is skipped.
fn elsewhere(ctx: &Ctx, not: PoolId, matcher: &Matcher) -> Option<PoolId> {
    let timeout = ctx.timeout.min(Duration::from_secs(1));
    let q = Query {
        matcher,
        first_only: true,
        join: None,
    };
    PoolId::ALL
        .into_iter()
        .filter(|&id| id != not)
        .find(|&id| collect(ctx, id, &q, timeout).is_ok_and(|f| !f.entries.is_empty()))
}
