//! Was a pool last written before this boot? cloud-init empties pool 1 at
//! boot, without a lock, when its mtime is older than the boot time.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// When this boot began: the `btime` line of `/proc/stat`.
pub fn boot_time() -> Result<SystemTime, Error> {
    let path = Path::new("/proc/stat");
    let err = |source| Error::Io {
        path: path.to_path_buf(),
        doing:
            "reading the boot time (btime): it tells whether a pool was written before this boot",
        source,
    };
    let text = std::fs::read_to_string(path).map_err(err)?;
    let secs = parse_btime(&text).ok_or_else(|| err(std::io::Error::other("no `btime N` line")))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

fn parse_btime(stat: &str) -> Option<u64> {
    let line = stat.lines().find_map(|l| l.strip_prefix("btime "));
    line.and_then(|n| n.trim().parse().ok())
}

/// A file last modified at `modified` predates the boot at `boot`.
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
