//! A container's output, kept: every chunk the monitor reads from the
//! container's stdout and stderr (or its terminal) is written to
//! `container.log` in the CRI log format that containerd and CRI-O write and
//! kubelet reads:
//!
//! ```text
//! 2026-11-30T16:08:36.123456789Z stdout F a whole line
//! 2026-11-30T16:08:36.200000000Z stderr P a line cut short (no newline yet)
//! ```
//!
//! One record per line of output; `F` ends a line, `P` is part of one (a
//! chunk that did not end in a newline). The streams stay apart, and `logs`
//! writes each back to its own. Past `max-size` the file is renamed
//! `container.log.1` (and `.1` to `.2` …, keeping `max-file` files in all),
//! so a chatty container cannot fill the disk.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::state::LogOptions;
use crate::time::Time;

pub const LOG: &str = "container.log";

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Writes a container's log, rotating it.
pub struct Writer {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    options: LogOptions,
}

impl Writer {
    /// Append to the log in `dir` (a container started again adds to it).
    pub fn open(dir: &Path, options: LogOptions) -> std::io::Result<Writer> {
        let path = dir.join(LOG);
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path,
            file: Some(file),
            size,
            options,
        })
    }

    /// Record `data`, read from `stream` at `at`: one record per line, a
    /// long line cut in parts (as containerd cuts at 16 KiB), and the file
    /// rotated between records, so none is ever much past `max-size`.
    pub fn write(&mut self, stream: Stream, data: &[u8], at: Time) -> std::io::Result<()> {
        let stamp = at.rfc3339();
        let part = (self.options.max_size / 2).clamp(1, 16 << 10) as usize;
        for piece in data.split_inclusive(|&b| b == b'\n') {
            let (line, ends) = match piece.strip_suffix(b"\n") {
                Some(line) => (line, true),
                None => (piece, false),
            };
            let chunks: Vec<&[u8]> = if line.is_empty() {
                vec![line]
            } else {
                line.chunks(part).collect()
            };
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let tag = if ends && i == last { "F" } else { "P" };
                let mut record = format!("{stamp} {} {tag} ", stream.as_str()).into_bytes();
                record.extend_from_slice(chunk);
                record.push(b'\n');
                if self.size > 0 && self.size + record.len() as u64 > self.options.max_size {
                    self.rotate()?;
                }
                if let Some(file) = &mut self.file {
                    file.write_all(&record)?;
                    self.size += record.len() as u64;
                }
            }
        }
        Ok(())
    }

    /// container.log → .1 → .2 …; the oldest beyond `max-file` goes.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let keep = self.options.max_files.max(1);
        if keep == 1 {
            // One file: start it again.
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..keep).rev() {
                let from = numbered(&self.path, n - 1);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, n))?;
                }
            }
        }
        self.file = Some(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// `container.log` (0), `container.log.1` …
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: Time,
    pub stream: Stream,
    /// Ends a line (`F`), rather than being part of one (`P`).
    pub full: bool,
    pub content: Vec<u8>,
}

/// Parse one line of the log (without its newline).
pub fn parse(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = Time::parse_rfc3339(std::str::from_utf8(parts.next()?).ok()?)?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        full,
        content: parts.next().unwrap_or_default().to_vec(),
    })
}

/// What `logs` shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only the last N lines.
    pub tail: Option<usize>,
    pub since: Option<Time>,
    /// Each line after its time.
    pub timestamps: bool,
}

/// The log files of the container in `dir`, oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let path = dir.join(LOG);
    let mut files: Vec<PathBuf> = (1..1000)
        .map(|n| numbered(&path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if path.exists() {
        files.push(path);
    }
    files
}

/// Lines as `logs` prints them, each with its stream.
pub struct Printer {
    filter: Filter,
    /// A line begun by `P` records, not yet ended.
    pending: [Vec<u8>; 2],
    pending_time: [Option<Time>; 2],
}

impl Printer {
    pub fn new(filter: Filter) -> Printer {
        Printer {
            filter,
            pending: [Vec::new(), Vec::new()],
            pending_time: [None, None],
        }
    }

    /// Feed one record; returns a whole line to print, if it ends one.
    pub fn feed(&mut self, record: Record) -> Option<(Stream, Vec<u8>)> {
        let i = record.stream as usize;
        if self.filter.since.is_some_and(|since| record.time < since) {
            return None;
        }
        let first = *self.pending_time[i].get_or_insert(record.time);
        self.pending[i].extend_from_slice(&record.content);
        if !record.full {
            return None;
        }
        self.pending_time[i] = None;
        let mut line = Vec::new();
        if self.filter.timestamps {
            line.extend_from_slice(first.rfc3339().as_bytes());
            line.push(b' ');
        }
        line.append(&mut self.pending[i]);
        line.push(b'\n');
        Some((record.stream, line))
    }

    /// What is left of lines never ended (the container stopped mid-line).
    pub fn rest(&mut self) -> Vec<(Stream, Vec<u8>)> {
        let mut rest = Vec::new();
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !self.pending[i].is_empty() {
                rest.push((stream, std::mem::take(&mut self.pending[i])));
            }
        }
        rest
    }
}

/// Every line in the files, through the filter (`--tail` applied).
pub fn read_all(dir: &Path, filter: &Filter) -> Vec<(Stream, Vec<u8>)> {
    let mut printer = Printer::new(filter.clone());
    let mut lines = Vec::new();
    for path in files(dir) {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
            if let Some(record) = parse(&line)
                && let Some(out) = printer.feed(record)
            {
                lines.push(out);
            }
        }
    }
    lines.extend(printer.rest());
    if let Some(n) = filter.tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// Follows the live file: what was appended since the last call, across a
/// rotation.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    buffer: Vec<u8>,
}

impl Follower {
    /// Follow from the current end of the log in `dir`.
    pub fn at_end(dir: &Path) -> Follower {
        let path = dir.join(LOG);
        let mut file = File::open(&path).ok();
        let inode = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.ino());
        if let Some(f) = &mut file {
            let _ = f.seek(std::io::SeekFrom::End(0));
        }
        Follower {
            path,
            file,
            inode,
            buffer: Vec::new(),
        }
    }

    /// The whole lines appended since the last call.
    pub fn poll(&mut self) -> Vec<Record> {
        let mut records = Vec::new();
        loop {
            if let Some(file) = &mut self.file {
                let _ = file.read_to_end(&mut self.buffer);
            }
            while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if let Some(record) = parse(&line[..line.len() - 1]) {
                    records.push(record);
                }
            }
            // Rotated: the name now holds a new file; the old one was read
            // to its end above.
            let now = std::fs::metadata(&self.path).map_or(0, |m| m.ino());
            if now == 0 || now == self.inode {
                return records;
            }
            self.file = File::open(&self.path).ok();
            self.inode = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(chunks: &[(Stream, &[u8])], options: LogOptions) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer::open(dir.path(), options).unwrap();
        for (n, (stream, data)) in chunks.iter().enumerate() {
            writer
                .write(*stream, data, Time(1_000_000_000 * (n as i128 + 1)))
                .unwrap();
        }
        dir
    }

    #[test]
    fn lines_come_back_on_their_streams_whole() {
        let dir = written(
            &[
                (Stream::Stdout, b"one\ntw"),
                (Stream::Stderr, b"oops\n"),
                (Stream::Stdout, b"o\nthree"),
            ],
            LogOptions::default(),
        );
        let text = std::fs::read_to_string(dir.path().join(LOG)).unwrap();
        assert!(
            text.starts_with("1970-01-01T00:00:01.000000000Z stdout F one\n"),
            "{text}"
        );
        assert!(text.contains(" stdout P tw\n"), "{text}");
        let lines = read_all(dir.path(), &Filter::default());
        assert_eq!(
            lines,
            [
                (Stream::Stdout, b"one\n".to_vec()),
                (Stream::Stderr, b"oops\n".to_vec()),
                (Stream::Stdout, b"two\n".to_vec()),
                (Stream::Stdout, b"three".to_vec()),
            ]
        );
    }

    #[test]
    fn tail_since_and_timestamps() {
        let dir = written(
            &[
                (Stream::Stdout, b"a\n"),
                (Stream::Stdout, b"b\n"),
                (Stream::Stdout, b"c\n"),
            ],
            LogOptions::default(),
        );
        let tail = read_all(
            dir.path(),
            &Filter {
                tail: Some(2),
                ..Filter::default()
            },
        );
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[0].1, b"b\n");
        let since = read_all(
            dir.path(),
            &Filter {
                since: Some(Time(3_000_000_000)),
                timestamps: true,
                ..Filter::default()
            },
        );
        assert_eq!(
            since,
            [(
                Stream::Stdout,
                b"1970-01-01T00:00:03.000000000Z c\n".to_vec()
            )]
        );
    }

    #[test]
    fn the_log_is_capped_and_rotated() {
        let line = [b'x'; 99];
        let mut chunks = Vec::new();
        for _ in 0..100 {
            chunks.push((Stream::Stdout, &line[..]));
        }
        let options = LogOptions {
            max_size: 2000,
            max_files: 3,
        };
        let dir = written(&chunks, options);
        let files = files(dir.path());
        assert_eq!(files.len(), 3, "{files:?}");
        for file in &files {
            let size = file.metadata().unwrap().len();
            assert!(size <= 2000, "{}: {size}", file.display());
        }
        assert!(!dir.path().join("container.log.3").exists());
    }

    #[test]
    fn a_follower_reads_what_is_appended_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions {
            max_size: 100,
            max_files: 2,
        };
        let mut writer = Writer::open(dir.path(), options).unwrap();
        writer.write(Stream::Stdout, b"before\n", Time(0)).unwrap();
        let mut follower = Follower::at_end(dir.path());
        let mut seen = Vec::new();
        for n in 0..10 {
            writer
                .write(Stream::Stdout, format!("line {n}\n").as_bytes(), Time(0))
                .unwrap();
            seen.extend(follower.poll().into_iter().map(|r| r.content));
        }
        let expected: Vec<Vec<u8>> = (0..10).map(|n| format!("line {n}").into_bytes()).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_long_line_is_cut_in_parts_and_read_back_whole() {
        let long = vec![b'y'; 5000];
        let mut data = long.clone();
        data.push(b'\n');
        let options = LogOptions {
            max_size: 4096,
            max_files: 5,
        };
        let dir = written(&[(Stream::Stdout, &data)], options);
        for file in files(dir.path()) {
            assert!(file.metadata().unwrap().len() <= 4096);
        }
        let mut expected = long;
        expected.push(b'\n');
        assert_eq!(
            read_all(dir.path(), &Filter::default()),
            [(Stream::Stdout, expected)]
        );
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse(b"not a record").is_none());
        assert!(parse(b"2026-11-30T16:08:36Z stdin F x").is_none());
        assert!(parse(b"2026-11-30T16:08:36Z stdout F x").is_some());
    }
}
