//! Where the npm packages the gateway serves are found: installed by lockfile under `web/`
//! (`npm ci --prefix web`, as `scripts/run.sh` does), `tests/` or the directory itself, looked up
//! from the working directory and from the binary's parents (so `target/release/sio-gateway`
//! finds the repository's). Used for the chat page's socket.io-client bundle and the Admin UI's
//! static build.
use std::path::{Path, PathBuf};

/// The places `relative` (e.g. `node_modules/socket.io-client/dist/socket.io.min.js`) may be,
/// most likely first.
pub fn candidates(relative: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let under = |dir: &Path, out: &mut Vec<PathBuf>| {
        for sub in ["web", "tests", ""] {
            out.push(dir.join(sub).join(relative));
        }
    };
    if let Ok(cwd) = std::env::current_dir() {
        under(&cwd, &mut out);
    }
    // target/{debug,release}/sio-gateway -> the repository's web/node_modules.
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            under(dir, &mut out);
        }
    }
    out
}

/// The first of [`candidates`] that exists.
pub fn find(relative: &str) -> Option<PathBuf> {
    candidates(relative).into_iter().find(|p| p.exists())
}
