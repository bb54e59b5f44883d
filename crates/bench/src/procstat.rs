//! Server-side resource readings from /proc, and the generator's own fd limit.
//!
//! The servers under test are separate processes given by PID: their resident
//! memory comes from `/proc/PID/status` (VmRSS) and their CPU time from
//! `/proc/PID/stat` (utime + stime, in clock ticks), read before and after a run.

use anyhow::{Context, Result, anyhow};

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vmrss(&s).ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system) consumed so far by `pid`, all threads.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&s).ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    Ok(ticks as f64 / clk_tck())
}

/// utime + stime from a /proc/PID/stat line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_whitespace();
    // After ")": state(3) ppid(4) ... utime is field 14, stime 15 → indexes 11, 12 here.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Sum of RSS over pids (bytes).
pub fn total_rss(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| rss_bytes(p)).sum()
}

/// Sum of CPU seconds over pids.
pub fn total_cpu(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// Raise the soft open-files limit to the hard limit; returns the new soft limit.
/// Every connection of the generator is one fd, and shells here start at a soft
/// limit well below what 10k+ connections need.
pub fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only write/read the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
    }
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        assert_eq!(
            parse_vmrss("Name:\tx\nVmPeak:\t 10 kB\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
    }
}
