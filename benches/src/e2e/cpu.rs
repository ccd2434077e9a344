//! CPU time (user + system, all threads) of this process or of another one.
//!
//! A benchmark reads a [`CpuClock`] before and after a measured run; the
//! difference divided by the number of requests is the CPU cost per
//! operation.
//!
//! # Sources, best first
//!
//! * This process: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, nanosecond
//!   precision, the sum over every thread (live or exited).
//! * Another process (the etcd server): its CPU-time clock from
//!   `clock_getcpuclockid(pid)`, also nanosecond precision. Linux lets any
//!   process read another's CPU clock.
//! * Fallback for both: fields 14 and 15 (`utime`, `stime`) of
//!   `/proc/<pid>/stat`, in clock ticks (`sysconf(_SC_CLK_TCK)`, 100 per
//!   second on Linux): a resolution of 10 ms, fine for runs that burn
//!   seconds of CPU, coarse for shorter ones.

use std::fmt;
use std::io;
use std::time::Duration;

/// Where a [`CpuClock`] reads its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `CLOCK_PROCESS_CPUTIME_ID` of this process.
    ThisProcess,
    /// The CPU-time clock of another process.
    Clock { pid: u32, id: libc::clockid_t },
    /// `/proc/<pid>/stat` (`"self"` when `pid` is `None`).
    ProcStat { pid: Option<u32> },
}

/// The CPU time consumed so far by one process. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuClock {
    source: Source,
}

impl CpuClock {
    /// The clock of this process (every thread), nanosecond precision when
    /// the kernel offers it, else `/proc/self/stat`.
    pub fn this_process() -> CpuClock {
        let clock = CpuClock {
            source: Source::ThisProcess,
        };
        if clock.read().is_ok() {
            clock
        } else {
            CpuClock {
                source: Source::ProcStat { pid: None },
            }
        }
    }

    /// The clock of process `pid`: its CPU-time clock when it can be read,
    /// else `/proc/<pid>/stat`.
    pub fn of_pid(pid: u32) -> CpuClock {
        if let Ok(raw) = libc::pid_t::try_from(pid) {
            let mut id: libc::clockid_t = 0;
            // SAFETY: `id` is a valid place for the result.
            let rc = unsafe { libc::clock_getcpuclockid(raw, &mut id) };
            if rc == 0 {
                let clock = CpuClock {
                    source: Source::Clock { pid, id },
                };
                if clock.read().is_ok() {
                    return clock;
                }
            }
        }
        CpuClock {
            source: Source::ProcStat { pid: Some(pid) },
        }
    }

    /// The `/proc/<pid>/stat` clock of `pid` (`None`: this process), whatever
    /// else is available. Tick resolution; mostly for cross-checks.
    pub fn proc_stat(pid: Option<u32>) -> CpuClock {
        CpuClock {
            source: Source::ProcStat { pid },
        }
    }

    /// CPU time consumed by the process so far (user + system).
    pub fn read(&self) -> io::Result<Duration> {
        match self.source {
            Source::ThisProcess => clock_time(libc::CLOCK_PROCESS_CPUTIME_ID),
            Source::Clock { id, .. } => clock_time(id),
            Source::ProcStat { pid } => proc_stat_cpu_time(pid),
        }
    }

    /// True when readings have nanosecond precision (not clock ticks).
    pub fn is_precise(&self) -> bool {
        !matches!(self.source, Source::ProcStat { .. })
    }
}

impl fmt::Display for CpuClock {
    /// Names the source, e.g. `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::ThisProcess => f.write_str("clock_gettime(CLOCK_PROCESS_CPUTIME_ID)"),
            Source::Clock { pid, .. } => write!(f, "clock_getcpuclockid({pid})"),
            Source::ProcStat { pid: None } => {
                write!(
                    f,
                    "/proc/self/stat utime+stime ({} ticks/s)",
                    ticks_per_second()
                )
            }
            Source::ProcStat { pid: Some(pid) } => {
                write!(
                    f,
                    "/proc/{pid}/stat utime+stime ({} ticks/s)",
                    ticks_per_second()
                )
            }
        }
    }
}

/// Reads a POSIX clock.
fn clock_time(id: libc::clockid_t) -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Clock ticks per second of `/proc/*/stat` times (`sysconf(_SC_CLK_TCK)`,
/// 100 when it cannot be read).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// `utime + stime` of `/proc/<pid>/stat` (`/proc/self/stat` for `None`).
pub fn proc_stat_cpu_time(pid: Option<u32>) -> io::Result<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => String::from("/proc/self/stat"),
    };
    let text = std::fs::read_to_string(&path)?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: no utime/stime fields"),
        )
    })?;
    let per_second = ticks_per_second();
    Ok(Duration::from_nanos(
        (u128::from(ticks) * 1_000_000_000 / u128::from(per_second)) as u64,
    ))
}

/// `utime + stime` in ticks from the text of a `/proc/<pid>/stat` file.
///
/// The second field (the command name, in parentheses) may contain spaces
/// and parentheses itself, so fields are counted after the *last* `)`:
/// field 3 (`state`) is the first one there, so `utime` (field 14) and
/// `stime` (field 15) are the 12th and 13th.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (etc d) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 12 0 100 2000000 3000 18446744073709551615";
        assert_eq!(parse_stat_ticks(text), Some(325));
        assert_eq!(parse_stat_ticks("1 (init) S 0"), None);
    }

    #[test]
    fn this_process_clock_advances_with_work() {
        let clock = CpuClock::this_process();
        let before = clock.read().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        let after = clock.read().unwrap();
        assert!(after > before, "{before:?} -> {after:?}");
        // Both sources agree within a few ticks.
        let precise = clock.read().unwrap();
        let coarse = CpuClock::proc_stat(None).read().unwrap();
        let diff = precise.abs_diff(coarse);
        assert!(
            diff < Duration::from_millis(100),
            "{precise:?} vs {coarse:?}"
        );
    }

    #[test]
    fn clock_of_own_pid_reads() {
        let clock = CpuClock::of_pid(std::process::id());
        assert!(clock.read().unwrap() > Duration::ZERO);
    }
}
