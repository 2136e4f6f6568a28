//! Reading a tar archive: strictly, and within bounds.
//!
//! A layer is a tar archive from a registry, and a hostile one is built to
//! make its reader misbehave. This reader takes the formats layers are
//! written in (POSIX ustar, PAX extended headers, GNU long names; what
//! Go's archive/tar, GNU tar and docker write) and refuses the rest in one
//! line:
//!
//! - every header's checksum is checked, every number parsed with overflow
//!   checks (octal, or GNU base-256);
//! - extension records (PAX headers, GNU long names) are read into memory
//!   only up to 1 MiB each, as Go's archive/tar does; a larger one is
//!   refused before it is read (the `tar` crate reads any size whole);
//! - a PAX `size` overrides the header's, as it must, so that the entry
//!   boundaries are the ones every other reader sees;
//! - sparse files, multi-volume archives and entry types a layer has no use
//!   for are refused rather than guessed at;
//! - an entry's data is read through [`Archive::data`], never past its end,
//!   and whatever a caller leaves unread is skipped, counted, before the
//!   next header.
//!
//! What an entry *means* (names that climb out, whiteouts, owners) is the
//! unpacker's business ([`crate::unpack`]).

use std::io::{self, Read};

/// The largest PAX header or GNU long name read.
pub const EXTENSION_MAX: u64 = 1 << 20;
/// The longest path or link target an entry may have (Linux's PATH_MAX).
pub const PATH_MAX: usize = 4096;

const BLOCK: usize = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

/// One entry's header, with its extensions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as written: untrusted bytes.
    pub path: Vec<u8>,
    /// A link's target: untrusted bytes.
    pub link: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch (0 for times before it).
    pub mtime: u64,
    /// Bytes of data that follow.
    pub size: u64,
    pub dev_major: u64,
    pub dev_minor: u64,
    /// Extended attributes (`SCHILY.xattr.NAME` PAX records): untrusted.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Corrupt(String),
    #[error("{0} are not supported in layers")]
    Unsupported(String),
    #[error("{what} of {size} bytes is more than the {max} bytes one may be")]
    TooLarge {
        what: &'static str,
        size: u64,
        max: u64,
    },
    #[error("reading the layer: {0}")]
    Io(#[from] io::Error),
}

fn corrupt<T>(why: impl Into<String>) -> Result<T, ArchiveError> {
    Err(ArchiveError::Corrupt(why.into()))
}

/// PAX records that apply to the next entry (or, global, to all).
#[derive(Debug, Default, Clone)]
struct Pax {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A tar archive being read.
pub struct Archive<R> {
    inner: R,
    /// Data bytes of the current entry not yet read, then its padding.
    left: u64,
    padding: u64,
    /// Every byte of entry data that went by (read or skipped).
    data_bytes: u64,
    global: Pax,
    ended: bool,
}

impl<R: Read> Archive<R> {
    pub fn new(inner: R) -> Archive<R> {
        Archive {
            inner,
            left: 0,
            padding: 0,
            data_bytes: 0,
            global: Pax::default(),
            ended: false,
        }
    }

    /// Bytes of entry data that went by so far, read or skipped: what the
    /// unpacker counts against its bound, whatever the entries were.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// The next entry's header, or `None` at the end of the archive. What
    /// is left of the previous entry's data is skipped first.
    // ANCHOR: next_entry
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pax: Option<Pax> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(block) = self.header_block()? else {
                if pax.is_some() || long_name.is_some() || long_link.is_some() {
                    return corrupt("the archive ends after an extension header, with no entry");
                }
                self.ended = true;
                return Ok(None);
            };
            let header = Header(&block);
            let size = header.number(124, 12, "size")?;
            match header.typeflag() {
                b'x' => {
                    if pax.is_some() {
                        return corrupt("two PAX headers for one entry");
                    }
                    let data = self.extension(size, "a PAX header")?;
                    pax = Some(parse_pax(&data, Pax::default())?);
                }
                b'g' => {
                    let data = self.extension(size, "a global PAX header")?;
                    self.global = parse_pax(&data, std::mem::take(&mut self.global))?;
                }
                b'L' => {
                    let data = self.extension(size, "a long name")?;
                    long_name = Some(c_string(&data).to_vec());
                }
                b'K' => {
                    let data = self.extension(size, "a long link name")?;
                    long_link = Some(c_string(&data).to_vec());
                }
                b'S' => return Err(ArchiveError::Unsupported("sparse files".into())),
                b'M' => return Err(ArchiveError::Unsupported("multi-volume archives".into())),
                b'V' => {
                    // A volume label: a name for the archive, nothing to make.
                    self.start_data(size);
                    self.skip_rest()?;
                }
                flag => {
                    let kind = match flag {
                        b'0' | 0 | b'7' => Kind::Regular,
                        b'1' => Kind::HardLink,
                        b'2' => Kind::Symlink,
                        b'3' => Kind::Char,
                        b'4' => Kind::Block,
                        b'5' => Kind::Directory,
                        b'6' => Kind::Fifo,
                        other => {
                            return Err(ArchiveError::Unsupported(format!(
                                "entries of type {:?}",
                                char::from(other).escape_default().to_string()
                            )));
                        }
                    };
                    let local = pax.take().unwrap_or_default();
                    let mut entry =
                        self.entry(&header, kind, size, &local, long_name, long_link)?;
                    // Before typeflags, a name ending in '/' was a directory.
                    if flag == 0 && entry.path.ends_with(b"/") {
                        entry.kind = Kind::Directory;
                    }
                    self.start_data(entry.size);
                    return Ok(Some(entry));
                }
            }
        }
    }
    // ANCHOR_END: next_entry

    /// The current entry's data: reads end at its last byte.
    pub fn data(&mut self) -> Data<'_, R> {
        Data { archive: self }
    }

    fn entry(
        &self,
        header: &Header<'_>,
        kind: Kind,
        header_size: u64,
        local: &Pax,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Entry, ArchiveError> {
        let global = &self.global;
        let path = local
            .path
            .clone()
            .or(long_name)
            .or_else(|| global.path.clone())
            .unwrap_or_else(|| header.name());
        let link = local
            .link
            .clone()
            .or(long_link)
            .or_else(|| global.link.clone())
            .unwrap_or_else(|| c_string(header.field(157, 100)).to_vec());
        if path.len() > PATH_MAX || link.len() > PATH_MAX {
            return corrupt(format!(
                "an entry's name or link is longer than {PATH_MAX} bytes"
            ));
        }
        if path.contains(&0) || link.contains(&0) {
            return corrupt("an entry's name or link holds a NUL byte");
        }
        let pick = |l: Option<u64>, g: Option<u64>, h: u64| l.or(g).unwrap_or(h);
        let mut xattrs = global.xattrs.clone();
        xattrs.extend(local.xattrs.iter().cloned());
        Ok(Entry {
            path,
            link,
            kind,
            mode: (header.number(100, 8, "mode")? & 0o7777) as u32,
            uid: pick(local.uid, global.uid, header.number(108, 8, "uid")?),
            gid: pick(local.gid, global.gid, header.number(116, 8, "gid")?),
            mtime: pick(
                local.mtime,
                global.mtime,
                header.number(136, 12, "mtime").unwrap_or(0),
            ),
            size: pick(local.size, global.size, header_size),
            dev_major: header.number(329, 8, "devmajor").unwrap_or(0),
            dev_minor: header.number(337, 8, "devminor").unwrap_or(0),
            xattrs,
        })
    }

    /// The next 512-byte header block; `None` at the end (a zero block, or
    /// the end of the stream right at a block boundary).
    fn header_block(&mut self) -> Result<Option<[u8; BLOCK]>, ArchiveError> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => return corrupt("the archive ends in the middle of a header"),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        Header(&block).check_sum()?;
        Ok(Some(block))
    }

    /// An extension record's data, refused past [`EXTENSION_MAX`] before a
    /// byte of it is read.
    fn extension(&mut self, size: u64, what: &'static str) -> Result<Vec<u8>, ArchiveError> {
        if size > EXTENSION_MAX {
            return Err(ArchiveError::TooLarge {
                what,
                size,
                max: EXTENSION_MAX,
            });
        }
        self.start_data(size);
        let mut data = Vec::with_capacity(size as usize);
        self.data().read_to_end(&mut data)?;
        if (data.len() as u64) < size {
            return corrupt("the archive ends in the middle of an entry");
        }
        self.skip_rest()?;
        Ok(data)
    }

    fn start_data(&mut self, size: u64) {
        self.left = size;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    }

    /// Skip what is left of the current entry's data, and its padding.
    fn skip_rest(&mut self) -> Result<(), ArchiveError> {
        let skip = self.left + self.padding;
        self.data_bytes += self.left;
        self.left = 0;
        self.padding = 0;
        let skipped = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())?;
        if skipped < skip {
            return corrupt("the archive ends in the middle of an entry");
        }
        Ok(())
    }
}

/// Reads one entry's data, and no further.
pub struct Data<'a, R> {
    archive: &'a mut Archive<R>,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let archive = &mut *self.archive;
        if archive.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(archive.left.min(usize::MAX as u64) as usize);
        let n = archive.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends in the middle of an entry",
            ));
        }
        archive.left -= n as u64;
        archive.data_bytes += n as u64;
        Ok(n)
    }
}

/// A header block's fields.
struct Header<'a>(&'a [u8; BLOCK]);

impl Header<'_> {
    fn field(&self, at: usize, len: usize) -> &[u8] {
        &self.0[at..at + len]
    }

    fn typeflag(&self) -> u8 {
        self.0[156]
    }

    /// The name: POSIX ustar puts a prefix before it (GNU's header uses
    /// that space for other things, so its magic says which it is).
    fn name(&self) -> Vec<u8> {
        let name = c_string(self.field(0, 100));
        let posix = self.field(257, 6) == b"ustar\0";
        let prefix = c_string(self.field(345, 155));
        if posix && !prefix.is_empty() {
            [prefix, b"/", name].concat()
        } else {
            name.to_vec()
        }
    }

    /// A numeric field: octal, or GNU's base-256 (high bit set).
    fn number(&self, at: usize, len: usize, what: &str) -> Result<u64, ArchiveError> {
        let field = self.field(at, len);
        let bad = || ArchiveError::Corrupt(format!("a header's {what} field is not a number"));
        if field[0] & 0x80 != 0 {
            if field[0] == 0xff {
                return Err(bad()); // negative
            }
            let mut n = u64::from(field[0] & 0x7f);
            for &b in &field[1..] {
                n = n
                    .checked_mul(256)
                    .and_then(|n| n.checked_add(u64::from(b)))
                    .ok_or_else(bad)?;
            }
            return Ok(n);
        }
        let digits = trim(field);
        let mut n: u64 = 0;
        for &b in digits {
            if !(b'0'..=b'7').contains(&b) {
                return Err(bad());
            }
            n = n
                .checked_mul(8)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or_else(bad)?;
        }
        Ok(n)
    }

    /// The checksum: the sum of the header's bytes with the checksum field
    /// as spaces (unsigned, or signed as some old writers computed it).
    fn check_sum(&self) -> Result<(), ArchiveError> {
        let stored = self.number(148, 8, "checksum")?;
        let (mut unsigned, mut signed) = (0u64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
            Ok(())
        } else {
            corrupt("a header's checksum is wrong (a damaged or hostile archive)")
        }
    }
}

/// Up to the first NUL.
fn c_string(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or(&[])
}

/// Without the spaces and NULs around the digits.
fn trim(bytes: &[u8]) -> &[u8] {
    let keep = |b: &u8| *b != b' ' && *b != 0;
    let start = bytes.iter().position(keep).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(keep).map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// PAX records, `LENGTH KEY=VALUE\n` each, over `into`.
// ANCHOR: pax
fn parse_pax(mut data: &[u8], mut into: Pax) -> Result<Pax, ArchiveError> {
    let bad = || ArchiveError::Corrupt("a PAX header's records are malformed".into());
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let length: usize = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if length <= space + 1 || length > data.len() || data[length - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..length - 1];
        data = &data[length..];
        let equals = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&record[..equals], &record[equals + 1..]);
        let decimal = || -> Result<u64, ArchiveError> {
            std::str::from_utf8(value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ArchiveError::Corrupt("a PAX number is not a number".into()))
        };
        match key {
            b"path" => into.path = Some(value.to_vec()),
            b"linkpath" => into.link = Some(value.to_vec()),
            b"size" => into.size = Some(decimal()?),
            b"uid" => into.uid = Some(decimal()?),
            b"gid" => into.gid = Some(decimal()?),
            b"mtime" => {
                // Seconds, maybe with a fraction, maybe before 1970.
                let text = std::str::from_utf8(value).unwrap_or("");
                let whole = text.split('.').next().unwrap_or("");
                into.mtime = Some(whole.parse::<i64>().map_or(0, |t| t.max(0) as u64));
            }
            _ if key.starts_with(b"GNU.sparse.") => {
                return Err(ArchiveError::Unsupported("sparse files".into()));
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    into.xattrs.push((name.to_vec(), value.to_vec()));
                }
                // Other keys (atime, ctime, uname, charset, ...) change
                // nothing the runtime makes.
            }
        }
    }
    Ok(into)
}
// ANCHOR_END: pax

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An archive written by the `tar` crate (the reference writer).
    fn written(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o640);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(1_700_000_000);
        h
    }

    fn all(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, ArchiveError> {
        let mut archive = Archive::new(bytes);
        let mut out = Vec::new();
        while let Some(entry) = archive.next_entry()? {
            let mut data = Vec::new();
            archive.data().read_to_end(&mut data)?;
            out.push((entry, data));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes_long_names_and_pax_included() {
        let long = format!("{}/file", "d".repeat(200));
        let bytes = written(|b| {
            let mut h = header(tar::EntryType::Regular, 5);
            b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
            let mut h = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut h, "link", "x".repeat(150)).unwrap();
            let mut h = header(tar::EntryType::Directory, 0);
            b.append_data(&mut h, "dir/", &[][..]).unwrap();
            b.append_pax_extensions([("SCHILY.xattr.user.note", &b"kept"[..])])
                .unwrap();
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "x", &b"hi"[..]).unwrap();
        });
        let entries = all(&bytes).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].0.path, long.as_bytes());
        assert_eq!(entries[0].1, b"hello");
        assert_eq!(
            (entries[0].0.mode, entries[0].0.uid, entries[0].0.gid),
            (0o640, 7, 8)
        );
        assert_eq!(entries[1].0.kind, Kind::Symlink);
        assert_eq!(entries[1].0.link, "x".repeat(150).as_bytes());
        assert_eq!(entries[2].0.kind, Kind::Directory);
        assert_eq!(
            entries[3].0.xattrs,
            [(b"user.note".to_vec(), b"kept".to_vec())]
        );
        assert_eq!(entries[3].1, b"hi");
    }

    /// A raw header block with the given fields and a valid checksum.
    pub(crate) fn raw(name: &[u8], typeflag: u8, size: u64) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK];
        block[..name.len()].copy_from_slice(name);
        block[100..107].copy_from_slice(b"0000644");
        block[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        block[156] = typeflag;
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        block[148..156].copy_from_slice(b"        ");
        let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        block
    }

    #[test]
    fn a_huge_extension_header_is_refused_before_it_is_read() {
        for flag in [b'x', b'L', b'K', b'g'] {
            // It claims 8 GiB; only the header is there. Reading it whole
            // would allocate (or wait for) all of it.
            let bytes = raw(b"PaxHeaders/x", flag, (8 << 30) - 1);
            let err = all(&bytes).unwrap_err();
            assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
        }
    }

    #[test]
    fn sparse_files_and_unknown_types_are_refused() {
        let err = all(&raw(b"s", b'S', 0)).unwrap_err();
        assert_eq!(err.to_string(), "sparse files are not supported in layers");
        let err = all(&raw(b"q", b'Q', 0)).unwrap_err();
        assert!(matches!(err, ArchiveError::Unsupported(_)), "{err}");
    }

    #[test]
    fn damage_is_found() {
        let mut bytes = raw(b"f", b'0', 3);
        bytes[0] ^= 1;
        assert!(
            matches!(all(&bytes), Err(ArchiveError::Corrupt(_))),
            "checksum"
        );
        let mut bytes = raw(b"f", b'0', 3);
        bytes.extend_from_slice(b"ab");
        assert!(all(&bytes).is_err(), "truncated data");
        assert!(all(&raw(b"f", b'0', 3)[..300]).is_err(), "truncated header");
    }

    #[test]
    fn pax_size_sets_where_the_next_header_is() {
        let bytes = written(|b| {
            b.append_pax_extensions([("size", &b"3"[..])]).unwrap();
            let mut h = header(tar::EntryType::Regular, 0);
            h.set_cksum();
            b.append(&h, &b"abc"[..]).unwrap();
            let mut h = header(tar::EntryType::Regular, 1);
            b.append_data(&mut h, "second", &b"z"[..]).unwrap();
        });
        let entries = all(&bytes).unwrap();
        assert_eq!(entries[0].1, b"abc");
        assert_eq!(entries[1].0.path, b"second");
    }

    #[test]
    fn unread_data_is_skipped_and_counted() {
        let bytes = written(|b| {
            let mut h = header(tar::EntryType::Regular, 1000);
            b.append_data(&mut h, "a", &[7u8; 1000][..]).unwrap();
            let mut h = header(tar::EntryType::Regular, 1);
            b.append_data(&mut h, "b", &b"z"[..]).unwrap();
        });
        let mut archive = Archive::new(&bytes[..]);
        assert_eq!(archive.next_entry().unwrap().unwrap().path, b"a");
        let second = archive.next_entry().unwrap().unwrap();
        assert_eq!(second.path, b"b");
        assert_eq!(archive.data_bytes(), 1000);
    }
}
