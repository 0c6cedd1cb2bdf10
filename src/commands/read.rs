//! `hvkvp read`: copy matching records out under a shared lock, release
//! it, then print: a reader piped into `less` must not stall the daemon.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::change::Finder;
use crate::chunk::{Broken, Chunks};
use crate::cli::ReadArgs;
use crate::commands::{key_matcher, os_bytes, Ctx};
use crate::error::{Error, Exit};
use crate::inspect::KeyIndex;
use crate::matcher::Matcher;
use crate::output::spool::{NoTempFile, Spool, NO_TEMP_FILE};
use crate::output::{noun, show_key, Format, Render, Style};
use crate::pool::{self, Access, Pool, PoolId};
use crate::watch::{self, Watch};

/// Print the records of `pool` (default 0) that the arguments name.
pub fn run(ctx: &mut Ctx, pool: Option<PoolId>, a: &ReadArgs) -> Result<Exit, Error> {
    let all_pools = a.all_pools;
    let key = a.key.as_deref().map(os_bytes);
    // Read matches substrings unless -m on.
    let (k, p) = (a.key.as_deref(), a.pattern.as_deref());
    let (matcher, format) = match key_matcher(ctx, k, p, &a.matching, false)? {
        Some(m) if key.is_some() => (m, Format::Value),
        m => (m.unwrap_or_else(Matcher::all), Format::Kv),
    };
    let format = a.output.unwrap_or(format);
    let structured = matches!(format, Format::Json | Format::Object);
    if a.null && structured {
        return Err(Error::Input(
            "-0 and -o json/object do not go together: pick one".into(),
        ));
    }
    let pools = match (all_pools, a.wait) {
        // Pools that do not exist yet may be the ones the key comes in.
        (true, Some(_)) => PoolId::ALL.to_vec(),
        (true, None) => pool::existing(&ctx.dir)?,
        (false, _) => vec![pool.unwrap_or(PoolId::EXTERNAL)],
    };
    if pools.is_empty() {
        return Err(Error::NoPools {
            dir: ctx.dir.clone(),
        });
    }
    let q = Query {
        matcher: &matcher,
        first_only: key.is_some(),
        join: key.filter(|_| a.join),
    };
    // Written as found into a spool, printed once every lock is released.
    let mut render = Render::new(Spool::default(), style(ctx, format, a.null, all_pools));
    // With -a, a pool that cannot be read is named and the others printed;
    // the exit status says one failed.
    let mut failed = false;
    if let Some(limit) = a.wait {
        let some_failed = all_pools.then_some(&mut failed);
        if !wait_for(ctx, &pools, &q, limit, &mut render, some_failed)? {
            let key = show_key(key.unwrap_or_default());
            ctx.io
                .tell_no_match(&format!("{key}: timed out waiting for it"));
            // Said even to a script: a wrong --pool-dir, or no daemon.
            if !ctx.dir.is_dir() {
                let dir = ctx.dir.clone();
                ctx.io.say(&Error::NoPoolDir { dir }.to_string());
            }
            return Ok(match failed {
                true => Exit::Environment,
                false => Exit::NoMatch,
            });
        }
    }
    for id in pools.iter().filter(|_| a.wait.is_none()) {
        let (warning, broken) = match collect(ctx, *id, &q, &mut render) {
            // The pool asked for is missing: the key in another is the answer.
            Err(e @ Error::NoPoolFile { .. }) if key.is_some() && !all_pools => {
                let Some(other) = elsewhere(ctx, *id, &matcher).0 else {
                    return Err(e);
                };
                ctx.io.say(&e.to_string());
                ctx.io.say(&in_pool(key.unwrap_or_default(), other));
                return Ok(Exit::NoMatch);
            }
            Err(e) if all_pools && !e.is_broken_pipe() => {
                ctx.io.error(&e);
                failed = true;
                continue;
            }
            f => f?,
        };
        warning.iter().for_each(|w| ctx.io.warn(w));
        if let Some(why) = broken {
            ctx.io.say(&format!("error: {why}"));
            return Ok(Exit::NoMatch);
        }
    }
    let count = render.count();
    // hvkvp 2.0 printed nothing and exited 0: scripts under `set -e` rely on it.
    if count == 0 && ctx.compat && !failed {
        return Ok(Exit::Success);
    }
    // JSON says "nothing" as an empty array or object.
    if !(ctx.quiet || a.noout) && (structured || count > 0) {
        print(ctx, render)?;
    }
    if failed {
        return Ok(Exit::Environment);
    }
    if count > 0 {
        return Ok(Exit::Success);
    }
    match key {
        Some(k) if !all_pools => not_found(ctx, pools[0], k, &matcher, a),
        // -a: the key may be in any pool, in another case.
        Some(k) => match other_case(ctx, &pools, k, a) {
            Some((id, stored)) => ctx.io.say(&format!(
                "{}: no such key; {} in pool {id} differs only in case: spell it so, or add \
                 -i to ignore case",
                show_key(k),
                show_key(&stored)
            )),
            None => ctx.io.tell_no_match("no records matched"),
        },
        None => ctx.io.tell_no_match("no records matched"),
    }
    Ok(Exit::NoMatch)
}

/// Print every record of one pool as `key: value` lines (what a 2.0-form
/// `write` or `delete` shows after the change).
pub(crate) fn print_pool(ctx: &mut Ctx, id: PoolId) -> Result<(), Error> {
    let q = Query {
        matcher: &Matcher::all(),
        first_only: false,
        join: None,
    };
    let mut render = Render::new(Spool::default(), style(ctx, Format::Kv, false, false));
    let (warning, _) = collect(ctx, id, &q, &mut render)?;
    warning.iter().for_each(|w| ctx.io.warn(w));
    print(ctx, render)
}

/// How records print: escaped on a terminal, exact bytes to a pipe.
fn style(ctx: &Ctx, format: Format, null: bool, show_pool: bool) -> Style {
    let escape = ctx.io.out_tty;
    Style {
        format,
        null,
        show_pool,
        escape,
    }
}

/// Close what `render` wrote and copy it to stdout.
fn print(ctx: &mut Ctx, render: Render<Spool>) -> Result<(), Error> {
    let spool = render.finish().map_err(spool_error)?;
    let mut out = &mut *ctx.io.out;
    (spool.copy_to(&mut out).and_then(|()| out.flush())).map_err(Error::Output)
}

/// A failure to write into the spool: standard output's, unless the
/// spool could make no temporary file, which is named with its directory.
fn spool_error(e: std::io::Error) -> Error {
    if !e.get_ref().is_some_and(|e| e.is::<NoTempFile>()) {
        return Error::Output(e);
    }
    let t = (e.into_inner().and_then(|t| t.downcast::<NoTempFile>().ok())).expect("a NoTempFile");
    Error::Io {
        path: t.dir,
        doing: NO_TEMP_FILE,
        source: t.source,
    }
}

/// Why `read KEY` found nothing in pool `id`, where a hint can say more:
/// the key in another case there, in another pool, or both.
fn not_found(ctx: &mut Ctx, id: PoolId, key: &[u8], matcher: &Matcher, a: &ReadArgs) {
    let key_shown = show_key(key);
    if let Some((_, stored)) = other_case(ctx, &[id], key, a) {
        return ctx.io.say(&format!(
            "{key_shown}: no such key in pool {id}; {} differs only in case: spell it so, or \
             add -i to ignore case",
            show_key(&stored)
        ));
    }
    let (found, busy) = elsewhere(ctx, id, matcher);
    if let Some(other) = found {
        return ctx.io.say(&in_pool(key, other));
    }
    let others: Vec<PoolId> = PoolId::ALL.into_iter().filter(|&p| p != id).collect();
    if let Some((other, stored)) = other_case(ctx, &others, key, a) {
        return ctx.io.say(&format!(
            "{key_shown}: no such key in pool {id}; {} in pool {other} differs only in case: \
             use -p {} and spell it so, or add -i",
            show_key(&stored),
            other.number()
        ));
    }
    ctx.io
        .tell_no_match(&format!("{key_shown}: no such key in pool {id}"));
    // Said even to a script: the key may be in a pool not searched.
    if !busy.is_empty() {
        let pools = noun(busy.len(), "pool");
        let were = if busy.len() == 1 { "was" } else { "were" };
        let busy: Vec<String> = busy.iter().map(|id| id.number().to_string()).collect();
        let busy = busy.join(", ");
        ctx.io.say(&format!(
            "{pools} {busy} {were} busy and not searched for the key"
        ));
    }
}

/// The first of `pools` holding `key` spelt in another case, and that
/// spelling; not with -i or --join.
fn other_case(ctx: &Ctx, pools: &[PoolId], key: &[u8], a: &ReadArgs) -> Option<(PoolId, Vec<u8>)> {
    if a.matching.ignore_case || a.join {
        return None;
    }
    let m = Matcher::key(key, true);
    let found = |&id| Some((id, first_key(ctx, id, &m, false).ok()??));
    pools.iter().find_map(found)
}

/// Which other pool holds the key, for the "use -p N" hint, and the pools
/// passed over because a writer held their lock.
fn elsewhere(ctx: &Ctx, not: PoolId, matcher: &Matcher) -> (Option<PoolId>, Vec<PoolId>) {
    let mut busy = Vec::new();
    for id in PoolId::ALL.into_iter().filter(|&id| id != not) {
        match first_key(ctx, id, matcher, true) {
            Ok(Some(_)) => return (Some(id), busy),
            Err(Error::LockTimeout { .. }) => busy.push(id),
            _ => {}
        }
    }
    (None, busy)
}

/// The key of the first record of pool `id` that `m` matches, with `skip`
/// debris passed over; a pool locked by a writer is not waited for.
fn first_key(ctx: &Ctx, id: PoolId, m: &Matcher, skip: bool) -> Result<Option<Vec<u8>>, Error> {
    let mut pool = Pool::open(&ctx.dir, id, Access::Read, Duration::ZERO)?;
    pool.scan(|p| {
        let mut debris = Finder::default();
        (p.records())
            .find(|r| (!skip || debris.see(r)) && m.matches_field(r.key_field()))
            .map(|r| r.key().to_vec())
    })
}

/// The hint for a key found in another pool than the one asked.
fn in_pool(key: &[u8], other: PoolId) -> String {
    let n = other.number();
    format!("{} is in pool {other}: use -p {n}", show_key(key))
}

/// `--wait`: look, and until the key is there, sleep until a pool file
/// changes (watched before the first look, so no write is missed). A
/// missing pool file or directory is a key not there yet; but on a machine
/// that is no Hyper-V guest nothing will make the default directory.
fn wait_for(
    ctx: &mut Ctx,
    pools: &[PoolId],
    q: &Query<'_>,
    limit: Option<Duration>,
    render: &mut Render<Spool>,
    mut failed: Option<&mut bool>,
) -> Result<bool, Error> {
    match pool::check_dir(&ctx.dir) {
        Err(Error::NoPoolDir { dir }) if watch::waits_for_nothing(&dir, watch::has_vmbus()) => {
            return Err(Error::NotHyperV { dir })
        }
        Err(Error::NoPoolDir { .. }) | Ok(()) => {}
        Err(e) => return Err(e),
    }
    let names = pools.iter().map(|id| id.file_name().into()).collect();
    let mut watch = Watch::new(&ctx.dir, names)
        .map_err(|e| Error::io(&ctx.dir, "watching the pool directory", e))?;
    let deadline = limit.and_then(|l| Instant::now().checked_add(l));
    // Warnings and errors are said on the first look only.
    let mut first = true;
    loop {
        for id in pools {
            match collect(ctx, *id, q, render) {
                // Chunks not whole yet: wait for a write that makes them whole.
                Ok((warning, broken)) if first => {
                    warning.iter().chain(&broken).for_each(|w| ctx.io.warn(w));
                }
                Ok(_) | Err(Error::NoPoolFile { .. } | Error::NoPoolDir { .. }) => {}
                // With -a, a pool that cannot be read is named once, the
                // others waited on.
                Err(e) => match failed.as_deref_mut() {
                    Some(failed) => {
                        if first {
                            ctx.io.error(&e);
                        }
                        *failed = true;
                    }
                    None => return Err(e),
                },
            }
        }
        first = false;
        if render.count() > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        watch.wait(deadline);
    }
}

/// What to look for in each pool: with `first_only`, the first matching
/// record only (`read KEY`); with `join`, the key to put back together from
/// its chunks when absent.
struct Query<'a> {
    matcher: &'a Matcher,
    first_only: bool,
    join: Option<&'a [u8]>,
}

/// What one pool gave besides its records: a warning to print once it is
/// unlocked, and why `--join`'s chunks do not join up.
type Found = (Option<String>, Option<String>);

/// Write the matching records of one pool into `out` under its shared
/// lock, in one pass, leaving out what a killed writer left ([`Finder`]: no
/// one wrote it; hvkvp 2.0 listed it, and its command lines still do); with
/// `join`, an absent key is put back together from its chunks `KEY.0`,
/// `KEY.1`, ….
fn collect(ctx: &Ctx, id: PoolId, q: &Query<'_>, out: &mut Render<Spool>) -> Result<Found, Error> {
    let mut pool = Pool::open(&ctx.dir, id, Access::Read, ctx.timeout)?;
    let start = out.mark();
    let pool_no = id.number();
    let object = out.style().format == Format::Object;
    let broken = pool.scan(|p| -> std::io::Result<Option<Broken>> {
        // A scan that runs again starts again.
        out.rewind(start)?;
        let before = out.count();
        let mut chunks = Chunks::new(p.len());
        if object && !q.first_only {
            object_members(p, q.matcher, |i, k, v| out.entry(pool_no, i, k, v))?;
        } else {
            let mut debris = Finder::default();
            for r in p.records() {
                if !debris.see(&r) && !ctx.compat {
                    continue;
                }
                if q.matcher.matches_field(r.key_field()) {
                    out.entry(pool_no, r.index, r.key(), r.value())?;
                    if q.first_only {
                        break;
                    }
                }
                if let Some(key) = q.join.filter(|_| out.count() == before) {
                    chunks.see(key, r.index, r.bytes());
                }
            }
        }
        let Some(key) = q
            .join
            .filter(|_| out.count() == before && !chunks.is_empty())
        else {
            return Ok(None);
        };
        // The chunks are checked, then copied in order: two passes over
        // them, in which only their places are held.
        let joined = match chunks.check(|i| p.rec(i)) {
            Ok(j) => j,
            Err(why) => return Ok(Some(why)),
        };
        let joined = &joined;
        out.entry_in_pieces(pool_no, joined.index, key, joined.utf8, move || {
            joined.pieces(move |i| p.rec(i))
        })?;
        Ok(None)
    })?;
    let broken = broken.map_err(spool_error)?;
    // A 2.0-form line stays as silent on stderr as 2.0 was.
    let them = if pool.tail() == 1 { "it" } else { "them" };
    let warning = (pool.misaligned_warning().filter(|_| !ctx.compat))
        .map(|w| format!("{w} (`hvkvp delete -c` drops {them})"));
    drop(pool); // unlock before anything is printed
    let broken = match (q.join, broken) {
        (Some(key), Some(Broken::Missing(n))) => Some(format!(
            "{} is missing from pool {id}: the chunks do not make a whole value",
            show_key(&crate::chunk::chunk_key(key, n as usize))
        )),
        (Some(key), Some(Broken::Mixed)) => Some(format!(
            "the chunks of {} in pool {id} do not join up to one value: a \
             `write --split` was cut short; write the value again",
            show_key(key)
        )),
        _ => None,
    };
    Ok((warning, broken))
}

/// `-o object`: each matching key once, in the place of its first record,
/// with the value of its last (the one the host keeps), debris left out.
/// Two passes; between them only key hashes and repeated keys' values are
/// held.
fn object_members(
    p: &Pool,
    matcher: &Matcher,
    mut f: impl FnMut(usize, &[u8], &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut keys = KeyIndex::default();
    // The last value of each repeated key, by its first record.
    let mut last: HashMap<usize, Vec<u8>> = HashMap::new();
    let hits = || {
        let mut debris = Finder::default();
        (p.records()).filter(move |r| debris.see(r) && matcher.matches_field(r.key_field()))
    };
    for r in hits() {
        if let Some(first) = keys.first_or_insert(r.key(), r.index) {
            let v = last.entry(first).or_default();
            v.clear();
            v.extend_from_slice(r.value());
        }
    }
    for r in hits() {
        if keys.first_or_insert(r.key(), r.index) == Some(r.index) {
            let value = last.get(&r.index).map_or(r.value(), Vec::as_slice);
            f(r.index, r.key(), value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_without_a_temporary_file_names_tmpdir_not_stdout() {
        let e = std::io::Error::other(NoTempFile {
            dir: "/nonexistent".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        });
        let msg = spool_error(e).message();
        assert!(
            msg.starts_with("/nonexistent: cannot make a temporary file there"),
            "{msg}"
        );
        assert!(
            msg.contains("set TMPDIR to a writable directory: No such file"),
            "{msg}"
        );
        assert!(!msg.contains("standard output"), "{msg}");
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(spool_error(e)
            .message()
            .starts_with("writing to standard output"));
    }
}
