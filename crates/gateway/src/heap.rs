//! Heap tuning that must be in place before the process starts: transparent huge pages for
//! glibc's malloc heap.
//!
//! Why: a broadcast walks every receiving socket's state (socketioxide's socket, engineioxide's
//! socket, its channel), and each connection's allocations sit on their own 4 KiB pages, so at
//! thousands of sockets nearly every delivery takes TLB misses, which on a virtual machine cost
//! a two-level page walk. A profile at saturation put 56 % of the node's CPU on those loads.
//! With the heap on 2 MiB pages the same fan-out costs 10–38 % less CPU per delivery and idle
//! memory per connection does not change (BENCHMARKS.md, "Huge pages for the heap").
//!
//! How: glibc reads `GLIBC_TUNABLES` once, when the program is exec'd, and only its main arena
//! (the `brk` heap) honours `glibc.malloc.hugetlb=1` (`madvise(MADV_HUGEPAGE)`); the per-thread
//! arenas do not. So at start-up, before any thread exists, the binary execs itself once with
//! `glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1` added to `GLIBC_TUNABLES` (same PID, same
//! arguments). The operator's own values of these two tunables win, and a value that already
//! names `hugetlb` is never touched, which also ends the re-exec after one round. Off with
//! `--heap-huge-pages false`. Without glibc (musl builds, other systems) this is a no-op, and
//! the kernel decides whether huge pages are used at all (`transparent_hugepage` must be
//! `madvise` or `always`, the default on common distributions).

/// The environment variable glibc reads its tunables from.
pub const TUNABLES_ENV: &str = "GLIBC_TUNABLES";

/// The settings this module adds, each only when the operator did not set that tunable.
const ADDED: [(&str, &str); 2] = [
    ("glibc.malloc.hugetlb", "1"),
    ("glibc.malloc.arena_max", "1"),
];

/// The `GLIBC_TUNABLES` value to re-exec with, or `None` when there is nothing to do because
/// `current` already names `glibc.malloc.hugetlb` (set by the operator, or by our own re-exec).
pub fn tunables_with_huge_pages(current: Option<&str>) -> Option<String> {
    let current = current.unwrap_or("");
    if setting(current, ADDED[0].0).is_some() {
        return None;
    }
    let mut parts: Vec<String> = split(current).map(str::to_owned).collect();
    for (name, value) in ADDED {
        if setting(current, name).is_none() {
            parts.push(format!("{name}={value}"));
        }
    }
    Some(parts.join(":"))
}

/// The `name=value` entries of a `GLIBC_TUNABLES` value.
fn split(tunables: &str) -> impl Iterator<Item = &str> {
    tunables.split(':').filter(|kv| !kv.is_empty())
}

/// The value `tunables` gives the tunable `name`, if it names it.
fn setting<'a>(tunables: &'a str, name: &str) -> Option<&'a str> {
    split(tunables).find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k.trim() == name).then_some(v)
    })
}

/// Re-executes this binary with huge pages enabled for the heap, if glibc is the allocator and
/// `GLIBC_TUNABLES` does not yet say anything about them. Returns only when no re-exec
/// happened: `Ok(())` when none was needed, `Err` when the exec failed (the caller logs it and
/// runs on with the default heap). Must be called before any thread is started.
pub fn reexec_with_huge_pages() -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let current = std::env::var(TUNABLES_ENV).ok();
        let Some(tunables) = tunables_with_huge_pages(current.as_deref()) else {
            return Ok(());
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| "sio-gateway".into());
        // `exec` only returns on failure (e.g. no /proc in a minimal sandbox).
        Err(std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env(TUNABLES_ENV, tunables)
            .exec())
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    Ok(())
}

/// What the kernel allows: the selected mode of `/sys/kernel/mm/transparent_hugepage/enabled`
/// (`always`, `madvise` or `never`), if the file is there.
pub fn thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    selected(&s).map(str::to_owned)
}

/// The bracketed choice of a sysfs selection such as `always [madvise] never`.
fn selected(s: &str) -> Option<&str> {
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(&s[start..end])
}

/// One log line at start saying whether the heap is on huge pages, read from what glibc was
/// actually given (an operator's `glibc.malloc.hugetlb=0` means off), so an operator can tell
/// from the log; a kernel with THP `never` makes the setting useless: warned.
pub fn log_state(enabled: bool) {
    let tunables = std::env::var(TUNABLES_ENV).unwrap_or_default();
    let thp = thp_mode().unwrap_or_else(|| "unknown".into());
    let hugetlb = setting(&tunables, ADDED[0].0).unwrap_or("0");
    if !enabled || hugetlb == "0" {
        tracing::info!(%thp, %tunables, "heap huge pages off (--heap-huge-pages false or glibc.malloc.hugetlb=0)");
    } else if thp == "never" {
        tracing::warn!(%thp, %tunables, "heap huge pages requested but the kernel's transparent_hugepage is `never`: no effect");
    } else {
        // Requested, not promised: glibc 2.36 leaves the heap on 4 KiB pages in some starts
        // (BENCHMARKS.md); AnonHugePages in /proc/<pid>/smaps_rollup shows the outcome.
        tracing::info!(%thp, %tunables, "heap huge pages requested");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_selected_thp_mode() {
        assert_eq!(selected("always [madvise] never\n"), Some("madvise"));
        assert_eq!(selected("[always] madvise never"), Some("always"));
        assert_eq!(selected("always madvise never"), None);
        assert_eq!(selected("[unterminated"), None);
    }

    #[test]
    fn reads_one_setting() {
        let t = "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=0";
        assert_eq!(setting(t, "glibc.malloc.hugetlb"), Some("0"));
        assert_eq!(setting(t, "glibc.malloc.arena_max"), Some("4"));
        assert_eq!(setting(t, "glibc.malloc.tcache_count"), None);
        assert_eq!(setting("", "glibc.malloc.hugetlb"), None);
    }

    #[test]
    fn adds_both_when_unset_or_empty() {
        let want = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1";
        assert_eq!(tunables_with_huge_pages(None).as_deref(), Some(want));
        assert_eq!(tunables_with_huge_pages(Some("")).as_deref(), Some(want));
    }

    #[test]
    fn keeps_the_operators_settings() {
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.arena_max=4")).as_deref(),
            Some("glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.tcache_count=0")).as_deref(),
            Some("glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1")
        );
    }

    #[test]
    fn never_twice_and_never_against_an_explicit_hugetlb() {
        let once = tunables_with_huge_pages(None).unwrap();
        assert_eq!(tunables_with_huge_pages(Some(&once)), None);
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.hugetlb=0")),
            None
        );
    }
}
