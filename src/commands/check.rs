//! `hvkvp check`: report what is wrong with the pool files. The analysis
//! is [`crate::inspect`]; the report, [`crate::output::check`]. Check
//! never writes, and prints only once every pool is unlocked.

use std::io::{BufWriter, Write};

use crate::cli::{CheckArgs, CheckFormat};
use crate::commands::Ctx;
use crate::error::{Error, Exit};
use crate::inspect::inspect;
use crate::output::check::{write_json, write_text};
use crate::pool::PoolId;
use crate::stale;

/// Inspect `pool`, or every pool that exists, then print the reports.
pub fn run(ctx: &mut Ctx, pool: Option<PoolId>, a: &CheckArgs) -> Result<Exit, Error> {
    // -a conflicts with -p and -s: no pool named means every pool.
    let ids = pool.map_or_else(|| crate::pool::existing(&ctx.dir), |id| Ok(vec![id]))?;
    let boot = stale::boot_time()?;
    // A pool that cannot be inspected (a FIFO, unreadable) is named on
    // stderr and the others reported; the exit status says one failed.
    // Asked for by -p, it is the error.
    let mut failed = false;
    let mut reports = Vec::with_capacity(ids.len());
    for id in ids {
        match inspect(&ctx.dir, id, boot, ctx.timeout) {
            Ok(r) => reports.push(r),
            Err(e) if pool.is_none() => {
                ctx.io.error(&e);
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    // No pool file at all: the daemon never ran here, and the host sees nothing.
    let bad = (reports.is_empty() && !failed) || reports.iter().any(|r| r.problems() > 0);

    // Pools there, none readable: stderr said why; "no pool files" would
    // be wrong.
    let nothing_to_say = reports.is_empty() && failed && a.output == CheckFormat::Text;
    if !ctx.quiet && !nothing_to_say {
        let escape = ctx.io.out_tty;
        let mut out = BufWriter::with_capacity(64 * 1024, &mut ctx.io.out);
        match a.output {
            CheckFormat::Text => write_text(&mut out, &reports, &ctx.dir, escape),
            CheckFormat::Json => write_json(&mut out, &reports, escape),
        }
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    }
    Ok(match (failed, bad) {
        (true, _) => Exit::Environment,
        (false, true) => Exit::NoMatch,
        (false, false) => Exit::Success,
    })
}
