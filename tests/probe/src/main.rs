//! `probe [MODE ARGS...]`: the suites' eyes inside a container.
//!
//! Built static (see the Makefile's `probe` target), so it runs in any root
//! filesystem. Its modes (also the book's "The probe" page):
//!
#![doc = include_str!("../MODES.md")]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Run `command` as a child, and write its peak resident memory to `file`.
fn measure(file: &str, command: &[&str]) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let Some((program, args)) = command.split_first() else {
        eprintln!("probe: measure needs a command");
        return ExitCode::from(2);
    };
    let child = match std::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("probe: cannot run {program}: {e}");
            return ExitCode::from(127);
        }
    };
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    let _ = std::fs::write(
        file,
        serde_json::json!({ "maxrss_kb": usage.ru_maxrss }).to_string(),
    );
    if rc != pid {
        return ExitCode::from(125);
    }
    let status = std::process::ExitStatus::from_raw(status);
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(125);
    ExitCode::from(code as u8)
}

/// The descriptors `pid` has open, each with what /proc says it is. The one
/// this listing itself opens (on /proc/PID/fd) is left out.
fn fds(pid: &str) -> serde_json::Value {
    let dir = format!("/proc/{pid}/fd");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => return serde_json::json!({ "errno": errno_name(&e) }),
    };
    let own = std::fs::canonicalize(&dir).unwrap_or_default();
    let mut fds = serde_json::Map::new();
    for entry in entries.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if pid == "self" && target == own {
            continue;
        }
        fds.insert(
            entry.file_name().to_string_lossy().into_owned(),
            serde_json::Value::String(target.display().to_string()),
        );
    }
    serde_json::json!({ "fds": fds })
}

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
        ["write", path] => print_json(&write(path)),
        ["read", path] => print_json(&match std::fs::read(path) {
            Ok(bytes) => serde_json::json!({ "bytes": bytes.len() }),
            Err(e) => serde_json::json!({ "errno": errno_name(&e) }),
        }),
        ["ls", path] => print_json(&match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                serde_json::json!({ "entries": names })
            }
            Err(e) => serde_json::json!({ "errno": errno_name(&e) }),
        }),
        ["stat", path] => print_json(&stat(path)),
        ["measure", file, command @ ..] => return measure(file, command),
        ["fds"] => print_json(&fds("self")),
        ["fds", pid] => print_json(&fds(pid)),
        ["open", path] => print_json(&match std::fs::File::open(path) {
            Ok(_) => serde_json::json!({ "ok": true }),
            Err(e) => serde_json::json!({ "ok": false, "errno": errno_name(&e) }),
        }),
        ["escape", marker] => print_json(&escape(marker)),
        ["interfaces"] => print_json(&interfaces()),
        ["loopback"] => print_json(&loopback()),
        ["http", address, path] => print_json(&http_get(address, path)),
        ["serve", port, text] => return serve(port, text),
        ["mknod", path, major, minor] => print_json(&mknod(path, major, minor)),
        ["privileged"] => print_json(&privileged()),
        ["alloc", mb] => print_json(&alloc(mb.parse().unwrap_or(0))),
        ["burn", secs] => print_json(&burn(secs.parse().unwrap_or(1.0))),
        ["forkbomb", secs] => print_json(&forkbomb(secs.parse().unwrap_or(1.0))),
        ["ipc", key, name] => return ipc(key, name),
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

/// Every network interface this process's namespace has, from
/// /sys/class/net (sysfs shows the namespace of whoever mounted it: the
/// container's), with whether it is up (`IFF_UP` in its flags).
fn interfaces() -> serde_json::Value {
    let mut found = Vec::new();
    match std::fs::read_dir("/sys/class/net") {
        Ok(dir) => {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let flags = std::fs::read_to_string(entry.path().join("flags")).unwrap_or_default();
                let flags =
                    u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
                found.push(
                    serde_json::json!({ "name": name, "up": flags & libc::IFF_UP as u32 != 0 }),
                );
            }
        }
        Err(e) => return serde_json::json!({ "errno": errno_name(&e) }),
    }
    found.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    serde_json::json!({ "interfaces": found })
}

/// Talk to itself over TCP on 127.0.0.1: what fails when `lo` is down.
fn loopback() -> serde_json::Value {
    use std::io::Read;
    let attempt = || -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        client.write_all(b"ping")?;
        let mut got = [0u8; 4];
        server.read_exact(&mut got)?;
        Ok(())
    };
    match attempt() {
        Ok(()) => serde_json::json!({ "ok": true }),
        Err(e) => serde_json::json!({ "ok": false, "errno": errno_name(&e) }),
    }
}

/// `GET PATH` from `ADDRESS:PORT` over HTTP/1.0, with a 5 s timeout.
fn http_get(address: &str, path: &str) -> serde_json::Value {
    use std::io::Read;
    let attempt = || -> std::io::Result<(u32, String)> {
        let address: std::net::SocketAddr = address
            .parse()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let timeout = std::time::Duration::from_secs(5);
        let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
        let mut response = String::new();
        stream.take(1 << 20).read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        Ok((status, body))
    };
    match attempt() {
        Ok((status, body)) => serde_json::json!({ "status": status, "body": body }),
        Err(e) => serde_json::json!({ "errno": errno_name(&e) }),
    }
}

/// Answer every HTTP request on 0.0.0.0:PORT with 200 and TEXT, and print
/// `ready` once listening; until killed.
fn serve(port: &str, text: &str) -> ExitCode {
    use std::io::Read;
    let Ok(listener) = std::net::TcpListener::bind(("0.0.0.0", port.parse::<u16>().unwrap_or(0)))
    else {
        eprintln!("probe: cannot listen on port {port}");
        return ExitCode::from(1);
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        // The whole request head, before answering: closing a socket with
        // unread bytes sends a reset, which the client may see first.
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
    }
    ExitCode::SUCCESS
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

fn errno_name(e: &std::io::Error) -> String {
    let names = [
        (libc::EROFS, "EROFS"),
        (libc::EACCES, "EACCES"),
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENXIO, "ENXIO"),
        (libc::ENODEV, "ENODEV"),
        (libc::ENETUNREACH, "ENETUNREACH"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (libc::EHOSTUNREACH, "EHOSTUNREACH"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::EAGAIN, "EAGAIN"),
    ];
    let code = e.raw_os_error().unwrap_or(0);
    names
        .iter()
        .find(|(n, _)| *n == code)
        .map_or_else(|| format!("errno {code}"), |(_, name)| (*name).to_owned())
}

fn write(path: &str) -> serde_json::Value {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(b"written by the probe\n"))
    {
        Ok(()) => serde_json::json!({ "ok": true }),
        Err(e) => serde_json::json!({ "ok": false, "errno": errno_name(&e) }),
    }
}

fn stat(path: &str) -> serde_json::Value {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_dir() {
                "dir"
            } else if t.is_symlink() {
                "symlink"
            } else if t.is_char_device() {
                "char"
            } else if t.is_block_device() {
                "block"
            } else {
                "file"
            };
            serde_json::json!({
                "uid": m.uid(), "gid": m.gid(), "mode": m.mode() & 0o7777, "kind": kind,
                "rdev_major": libc::major(m.rdev()), "rdev_minor": libc::minor(m.rdev()),
                "xattrs": xattrs(path),
            })
        }
        Err(e) => serde_json::json!({ "errno": errno_name(&e) }),
    }
}

/// The extended attributes of `path` itself (not of a symlink's target),
/// name → value (lossy UTF-8).
fn xattrs(path: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut all = serde_json::Map::new();
    let Ok(cpath) = std::ffi::CString::new(path) else {
        return all;
    };
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: the buffers are valid for the lengths given.
    let len = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len <= 0 {
        return all;
    }
    for name in names[..len as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: as above.
        let n = unsafe {
            libc::lgetxattr(
                cpath.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n >= 0 {
            all.insert(
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(&value[..n as usize])
                    .into_owned()
                    .into(),
            );
        }
    }
    all
}

/// The chroot escape: chroot into a subdirectory while keeping the working
/// directory outside it, climb with `..` (which a chroot does not stop for a
/// directory outside it), and chroot to where the climb ended. Under chroot(2)
/// alone this reaches the host's root; after pivot_root and the detach of the
/// old root there is nothing above the container's root to reach.
fn escape(marker: &str) -> serde_json::Value {
    let dir = format!("/tmp/.probe-escape-{}", std::process::id());
    let _ = std::fs::create_dir_all(&dir);
    let cdir = std::ffi::CString::new(dir.clone()).unwrap_or_default();
    // SAFETY: plain system calls on valid C strings.
    let escaped = unsafe {
        if libc::chroot(cdir.as_ptr()) != 0 {
            let _ = std::fs::remove_dir(&dir);
            return serde_json::json!({ "error": "chroot failed", "errno": errno_name(&std::io::Error::last_os_error()) });
        }
        for _ in 0..64 {
            libc::chdir(c"..".as_ptr());
        }
        libc::chroot(c".".as_ptr());
        std::path::Path::new(marker).exists()
    };
    serde_json::json!({ "escaped": escaped })
}

/// What root inside may do that a contained root may not, each tried so
/// that it changes nothing even when allowed: a tmpfs mounted on a
/// directory of its own (and unmounted), `finit_module` of no file (EBADF
/// once past the capability check), `clock_adjtime` with a tick the kernel
/// rejects (EINVAL once past it), `/proc/sysrq-trigger` and
/// `/proc/sys/vm/drop_caches` opened for writing and closed unwritten, and
/// `open_by_handle_at` with a handle that names nothing ("shocker").
/// Each: "ok", or the errno's name.
fn privileged() -> serde_json::Value {
    let outcome = |rc: libc::c_long| {
        if rc >= 0 {
            "ok".to_owned()
        } else {
            errno_name(&std::io::Error::last_os_error())
        }
    };
    let dir = "/tmp/.probe-mount";
    let _ = std::fs::create_dir_all(dir);
    // SAFETY: valid C strings; a tmpfs on a directory of the probe's own.
    let mount = unsafe {
        libc::mount(
            c"probe".as_ptr(),
            c"/tmp/.probe-mount".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let mount = outcome(mount as libc::c_long);
    if mount == "ok" {
        // SAFETY: as above.
        unsafe { libc::umount(c"/tmp/.probe-mount".as_ptr()) };
    }
    let _ = std::fs::remove_dir(dir);
    // SAFETY: fd -1 is no file: nothing is loaded.
    let module = outcome(unsafe { libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0) });
    // SAFETY: a zeroed timex with only ADJ_TICK and an impossible tick.
    let clock = outcome(unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        tx.modes = libc::ADJ_TICK;
        tx.tick = 1;
        libc::clock_adjtime(libc::CLOCK_REALTIME, &mut tx) as libc::c_long
    });
    let open_write = |path: &std::ffi::CStr| {
        // SAFETY: a valid C string; closed at once, never written.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        let result = outcome(fd as libc::c_long);
        if fd >= 0 {
            // SAFETY: the descriptor just opened.
            unsafe { libc::close(fd) };
        }
        result
    };
    let sysrq = open_write(c"/proc/sysrq-trigger");
    let proc_sys = open_write(c"/proc/sys/vm/drop_caches");
    // SAFETY: a handle of 8 zero bytes in a buffer large enough; the
    // mount descriptor is the root's, closed after.
    let handle = unsafe {
        let root = libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        let mut buf = [0u64; 4];
        let h = buf.as_mut_ptr().cast::<libc::c_uint>();
        *h = 8; // handle_bytes
        *h.add(1) = 1; // handle_type
        let rc = libc::syscall(
            libc::SYS_open_by_handle_at,
            root,
            buf.as_mut_ptr(),
            libc::O_RDONLY,
        );
        let result = outcome(rc);
        if rc >= 0 {
            libc::close(rc as i32);
        }
        libc::close(root);
        result
    };
    serde_json::json!({
        "mount": mount, "module": module, "clock": clock,
        "sysrq": sysrq, "proc_sys": proc_sys, "handle": handle,
    })
}

fn mknod(path: &str, major: &str, minor: &str) -> serde_json::Value {
    let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
        return serde_json::json!({ "ok": false, "errno": "usage" });
    };
    let Ok(cpath) = std::ffi::CString::new(path) else {
        return serde_json::json!({ "ok": false, "errno": "usage" });
    };
    // SAFETY: a valid C string; mknod only creates a file.
    let rc = unsafe {
        libc::mknod(
            cpath.as_ptr(),
            libc::S_IFCHR | 0o600,
            libc::makedev(major, minor),
        )
    };
    if rc == 0 {
        let _ = std::fs::remove_file(path);
        serde_json::json!({ "ok": true })
    } else {
        serde_json::json!({ "ok": false, "errno": errno_name(&std::io::Error::last_os_error()) })
    }
}

fn ipc(key: &str, name: &str) -> ExitCode {
    let Ok(key) = key.parse::<libc::key_t>() else {
        eprintln!("probe: ipc KEY must be a number");
        return ExitCode::from(2);
    };
    let mut queues: Vec<String> = std::fs::read_dir("/dev/mqueue")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    queues.sort();
    print_json(&serde_json::json!({ "msg_keys": probe::sysv_keys("msg"), "mqueues": queues }));
    // SAFETY: plain System V and POSIX IPC calls with valid arguments.
    let made = unsafe {
        let msg = libc::msgget(key, libc::IPC_CREAT | 0o600);
        let cname = std::ffi::CString::new(format!("/{name}")).unwrap_or_default();
        let mq = libc::mq_open(
            cname.as_ptr(),
            libc::O_CREAT | libc::O_RDWR,
            0o600,
            std::ptr::null::<libc::mq_attr>(),
        );
        msg >= 0 && mq >= 0
    };
    if !made {
        eprintln!(
            "probe: cannot create the IPC objects: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::from(1);
    }
    signals();
    ExitCode::SUCCESS
}

fn alloc(mb: usize) -> serde_json::Value {
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mb);
    for _ in 0..mb {
        // Touch every page: only memory written to is charged.
        chunks.push(vec![1u8; 1 << 20]);
    }
    let kept: usize = chunks.iter().map(|c| c.len() >> 20).sum();
    serde_json::json!({ "allocated": kept })
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn burn(secs: f64) -> serde_json::Value {
    let start = std::time::Instant::now();
    let cpu0 = cpu_seconds();
    let mut x: u64 = 0;
    while start.elapsed().as_secs_f64() < secs {
        for i in 0..100_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
    serde_json::json!({ "cpu": cpu_seconds() - cpu0, "wall": start.elapsed().as_secs_f64() })
}

fn forkbomb(secs: f64) -> serde_json::Value {
    let start = std::time::Instant::now();
    let (mut forked, mut refused) = (0u64, 0u64);
    while start.elapsed().as_secs_f64() < secs {
        // SAFETY: the child only sleeps and exits; the parent counts.
        match unsafe { libc::fork() } {
            0 => {
                std::thread::sleep(Duration::from_secs(3600));
                // SAFETY: _exit is always safe.
                unsafe { libc::_exit(0) };
            }
            -1 => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => forked += 1,
        }
    }
    // The children go with PID 1 when the probe exits.
    serde_json::json!({ "forked": forked, "refused": refused })
}
