//! `hvkvp read`: copy matching records out under a shared lock, release
//! it, then print. Printing never happens under the lock: a reader piped
//! into `less` must not stall the daemon, whose host request times out
//! after 30 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::change::Finder;
use crate::chunk::{Broken, Chunks};
use crate::cli::ReadArgs;
use crate::commands::{key_matcher, os_bytes, Ctx};
use crate::error::{Error, Exit};
use crate::inspect::KeyIndex;
use crate::matcher::Matcher;
use crate::output::spool::{NoTempFile, Spool};
use crate::output::{show_key, Format, Render, Style};
use crate::pool::{self, Access, Pool, PoolId, Rec};
use crate::watch::{self, Watch};

/// Print the records of `pool` (default 0) that the arguments name.
pub fn run(ctx: &mut Ctx, pool: Option<PoolId>, a: &ReadArgs) -> Result<Exit, Error> {
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
        // hvkvp 2.0 listed them: its command lines still do.
        skip_debris: !ctx.compat,
    };
    // The records are written out as they are found, into a spool that
    // is printed once every lock is released.
    let mut render = Render::new(Spool::default(), style(ctx, format, a.null, all_pools));

    // With -a, a pool that cannot be read is named and the others printed;
    // the exit status says one failed.
    let mut failed = false;
    match a.wait {
        Some(limit) => {
            let key = a.key.as_deref().map(os_bytes).unwrap_or_default();
            if !wait_for(
                ctx,
                &pools,
                &q,
                limit,
                &mut render,
                all_pools.then_some(&mut failed),
            )? {
                ctx.io
                    .tell_no_match(&format!("{}: timed out waiting for it", show_key(key)));
                // Said even to a script: a wrong --pool-dir, or no daemon.
                if !ctx.dir.is_dir() {
                    ctx.io.say(
                        &Error::NoPoolDir {
                            dir: ctx.dir.clone(),
                        }
                        .to_string(),
                    );
                }
                return Ok(if failed {
                    Exit::Environment
                } else {
                    Exit::NoMatch
                });
            }
        }
        None => {
            for id in &pools {
                let f = match collect(ctx, *id, &q, ctx.timeout, &mut render) {
                    // The pool asked for is missing: if the key is in
                    // another pool, that is the answer the user needs.
                    Err(e @ Error::NoPoolFile { .. }) if a.key.is_some() && !all_pools => {
                        let Some(other) = elsewhere(ctx, *id, &matcher).found else {
                            return Err(e);
                        };
                        let key = a.key.as_deref().map(os_bytes).unwrap_or_default();
                        ctx.io.say(&format!("{e}"));
                        ctx.io.say(&in_pool(key, other));
                        return Ok(Exit::NoMatch);
                    }
                    Err(e) if all_pools && !e.is_broken_pipe() => {
                        ctx.io.say(&format!("error: {}", crate::advice::shown(&e)));
                        failed = true;
                        continue;
                    }
                    f => f?,
                };
                f.warnings.iter().for_each(|w| ctx.io.warn(w));
                if let Some(why) = f.broken {
                    ctx.io.say(&format!("error: {why}"));
                    return Ok(Exit::NoMatch);
                }
            }
        }
    }

    // hvkvp 2.0 printed nothing and exited 0: scripts under `set -e` rely
    // on it.
    let count = render.count();
    if count == 0 && ctx.compat && !failed {
        return Ok(Exit::Success);
    }
    // JSON says "nothing" as an empty array or object, so that a program
    // reading it needs no special case.
    let structured = matches!(format, Format::Json | Format::Object);
    if !quiet && (structured || count > 0) {
        print(ctx, render)?;
    }
    if failed {
        return Ok(Exit::Environment);
    }
    if count == 0 {
        match (&a.key, all_pools) {
            (Some(k), false) => not_found(ctx, pools[0], os_bytes(k), &matcher, a),
            // -a: the key may be in any pool, in another case.
            (Some(k), true) => match other_case(ctx, &pools, os_bytes(k), a) {
                Some((id, stored)) => ctx.io.say(&format!(
                    "{}: no such key; {} in pool {id} differs only in case: spell it so, or add \
                     -i to ignore case",
                    show_key(os_bytes(k)),
                    show_key(&stored)
                )),
                None => ctx.io.tell_no_match("no records matched"),
            },
            (None, _) => ctx.io.tell_no_match("no records matched"),
        }
        return Ok(Exit::NoMatch);
    }
    Ok(Exit::Success)
}

/// Print every record of one pool as `key: value` lines (what a 2.0-form
/// `write` or `delete` shows after the change).
pub(crate) fn print_pool(ctx: &mut Ctx, id: PoolId) -> Result<(), Error> {
    let q = Query {
        matcher: &Matcher::all(),
        first_only: false,
        join: None,
        skip_debris: !ctx.compat,
    };
    let mut render = Render::new(Spool::default(), style(ctx, Format::Kv, false, false));
    let f = collect(ctx, id, &q, ctx.timeout, &mut render)?;
    f.warnings.iter().for_each(|w| ctx.io.warn(w));
    print(ctx, render)
}

/// How records print: escaped on a terminal, exact bytes to a pipe.
fn style(ctx: &Ctx, format: Format, null: bool, show_pool: bool) -> Style {
    Style {
        format,
        null,
        show_pool,
        escape: ctx.io.out_tty,
    }
}

/// Close what `render` wrote (once every lock is released) and copy it to
/// stdout.
fn print(ctx: &mut Ctx, render: Render<Spool>) -> Result<(), Error> {
    let spool = render.finish().map_err(spool_error)?;
    let mut out = &mut *ctx.io.out;
    spool
        .copy_to(&mut out)
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// A failure to write into the spool: standard output's, unless the
/// spool could make no temporary file, which is named with its directory.
fn spool_error(e: std::io::Error) -> Error {
    if NoTempFile::of(&e).is_none() {
        return Error::Output(e);
    }
    let t = e
        .into_inner()
        .and_then(|t| t.downcast::<NoTempFile>().ok())
        .expect("a NoTempFile");
    // As `NoTempFile` says it, the source after it: 1 MiB is `MEM_MAX`.
    Error::Io {
        path: t.dir,
        doing: "cannot make a temporary file there (nor in memory, /dev/shm or /tmp) to hold \
                output over 1 MiB until the pool is unlocked; set TMPDIR to a writable directory",
        source: t.source,
    }
}

/// Why `read KEY` found nothing in pool `id`, where a hint can say more:
/// the key spelt in another case there; the key in another pool; the key
/// in another case in another pool. Scripts that ask for a key that may
/// be absent get the hints on stderr only.
fn not_found(ctx: &mut Ctx, id: PoolId, key: &[u8], matcher: &Matcher, a: &ReadArgs) {
    if let Some((_, stored)) = other_case(ctx, &[id], key, a) {
        return ctx.io.say(&format!(
            "{}: no such key in pool {id}; {} differs only in case: spell it so, or add -i to \
             ignore case",
            show_key(key),
            show_key(&stored)
        ));
    }
    let seen = elsewhere(ctx, id, matcher);
    if let Some(other) = seen.found {
        return ctx.io.say(&in_pool(key, other));
    }
    let others: Vec<PoolId> = PoolId::ALL.into_iter().filter(|&p| p != id).collect();
    match other_case(ctx, &others, key, a) {
        Some((other, stored)) => ctx.io.say(&format!(
            "{}: no such key in pool {id}; {} in pool {other} differs only in case: use -p {} \
             and spell it so, or add -i",
            show_key(key),
            show_key(&stored),
            other.number()
        )),
        None => {
            ctx.io
                .tell_no_match(&format!("{}: no such key in pool {id}", show_key(key)));
            // Said even to a script: the key may be in that pool.
            if let Some(note) = seen.busy_note() {
                ctx.io.say(&note);
            }
        }
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
    let matcher = Matcher::exact_fold(key);
    pools.iter().find_map(|&id| {
        let mut pool = Pool::open(&ctx.dir, id, Access::Read, Duration::ZERO).ok()?;
        let stored = pool.scan(|p| {
            p.records()
                .find(|r| matcher.matches_field(r.key_field()))
                .map(|r| r.key().to_vec())
        });
        stored.ok().flatten().map(|k| (id, k))
    })
}

/// `--wait`: look, and until the key is there, sleep until a pool file
/// changes. The watch is set up before the first look, so a write that
/// lands between the look and the sleep still wakes us. A pool file that
/// does not exist yet is a key not there yet, and so is a pool directory
/// that does not exist (yet, or any more): the daemon makes
/// `/var/lib/hyperv` when it starts, and a boot hook may run before it.
/// But on a machine that is no Hyper-V guest nothing will make the default
/// directory: that is an error at once, not a wait for ever.
fn wait_for(
    ctx: &mut Ctx,
    pools: &[PoolId],
    q: &Query<'_>,
    limit: Option<Duration>,
    render: &mut Render<Spool>,
    mut failed: Option<&mut bool>,
) -> Result<bool, Error> {
    // Not a directory, or closed to us: say which. Missing: wait for it.
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
    let mut warned = false;
    loop {
        for id in pools {
            match collect(ctx, *id, q, ctx.timeout, render) {
                Ok(f) => {
                    if !warned {
                        f.warnings.iter().for_each(|w| ctx.io.warn(w));
                    }
                    // Not whole yet: keep waiting for a write that makes
                    // it whole, and say once why it is not there.
                    if let Some(why) = f.broken.filter(|_| !warned) {
                        ctx.io.warn(&why);
                    }
                }
                Err(Error::NoPoolFile { .. } | Error::NoPoolDir { .. }) => {}
                // With -a (`failed` given), a pool that cannot be read is
                // named once and the others are still waited on.
                Err(e) => match failed.as_deref_mut() {
                    Some(failed) => {
                        if !warned {
                            ctx.io.say(&format!("error: {}", crate::advice::shown(&e)));
                        }
                        *failed = true;
                    }
                    None => return Err(e),
                },
            }
        }
        warned = true;
        if render.count() > 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
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
    /// Leave out what a killed writer left ([`Finder`]: records with an
    /// empty key, a record right after a copy of itself, a staged copy).
    /// They are not records anyone wrote: a listing that showed them
    /// would hand `write --batch` a pair it must refuse.
    skip_debris: bool,
}

/// What one pool gave, besides the records written: warnings to print once
/// the pool is unlocked.
struct Found {
    warnings: Vec<String>,
    /// `--join` found chunks that do not join up: why.
    broken: Option<String>,
}

/// Write the matching records of one pool into `render` under its shared
/// lock, in one pass. With `join`, a key that is absent is put back
/// together from its chunks `KEY.0`, `KEY.1`, … A set of chunks that does
/// not join up to one value (one missing, or chunks of two values) is an
/// error: a shorter or mixed value printed with exit 0 would be taken for
/// the real one.
fn collect(
    ctx: &Ctx,
    id: PoolId,
    q: &Query<'_>,
    timeout: Duration,
    render: &mut Render<Spool>,
) -> Result<Found, Error> {
    let mut pool = Pool::open(&ctx.dir, id, Access::Read, timeout)?;
    let start = render.mark();
    let pool_no = id.number();
    let object = render.style().format == Format::Object;
    let broken = pool.scan(|p| -> std::io::Result<Option<Broken>> {
        // A scan that runs again starts again.
        render.rewind(start)?;
        let before = render.count();
        let mut chunks = Chunks::new(p.len());
        if object && !q.first_only {
            object_members(p, q.matcher, |i, k, v| render.entry(pool_no, i, k, v))?;
        } else {
            let mut any = false;
            let mut debris = Finder::default();
            for r in p.records() {
                if !debris.see(&r) && q.skip_debris {
                    continue;
                }
                if q.matcher.matches_field(r.key_field()) {
                    render.entry(pool_no, r.index, r.key(), r.value())?;
                    any = true;
                    if q.first_only {
                        break;
                    }
                }
                if let Some(key) = q.join.filter(|_| !any) {
                    chunks.see(key, r.index, r.bytes());
                }
            }
        }
        let Some(key) = q
            .join
            .filter(|_| render.count() == before && !chunks.is_empty())
        else {
            return Ok(None);
        };
        // The chunks are checked, then copied into the spool in order:
        // two passes over them, in which only their places are held.
        let joined = match chunks.check(|i| p.rec(i)) {
            Ok(j) => j,
            Err(why) => return Ok(Some(why)),
        };
        let joined = &joined;
        render.entry_in_pieces(pool_no, joined.index, key, joined.utf8, move || {
            joined.pieces(move |i| p.rec(i))
        })?;
        Ok(None)
    })?;
    let broken = broken.map_err(spool_error)?;
    // A 2.0-form line stays as silent on stderr as 2.0 was.
    let them = if pool.tail() == 1 { "it" } else { "them" };
    let warnings: Vec<String> = (pool.misaligned_warning())
        .filter(|_| !ctx.compat)
        .map(|w| format!("{w} (`hvkvp delete -c` drops {them})"))
        .into_iter()
        .collect();
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
    Ok(Found { warnings, broken })
}

/// `-o object`: each key whose field `matcher` matches, once, in the place
/// of its first record, with the value of its last (the one the host
/// keeps). Two passes; between them only the hashes and two record
/// numbers of each key are held, and the values of repeated keys. What a
/// killed writer left is not a member.
fn object_members(
    p: &Pool,
    matcher: &Matcher,
    mut f: impl FnMut(usize, &[u8], &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut keys = KeyIndex::default();
    // The last value of each repeated key, by its first record: copied as
    // the scan passes it, as a look back would read the record again.
    let mut last: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut debris = Finder::default();
    let hit = |r: &Rec| matcher.matches_field(r.key_field());
    for r in p.records().filter(|r| debris.see(r) && hit(r)) {
        if let Some(first) = keys.first_or_insert(r.key(), r.index) {
            let v = last.entry(first).or_default();
            v.clear();
            v.extend_from_slice(r.value());
        }
    }
    let mut debris = Finder::default();
    for r in p.records().filter(|r| debris.see(r) && hit(r)) {
        if keys.first_or_insert(r.key(), r.index) == Some(r.index) {
            let value = last.get(&r.index).map_or(r.value(), Vec::as_slice);
            f(r.index, r.key(), value)?;
        }
    }
    Ok(())
}

/// The hint for a key found in another pool than the one asked.
fn in_pool(key: &[u8], other: PoolId) -> String {
    format!(
        "{} is in pool {other}: use -p {}",
        show_key(key),
        other.number()
    )
}

/// What the look at the other pools found, for the "use -p N" hint.
struct Elsewhere {
    /// The first other pool that holds the key.
    found: Option<PoolId>,
    /// Pools passed over because a writer held their lock.
    busy: Vec<PoolId>,
}

impl Elsewhere {
    /// When the key was found nowhere, the pools that were not looked at:
    /// the key may be in one of them.
    fn busy_note(&self) -> Option<String> {
        if self.found.is_some() || self.busy.is_empty() {
            return None;
        }
        let pools: Vec<String> = self.busy.iter().map(|id| id.number().to_string()).collect();
        Some(match pools.len() {
            1 => format!("pool {} was busy and not searched for the key", pools[0]),
            _ => format!(
                "pools {} were busy and not searched for the key",
                pools.join(", ")
            ),
        })
    }
}

/// Which other pool holds the key, for the "use -p N" hint. Best effort,
/// and never a wait: each pool costs at most a try-lock, and one whose lock
/// is busy is passed over; a pool that cannot be read is skipped.
fn elsewhere(ctx: &Ctx, not: PoolId, matcher: &Matcher) -> Elsewhere {
    let q = Query {
        matcher,
        first_only: true,
        join: None,
        skip_debris: true,
    };
    let mut seen = Elsewhere {
        found: None,
        busy: Vec::new(),
    };
    let style = Style {
        format: Format::Value,
        null: false,
        show_pool: false,
        escape: false,
    };
    for id in PoolId::ALL.into_iter().filter(|&id| id != not) {
        let mut render = Render::new(Spool::default(), style);
        match collect(ctx, id, &q, Duration::ZERO, &mut render) {
            Ok(_) if render.count() > 0 => {
                seen.found = Some(id);
                break;
            }
            Err(Error::LockTimeout { .. }) => seen.busy.push(id),
            _ => {}
        }
    }
    seen
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
