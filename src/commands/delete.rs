//! `hvkvp delete`: pick the doomed records in one scan, then move the later
//! records up, one whole record at a time from the front, and truncate.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use crate::change::{self, Plan, Planner};
use crate::chunk::{self, Tag};
use crate::cli::DeleteArgs;
use crate::commands::{
    key_matcher, list_after_change, os_bytes, some_keys, writable, Changing, Ctx,
};
use crate::error::{Error, Exit};
use crate::inspect::KeyIndex;
use crate::matcher::{fold, Matcher};
use crate::output::show_key;
use crate::pool::{Access, Pool, PoolId, Record};
use crate::record;
use crate::stale;

/// Delete from `pool` (default 1) what the arguments name; in the 2.0
/// form, print the pool afterwards, and nothing matched is success.
pub fn run(ctx: &mut Ctx, pool: Option<PoolId>, a: &DeleteArgs) -> Result<Exit, Error> {
    let id = pool.unwrap_or(PoolId::GUEST);
    match delete(ctx, id, a)? {
        Exit::NoMatch if ctx.compat => {}
        Exit::Success => {}
        other => return Ok(other),
    }
    list_after_change(ctx, id, a.noout)?;
    Ok(Exit::Success)
}

fn delete(ctx: &mut Ctx, id: PoolId, a: &DeleteArgs) -> Result<Exit, Error> {
    // hvkvp 2.0 took an empty -k for no -k at all.
    let pattern = (a.pattern.as_deref()).filter(|p| !(ctx.compat && p.is_empty()));
    // Exact by default for delete, as in hvkvp 2.0.
    let target = key_matcher(ctx, a.key.as_deref(), pattern, &a.matching, true)?;
    // clap's `requires = "all"` lets `delete KEY --if-stale` through.
    if a.if_stale && !a.all {
        return Err(Error::Input(
            "--if-stale goes with -A (empty the pool if it was written before this boot)".into(),
        ));
    }
    if target.is_none() && !a.clean_duplicates && !a.clean_invalid && !a.all {
        return Err(Error::Input(
            "nothing to delete: give a KEY, -k PATTERN, -d (duplicates), -c (invalid records) \
             or -A (everything)"
                .into(),
        ));
    }
    let id = writable(id, a.force)?;
    // The boot time first: when it cannot be read, nothing is opened.
    let boot = a.if_stale.then(stale::boot_time).transpose()?;

    let mut p = Changing::open(ctx, id, Access::Write)?;
    if !a.clean_invalid {
        p.require_aligned()?;
    }
    if a.all {
        // Decided under the exclusive locks: a write that lands before them
        // makes the pool fresh, and it is kept.
        if boot.is_some_and(|boot| !stale::is_stale(p.modified(), boot)) {
            drop(p); // unlock before anything is printed
            ctx.io.tell_no_match(&format!(
                "pool {id} was written after this boot: left alone"
            ));
            return Ok(Exit::NoMatch);
        }
        p.clear()?;
        return Ok(Exit::Success);
    }
    // The partial tail goes first: every state a kill leaves after it is
    // whole records, which any later change can write to.
    let dropped = a.clean_invalid && p.drop_tail()?;
    // `delete KEY` deletes the value of KEY however it is stored: its
    // chunks too.
    let chunks_kept = Cell::new(Vec::new());
    let (plan, debris) = change::run(&mut p, || Doomed {
        target: target.as_ref(),
        a,
        gone: Vec::new(),
        found: false,
        loose: Vec::new(),
        chunks_kept: &chunks_kept,
        keys: KeyIndex::default(),
        last: HashMap::new(),
    })?;
    // The clean-up forms count what a killed hvkvp left as cleaned; a
    // delete by key matched or did not, whatever else went.
    let cleaned = (a.clean_duplicates || a.clean_invalid) && !debris.is_empty();
    let nothing = plan.remove_first.is_empty() && !dropped && !cleaned;
    drop(p); // unlock before anything is printed
    let kept = chunks_kept.take();
    if let (Some(key), false) = (&a.key, kept.is_empty()) {
        let key = show_key(os_bytes(key));
        ctx.io.warn(&format!(
            "kept {} (named like chunks of {key}, but not written by `hvkvp write --split`, and \
             {key} is a record of its own): delete by name what belongs to it",
            some_keys(&kept, kept.len())
        ));
    }
    if nothing && !ctx.compat {
        ctx.io
            .tell_no_match(&format!("nothing matched in pool {id}"));
    }
    Ok(match nothing {
        true => Exit::NoMatch,
        false => Exit::Success,
    })
}

/// Picks the records to remove (`gone`, in order), in one pass. `delete
/// KEY`: its chunks `KEY.0`, … go too: tagged ones (`write --split`)
/// always, the untagged ones (`loose`) unless a record KEY was `found`;
/// those kept are named in a warning. `-d`: a record goes when a later one
/// has its key (the first record of each key known by two hashes,
/// [`KeyIndex`], with the last seen of each).
struct Doomed<'a> {
    target: Option<&'a Matcher>,
    a: &'a DeleteArgs,
    gone: Vec<usize>,
    found: bool,
    loose: Vec<(usize, Vec<u8>)>,
    chunks_kept: &'a Cell<Vec<Vec<u8>>>,
    keys: KeyIndex,
    last: HashMap<usize, usize>,
}

impl Planner for Doomed<'_> {
    fn see(&mut self, r: &Record) {
        let by_key = self.target.is_some_and(|m| m.matches_field(r.key_field()));
        self.found |= by_key;
        if by_key || (self.a.clean_invalid && unreadable(r)) {
            self.gone.push(r.index);
        } else if let Some(m) = self.target.filter(|_| self.a.key.is_some()) {
            // The base first: most keys are no chunk, and the tag may be
            // after the value.
            if chunk::base_of(r.key()).is_some_and(|b| m.is_match(b)) {
                if Tag::read(r.bytes()).is_some() {
                    self.gone.push(r.index);
                } else {
                    self.loose.push((r.index, r.key().to_vec()));
                }
            }
        }
        if self.a.clean_duplicates {
            let key = match self.a.matching.ignore_case {
                true => fold(r.key()),
                false => Cow::Borrowed(r.key()),
            };
            if let Some(first) = self.keys.first_or_insert(&key, r.index) {
                // The host keeps the last record of a key: the one before
                // this goes.
                let before = self.last.insert(first, r.index).unwrap_or(first);
                self.gone.push(before);
            }
        }
    }

    fn heals_anyway(&self) -> bool {
        // What a killed hvkvp left counts as cleaned (`delete`).
        self.a.clean_duplicates || self.a.clean_invalid
    }

    fn finish(mut self, _: &Pool) -> Result<Plan, Error> {
        let (loose, keys): (Vec<usize>, _) = self.loose.into_iter().unzip();
        if !self.found {
            self.gone.extend(loose);
        }
        self.chunks_kept
            .set(if self.found { keys } else { Vec::new() });
        self.gone.sort_unstable();
        self.gone.dedup();
        Ok(Plan {
            remove_first: self.gone,
            ..Plan::default()
        })
    }
}

/// A record the daemon cannot pass to the host: an empty key, a field with
/// no NUL, or text that is not UTF-8 (the host's enumeration stops there).
fn unreadable(r: &Record) -> bool {
    r.key().is_empty()
        || !record::is_terminated(r.key_field())
        || !record::is_terminated(r.value_field())
        || !super::write::is_text(r)
}
