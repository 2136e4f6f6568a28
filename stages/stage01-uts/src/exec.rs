//! Becoming COMMAND: execve(2) with the PATH search and exit statuses of a
//! shell.
//!
//! The search is done here rather than by execvp(3) for two reasons: it must
//! use the *container's* PATH (from stage 03 the environment is the
//! container's, not the runtime's), and it must tell "not found" (127) from
//! "found but not executable" (126) the way shells do, which execvp's single
//! errno cannot.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;

use crate::container::Process;
use crate::error::{Error, Searched};
use crate::explain;
use crate::syscall::Syscall;

/// PATH when the environment has none: the one docker and runc use.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Replace this process with `process`. Returns only on failure, with the
/// error that says why (and whose exit status is 126 or 127).
// ANCHOR: exec
pub fn exec(sys: &dyn Syscall, process: &Process) -> Error {
    let command = match process.args.first() {
        Some(command) if !command.is_empty() => command,
        _ => {
            return Error::CommandNotFound {
                command: String::new(),
                searched: Searched::Empty,
            };
        }
    };
    let argv = match cstrings(&process.args) {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    let envp = match cstrings(&process.env) {
        Ok(envp) => envp,
        Err(e) => return e,
    };
    let shown = command.to_string_lossy().into_owned();

    // The last chdir, after every other step (a user that may not enter its
    // working directory finds out here, as with runc), read back: the
    // kernel must agree on where the process is.
    if let Some(cwd) = &process.cwd {
        if let Err(e) = enter(sys, cwd) {
            return e;
        }
    }

    // Nothing the runtime holds open may cross into COMMAND: not its own
    // descriptors, not those its caller left open (a directory on fd 7 would
    // let COMMAND reach host files through /proc/self/fd/7). Only stdin,
    // stdout and stderr stay. A sweep that fails stops the start.
    if let Err(errno) = sys.close_on_exec_from(3) {
        return Error::syscall(
            "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)",
            "keeping the runtime's descriptors out of the container",
            errno,
        );
    }
    explain!(
        "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)" => "ok",
        "only stdin, stdout and stderr cross into COMMAND; every other descriptor closes at execve"
    );

    // A name with a slash is a path: no search, as in every shell.
    if command.as_bytes().contains(&b'/') {
        let path = argv[0].clone();
        narrate(&path, &argv);
        let errno = sys.execve(&path, &argv, &envp);
        return exec_error(shown, errno, Searched::Path);
    }

    let search = path_of(&process.env).unwrap_or_else(|| DEFAULT_PATH.into());
    let mut denied = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        // An empty entry means the current directory, as POSIX says.
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut candidate = dir.to_vec();
        candidate.push(b'/');
        candidate.extend_from_slice(command.as_bytes());
        let Ok(path) = CString::new(candidate) else {
            continue;
        };
        narrate(&path, &argv);
        match sys.execve(&path, &argv, &envp) {
            // Not here: try the next directory.
            Errno::ENOENT | Errno::ENOTDIR => continue,
            // Here but not executable: remember, a later directory may hold
            // an executable one.
            Errno::EACCES => denied = Some(Errno::EACCES),
            errno => return exec_error(shown, errno, Searched::Path),
        }
    }
    match denied {
        Some(errno) => exec_error(shown, errno, Searched::Path),
        None => Error::CommandNotFound {
            command: shown,
            searched: Searched::Dirs(search.to_string_lossy().into_owned()),
        },
    }
}
// ANCHOR_END: exec

/// chdir into `cwd` and check where that led: the canonical form of `cwd`.
fn enter(sys: &dyn Syscall, cwd: &Path) -> Result<(), Error> {
    let failed = |errno| {
        Error::syscall(
            format!("chdir({:?})", cwd.display().to_string()),
            "entering the working directory",
            errno,
        )
    };
    let expected = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let now = sys.enter_dir(cwd).map_err(failed)?;
    if now != expected {
        return Err(Error::Relayed {
            code: crate::error::EXIT_RUNTIME,
            message: format!(
                "the working directory {} led to {} (changed under the runtime?); COMMAND was not run",
                cwd.display(),
                now.display()
            ),
        });
    }
    explain!(
        "chdir({cwd:?})" => "ok",
        "COMMAND starts in its working directory (checked with getcwd)"
    );
    Ok(())
}

/// Narrate the execve of a file that exists (the others are just the PATH
/// search going on). The stat is made only when narrating.
fn narrate(path: &CString, argv: &[CString]) {
    if explain::enabled() && Path::new(OsStr::from_bytes(path.as_bytes())).exists() {
        explain!(
            "execve({path:?}, {argv:?})" => "does not return",
            "the container's process becomes COMMAND: same pid, same namespaces, new program"
        );
    }
}

fn exec_error(command: String, errno: Errno, searched: Searched) -> Error {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => Error::CommandNotFound { command, searched },
        source => Error::CannotExecute {
            command,
            source,
            hint: match source {
                Errno::EACCES => "; is it a directory, or without execute permission?",
                Errno::ENOEXEC => "; it is not a program this kernel can run (no #! line?)",
                _ => "",
            },
        },
    }
}

fn path_of(env: &[OsString]) -> Option<OsString> {
    env.iter()
        .rev()
        .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH="))
        .map(|v| OsStr::from_bytes(v).to_owned())
}

fn cstrings(items: &[OsString]) -> Result<Vec<CString>, Error> {
    items
        .iter()
        .map(|item| {
            CString::new(item.clone().into_vec()).map_err(|_| Error::CannotExecute {
                command: item.to_string_lossy().into_owned(),
                source: Errno::EINVAL,
                hint: "; an argument or environment entry holds a NUL byte",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::Recorder;

    const CLOSE_RANGE: &str = "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)";

    fn process(args: &[&str], path: &str) -> Process {
        Process::new(
            args.iter().map(OsString::from).collect(),
            vec![OsString::from(format!("PATH={path}"))],
        )
    }

    #[test]
    fn searches_the_containers_path_in_order() {
        let sys = Recorder::default();
        let err = exec(&sys, &process(&["sh", "-c", "true"], "/a:/b"));
        assert_eq!(
            *sys.calls.borrow(),
            [CLOSE_RANGE, "execve(/a/sh)", "execve(/b/sh)"]
        );
        assert_eq!(err.exit_code(), 127);
        insta::assert_snapshot!(err.to_string(), @r#"command not found: "sh" (searched PATH=/a:/b); check the name, or give its full path"#);
    }

    #[test]
    fn a_name_with_a_slash_is_not_searched() {
        let sys = Recorder::default();
        let err = exec(&sys, &process(&["./run.sh"], "/a:/b"));
        assert_eq!(*sys.calls.borrow(), [CLOSE_RANGE, "execve(./run.sh)"]);
        insta::assert_snapshot!(err.to_string(), @r#"command not found: "./run.sh" (no such file, or its interpreter is missing); check the name, or give its full path"#);
    }

    #[test]
    fn found_but_not_executable_is_126_even_if_later_dirs_lack_it() {
        let sys = Recorder::default();
        sys.execve_errors.borrow_mut().extend([Errno::EACCES]);
        let err = exec(&sys, &process(&["tool"], "/a:/b"));
        assert_eq!(sys.calls.borrow().len(), 3);
        assert_eq!(err.exit_code(), 126);
        insta::assert_snapshot!(err.to_string(), @r#"cannot execute "tool": EACCES: Permission denied; is it a directory, or without execute permission?"#);
    }

    #[test]
    fn a_hard_error_stops_the_search() {
        let sys = Recorder::default();
        sys.execve_errors.borrow_mut().extend([Errno::ENOEXEC]);
        let err = exec(&sys, &process(&["blob"], "/a:/b"));
        assert_eq!(sys.calls.borrow().len(), 2);
        assert_eq!(err.exit_code(), 126);
    }

    #[test]
    fn empty_path_entry_means_current_directory() {
        let sys = Recorder::default();
        let _ = exec(&sys, &process(&["x"], ":/b"));
        assert_eq!(
            *sys.calls.borrow(),
            [CLOSE_RANGE, "execve(./x)", "execve(/b/x)"]
        );
    }

    #[test]
    fn default_path_when_the_environment_has_none() {
        let sys = Recorder::default();
        let mut p = process(&["x"], "");
        p.env = vec![];
        let _ = exec(&sys, &p);
        assert_eq!(
            sys.calls.borrow().len(),
            1 + DEFAULT_PATH.split(':').count()
        );
    }

    #[test]
    fn descriptors_are_swept_before_the_first_execve() {
        let sys = Recorder::default();
        let _ = exec(&sys, &process(&["/bin/x"], "/a"));
        assert_eq!(*sys.calls.borrow(), [CLOSE_RANGE, "execve(/bin/x)"]);
    }

    #[test]
    fn a_failed_sweep_stops_the_start() {
        let sys = Recorder {
            close_range_error: Some(Errno::EIO),
            ..Recorder::default()
        };
        let err = exec(&sys, &process(&["/bin/x"], "/a"));
        assert_eq!(*sys.calls.borrow(), [CLOSE_RANGE], "no execve after it");
        assert_eq!(err.exit_code(), 125);
    }

    #[test]
    fn an_empty_command_is_not_found_and_says_so() {
        let sys = Recorder::default();
        let err = exec(&sys, &process(&[""], "/a"));
        assert!(sys.calls.borrow().is_empty());
        assert_eq!(err.exit_code(), 127);
        insta::assert_snapshot!(err.to_string(), @r#"command not found: "" (the command is empty); check the name, or give its full path"#);
    }

    #[test]
    fn nul_bytes_are_refused_not_truncated() {
        let sys = Recorder::default();
        let err = exec(&sys, &process(&["a\0b"], "/a"));
        assert!(sys.calls.borrow().is_empty());
        assert_eq!(err.exit_code(), 126);
    }
}
