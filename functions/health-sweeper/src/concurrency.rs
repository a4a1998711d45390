//! How many probes may be in flight at once: as many as the process's open-file limit allows,
//! minus headroom for everything else that holds a file descriptor.
//!
//! Every probe in flight holds one socket. Hanging targets hold theirs for the whole probe
//! timeout, so the number of slots decides how many timeouts a sweep takes: 1,000 hanging
//! targets through 256 slots take four timeouts, through 896 slots two. Lambda gives a function
//! 1,024 open files (soft and hard); the headroom keeps room for the runtime API connection, the
//! AWS SDK's connection pools (S3, SNS, EC2, ELB, SES, Secrets Manager: a few each), stdio, the
//! epoll and timer descriptors, and the sockets of probes being closed.

/// File descriptors kept free for everything that is not a probe.
pub const HEADROOM: u64 = 128;
/// Upper bound whatever the limit: each probe in flight costs memory as well as a socket
/// (a few KB: its task, socket and read buffer), and past this many the sweep is CPU-bound
/// anyway.
pub const MAX_CONCURRENCY: usize = 2048;
/// Used when the limit cannot be read.
pub const FALLBACK_OPEN_FILES: u64 = 1024;

/// The soft limit on open files of this process (`RLIMIT_NOFILE`).
pub fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and reads nothing else.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if read != 0 {
        return FALLBACK_OPEN_FILES;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    limit.rlim_cur
}

/// The default `SWEEP_CONCURRENCY` for an open-file limit.
pub fn concurrency_for(open_files: u64) -> usize {
    let usable = open_files.saturating_sub(HEADROOM).max(1);
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .min(MAX_CONCURRENCY)
}

/// The default `SWEEP_CONCURRENCY` for this process.
pub fn default_concurrency() -> usize {
    concurrency_for(open_files_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_limit_leaves_room_for_two_timeouts_at_ten_thousand_targets() {
        let slots = concurrency_for(1024);
        assert_eq!(slots, 896);
        // 10 % of 10,000 targets hanging: two rounds of the probe timeout.
        assert_eq!(1000usize.div_ceil(slots), 2);
    }

    #[test]
    fn bounded_both_ways() {
        assert_eq!(concurrency_for(0), 1);
        assert_eq!(concurrency_for(100), 1);
        assert_eq!(concurrency_for(u64::MAX), MAX_CONCURRENCY);
        assert!(open_files_limit() > 0);
    }
}
