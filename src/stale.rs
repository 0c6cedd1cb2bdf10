//! Was a pool last written before this boot?
//!
//! cloud-init empties pool 1 once per boot, without a lock, when the file's
//! mtime is older than the boot time (`_truncate_guest_pool_file`): records
//! written before this boot come from an image or an earlier VM, and the
//! host would read them as if this guest had just said them. `check`
//! reports such a pool; `delete -A --if-stale` empties it, under the locks.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;

const PROC_STAT: &str = "/proc/stat";

/// When this boot began: the `btime` line of `/proc/stat`, seconds since
/// the epoch (the kernel rounds it down, so a file written after boot is
/// never older than it).
pub fn boot_time() -> Result<SystemTime, Error> {
    let path = Path::new(PROC_STAT);
    let err = |source| Error::Io {
        path: path.to_path_buf(),
        doing:
            "reading the boot time (btime): it tells whether a pool was written before this boot",
        source,
    };
    let text = std::fs::read_to_string(path).map_err(err)?;
    let secs = parse_btime(&text).ok_or_else(|| err(io::Error::other("no `btime N` line")))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The number on the `btime` line of `/proc/stat`'s text.
fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|n| n.trim().parse().ok())
}

/// A file last modified at `modified` holds data from before the boot that
/// began at `boot`.
pub fn is_stale(modified: SystemTime, boot: SystemTime) -> bool {
    modified < boot
}

/// Seconds since the epoch, negative before it (for reports).
pub fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btime_is_read_from_its_line() {
        let stat = "cpu  1 2 3\nintr 5 6\nctxt 99\nbtime 1715674862\nprocesses 4\n";
        assert_eq!(parse_btime(stat), Some(1_715_674_862));
        assert_eq!(parse_btime("cpu 1\n"), None);
        assert_eq!(parse_btime("btime soon\n"), None);
    }

    #[test]
    fn this_machine_has_a_boot_time_in_the_past() {
        let boot = boot_time().unwrap();
        assert!(boot < SystemTime::now());
        assert!(!is_stale(SystemTime::now(), boot));
        assert!(is_stale(UNIX_EPOCH, boot));
    }

    #[test]
    fn epoch_secs_both_sides() {
        assert_eq!(epoch_secs(UNIX_EPOCH + Duration::from_secs(5)), 5);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
