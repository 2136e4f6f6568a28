//! `probe [MODE ARGS...]`: the suites' eyes inside a container.
//!
//! Built static (see the Makefile's `probe` target), so it runs in any root
//! filesystem. Modes:
//!
//! | mode | does |
//! |---|---|
//! | `report` (default) | prints a [`probe::Report`] as JSON |
//! | `exit N` | exits with status N |
//! | `segfault` | dies of SIGSEGV (a fault: the kernel delivers it even to PID 1) |
//! | `signals` | installs handlers for SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 and SIGTERM, prints `ready`, and prints `{"received":"SIGTERM"}` for the first that arrives |
//! | `sleep SECS [TAG]` | sleeps; TAG only marks the process's command line |
//! | `background TAG N` | starts `probe sleep 3600 TAG` in the background, then exits with status N |
//! | `sethostname NAME` | sets the hostname, then prints the report |
//! | `orphan` | leaves an orphan that exits after being re-parented, waits, and prints `{"zombies":[…]}`: the zombies left in its PID namespace |

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["report"] => print_json(&probe::Report::collect()),
        ["exit", code] => return ExitCode::from(code.parse::<u8>().unwrap_or(255)),
        ["segfault"] => segfault(),
        ["signals"] => signals(),
        ["sleep", secs, ..] => {
            std::thread::sleep(Duration::from_secs_f64(secs.parse().unwrap_or(3600.0)))
        }
        ["background", tag, code] => {
            let started = std::process::Command::new("/proc/self/exe")
                .args(["sleep", "3600", tag])
                .spawn();
            if let Err(e) = started {
                eprintln!("probe: cannot start the background process: {e}");
                return ExitCode::from(254);
            }
            // Deliberately neither waited for nor killed: PID 1's exit must
            // take it down.
            return ExitCode::from(code.parse::<u8>().unwrap_or(255));
        }
        ["orphan"] => orphan(),
        ["sethostname", name] => {
            // SAFETY: the pointer and length describe `name`.
            let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
            if rc != 0 {
                eprintln!("probe: sethostname: {}", std::io::Error::last_os_error());
                return ExitCode::from(1);
            }
            print_json(&probe::Report::collect());
        }
        _ => {
            eprintln!(
                "probe: unknown mode {args:?}; see the table at the top of tests/probe/src/main.rs"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn print_json<T: serde::Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, value);
    let _ = writeln!(out);
    let _ = out.flush();
}

fn segfault() {
    // SAFETY: not safe at all, on purpose: a write to address 0 makes the
    // kernel deliver SIGSEGV, which kills even a namespace's PID 1.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
}

static RECEIVED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    RECEIVED.store(signo, std::sync::atomic::Ordering::SeqCst);
}

fn signals() {
    let catch = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGTERM, "SIGTERM"),
    ];
    for (signo, _) in catch {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(signo, on_signal as *const () as libc::sighandler_t) };
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    while RECEIVED.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        // SAFETY: pause(2) just waits for a signal.
        unsafe { libc::pause() };
    }
    let got = RECEIVED.load(std::sync::atomic::Ordering::SeqCst);
    let name = catch
        .iter()
        .find(|(signo, _)| *signo == got)
        .map_or("unknown", |(_, name)| name);
    print_json(&serde_json::json!({ "received": name }));
}

fn orphan() {
    // SAFETY: fork in a single-threaded process; the child only calls
    // async-signal-safe functions before it exits.
    match unsafe { libc::fork() } {
        0 => {
            // The middle process: start the grandchild and exit at once,
            // leaving it an orphan.
            // SAFETY: as above.
            if unsafe { libc::fork() } == 0 {
                // The orphan: outlive the middle process, then exit and
                // wait to be reaped by whoever adopted it.
                std::thread::sleep(Duration::from_millis(200));
            }
            // SAFETY: _exit is always safe.
            unsafe { libc::_exit(0) };
        }
        middle if middle > 0 => {
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(middle, std::ptr::null_mut(), 0) };
        }
        _ => {
            eprintln!("probe: fork failed");
            std::process::exit(254);
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    print_json(&serde_json::json!({ "zombies": probe::zombies_in_my_pid_namespace() }));
}
