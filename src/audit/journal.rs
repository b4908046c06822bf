//! The journal beside the audit log (`<log>.journal`): a file of fixed size, filled with
//! zeros once and from then on overwritten in place, that makes each batch of records
//! durable with one synchronous write. Syncing the growing log instead costs a block
//! allocation and a size update on every batch (three device writes and a flush, not one
//! write and a flush). The log itself is synced when the journal is full; its length and
//! last hash at that point are the journal's header. At start, [`open`] puts back into
//! the log every record the journal holds beyond that point, in case the machine lost
//! power and the log lost them. It does not seal records and does not judge them: a
//! line counts only if its hash verifies and it extends the chain.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::writer::{GENESIS, unseal};
use crate::digest;

/// Two header slots, written in turn, so a torn header write leaves the other whole.
const SLOT: u64 = 512;
/// Where the records start.
const LAP_START: u64 = 4096;
/// How many bytes of records the journal holds before the log is synced and it starts
/// again from [`LAP_START`].
const LAP: u64 = 1 << 20;
/// The unit of a direct write: offsets, lengths and the buffer's address are multiples
/// of it (4 KiB covers devices with 512-byte and with 4 KiB sectors).
const BLOCK: usize = 4096;

/// The journal of one log, open for writing.
#[derive(Debug)]
pub struct Journal {
    /// Synchronous writes through the page cache: the header, and the records where the
    /// filesystem refuses direct writes.
    file: File,
    /// Synchronous writes of whole blocks straight to the device (`O_DIRECT`): no page
    /// cache to write back first, about a fifth less time and CPU per batch.
    direct: Option<Direct>,
    generation: u64,
    inode: u64,
    cursor: u64,
}

/// The journal opened for direct writes, and a buffer aligned to [`BLOCK`] whose first
/// bytes are always the written part of the block the cursor is in.
#[derive(Debug)]
struct Direct {
    file: File,
    buf: Vec<u8>,
}

impl Direct {
    fn open(path: &Path) -> Option<Self> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DSYNC | libc::O_DIRECT)
            .open(path)
            .ok()?;
        Some(Self {
            file,
            buf: Vec::new(),
        })
    }

    /// The first `len` bytes of `buf` from an address that is a multiple of [`BLOCK`]
    /// (`buf` is allocated [`BLOCK`] bytes longer than it needs for that).
    fn region(buf: &mut [u8], len: usize) -> Option<&mut [u8]> {
        if len == 0 {
            return Some(&mut []);
        }
        let at = (BLOCK - buf.as_ptr() as usize % BLOCK) % BLOCK;
        buf.get_mut(at..at + len)
    }

    /// Write `batch` at `cursor`: the block `cursor` is in is written again whole, with
    /// what it already held (kept at the front of the buffer), and the last block is
    /// padded with zeros (a record starts with `{`, so zeros end the journal's records).
    fn write(&mut self, batch: &[u8], cursor: u64) -> std::io::Result<()> {
        let short = || std::io::Error::other("the audit journal's write buffer is short");
        let held = usize::try_from(cursor % BLOCK as u64).map_err(std::io::Error::other)?;
        let used = held + batch.len();
        let size = used.div_ceil(BLOCK) * BLOCK;
        if self.buf.len() < size + BLOCK {
            let kept = Self::region(&mut self.buf, held)
                .ok_or_else(short)?
                .to_vec();
            self.buf = vec![0u8; (size + BLOCK).next_power_of_two()];
            Self::region(&mut self.buf, held)
                .ok_or_else(short)?
                .copy_from_slice(&kept);
        }
        let region = Self::region(&mut self.buf, size).ok_or_else(short)?;
        let (_, rest) = region.split_at_mut_checked(held).ok_or_else(short)?;
        let (fresh, pad) = rest.split_at_mut_checked(batch.len()).ok_or_else(short)?;
        fresh.copy_from_slice(batch);
        pad.fill(0);
        self.file.write_all_at(region, cursor - held as u64)?;
        // The written part of the last block goes to the front, for the next batch.
        region.copy_within(used / BLOCK * BLOCK..used, 0);
        Ok(())
    }
}

/// What the log was when it was last synced.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    journal: u32,
    generation: u64,
    /// The log this journal belongs to: a log moved aside and started anew is another.
    inode: u64,
    /// The log's length when it was last synced...
    synced: u64,
    /// ...and the hash of its last record then ([`GENESIS`] when empty).
    head: String,
}

/// The log's end after opening it: its length, the hash of its last record, and its
/// journal (none for a log that is not a regular file, such as a device: each batch is
/// then synced in the log itself).
pub struct Opened {
    pub len: u64,
    pub head: String,
    pub journal: Option<Journal>,
    /// A torn last line found with no journal to repair it from: where it was moved, and
    /// the SHA-256 of its bytes.
    pub torn: Option<(PathBuf, String)>,
}

pub fn path_of(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Open the journal of `log` (creating it if there is none), after putting back into the
/// log what the journal holds beyond the log's last sync. Refuses a log cut below its
/// last sync, a log whose records after it disagree with the journal, and a log whose
/// last line is damaged when there is no journal to repair it from.
pub fn open(log_path: &Path, log: &mut File) -> Result<Opened, String> {
    let meta = log.metadata().map_err(|e| e.to_string())?;
    let len = meta.len();
    if !meta.is_file() {
        let head = hash_before(log, len)?;
        return Ok(Opened {
            len,
            head,
            journal: None,
            torn: None,
        });
    }
    let path = path_of(log_path);
    let header = match File::open(&path) {
        Ok(mut file) => Some(read_header(&mut file, &path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let header = match header {
        Some(h) if h.inode == meta.ino() => Some(h),
        Some(_) => {
            set_aside(&path)?;
            None
        }
        None => None,
    };
    let mut torn = None;
    let (len, head, generation) = match header {
        Some(h) => {
            let (len, head) = recover(log_path, log, &path, &h)?;
            log.sync_data().map_err(|e| e.to_string())?;
            (len, head, h.generation)
        }
        None => {
            // A last line without its newline was never acknowledged (only an OS crash in
            // the middle of a write leaves one): moved aside, the log goes on without it.
            let end = last_line_end(log, len)?;
            if end < len {
                let mut fragment = Vec::new();
                log.seek(SeekFrom::Start(end)).map_err(|e| e.to_string())?;
                log.read_to_end(&mut fragment).map_err(|e| e.to_string())?;
                let aside = keep_damaged_end(log_path, log, end)?;
                log.set_len(end).map_err(|e| e.to_string())?;
                torn = Some((aside, digest::sha256(&fragment)));
            }
            let len = end;
            let head = hash_before(log, len)?;
            log.sync_data().map_err(|e| e.to_string())?;
            create(&path, first(meta.ino(), len, &head))?;
            (len, head, 1)
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut journal = Journal {
        file,
        direct: Direct::open(&path),
        generation,
        inode: meta.ino(),
        cursor: LAP_START,
    };
    journal.mark_synced(len, &head).map_err(|e| e.to_string())?;
    Ok(Opened {
        len,
        head,
        journal: Some(journal),
        torn,
    })
}

impl Journal {
    /// Make `batch`, just written at the end of `log` (now `len` bytes, its last record
    /// `head`), durable: one synchronous write into the journal, or, when the journal is
    /// full, a sync of the log itself, which then starts the journal again.
    pub fn record(
        &mut self,
        log: &File,
        batch: &[u8],
        len: u64,
        head: &str,
    ) -> std::io::Result<()> {
        let size = batch.len() as u64;
        if self.cursor + size > LAP_START + LAP {
            log.sync_data()?;
            return self.mark_synced(len, head);
        }
        match &mut self.direct {
            Some(direct) => match direct.write(batch, self.cursor) {
                // A filesystem that opened the journal for direct writes and then refuses
                // them (alignment it will not take): from now on, through the page cache.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!("direct writes refused for the audit journal: {e}");
                    self.direct = None;
                    self.file.write_all_at(batch, self.cursor)?;
                }
                other => other?,
            },
            None => self.file.write_all_at(batch, self.cursor)?,
        }
        self.cursor += size;
        Ok(())
    }

    /// Record that the log is durable up to `len` bytes, ending with `head`; the records
    /// in the journal are no longer needed.
    fn mark_synced(&mut self, len: u64, head: &str) -> std::io::Result<()> {
        let header = Header {
            journal: 1,
            generation: self.generation + 1,
            inode: self.inode,
            synced: len,
            head: head.to_string(),
        };
        let (at, slot) = header.slot()?;
        self.file.write_all_at(&slot, at)?;
        self.generation = header.generation;
        self.cursor = LAP_START;
        Ok(())
    }
}

impl Header {
    /// Where this header goes, and its bytes there.
    fn slot(&self) -> std::io::Result<(u64, Vec<u8>)> {
        let mut slot = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        slot.push(b'\n');
        if slot.len() as u64 > SLOT {
            return Err(std::io::Error::other("journal header too long"));
        }
        slot.resize(SLOT as usize, 0);
        Ok(((self.generation % 2) * SLOT, slot))
    }
}

/// The header of a new journal, for a log synced up to `len` bytes ending with `head`.
fn first(inode: u64, len: u64, head: &str) -> Header {
    Header {
        journal: 1,
        generation: 1,
        inode,
        synced: len,
        head: head.to_string(),
    }
}

/// The newest whole header of the two slots.
fn read_header(file: &mut File, path: &Path) -> Result<Header, String> {
    let mut slots = vec![0u8; (2 * SLOT) as usize];
    file.read_exact(&mut slots).map_err(|e| {
        format!(
            "the audit journal `{}` is damaged ({e}): check the log with `mcp-warden audit verify`, then move the journal aside",
            path.display()
        )
    })?;
    slots
        .chunks(SLOT as usize)
        .filter_map(|slot| {
            let line = slot.split(|b| *b == b'\n').next()?;
            serde_json::from_slice::<Header>(line).ok()
        })
        .filter(|h| h.journal == 1)
        .max_by_key(|h| h.generation)
        .ok_or_else(|| {
            format!(
                "the audit journal `{}` has no readable header: check the log with `mcp-warden audit verify`, then move the journal aside",
                path.display()
            )
        })
}

/// A journal left by a log that was moved aside: keep it, beside, for whoever looks
/// into that log, and start a new one.
fn set_aside(path: &Path) -> Result<(), String> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{}", now_secs()));
    std::fs::rename(path, &aside)
        .map_err(|e| format!("cannot move `{}` aside: {e}", path.display()))?;
    tracing::warn!(
        journal = %path.display(),
        kept = %PathBuf::from(&aside).display(),
        "the audit journal belongs to another log (this one was moved aside or replaced); kept it and started a new one"
    );
    Ok(())
}

/// A journal of zeros under its first header, made whole under another name first so
/// that a crash never leaves one half made.
fn create(path: &Path, header: Header) -> Result<(), String> {
    let err =
        |e: std::io::Error| format!("cannot create the audit journal `{}`: {e}", path.display());
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let mut file = File::create(&part).map_err(err)?;
    file.write_all(&vec![0u8; (LAP_START + LAP) as usize])
        .map_err(err)?;
    let (at, slot) = header.slot().map_err(err)?;
    file.write_all_at(&slot, at).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&part, path).map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(())
}

/// Bring the log up to date from its journal; its new length and last hash. Both are
/// read a line at a time: the journal's records since the header start at [`LAP_START`]
/// in chain order, and what follows them (left from earlier laps) extends older records,
/// never this chain.
fn recover(
    log_path: &Path,
    log: &mut File,
    path: &Path,
    header: &Header,
) -> Result<(u64, String), String> {
    let len = log.metadata().map_err(|e| e.to_string())?.len();
    if len < header.synced {
        return Err(format!(
            "it is {len} bytes long but held {} when last synced: lines were cut from its end. Restore it, or move it and `{}` aside to start a new log",
            header.synced,
            path.display()
        ));
    }
    if hash_before(log, header.synced).ok().as_deref() != Some(header.head.as_str()) {
        return Err(format!(
            "its record at byte {} is not the one its journal `{}` recorded there: run `mcp-warden audit verify`, then move both aside",
            header.synced,
            path.display()
        ));
    }
    log.seek(SeekFrom::Start(header.synced))
        .map_err(|e| e.to_string())?;
    let (mut in_log, mut kept) = (Vec::new(), 0u64);
    walk(BufReader::new(&mut *log), &header.head, |line, hash| {
        in_log.push(hash.to_string());
        kept += line.len() as u64;
        true
    })?;
    let mut journal =
        File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    journal
        .seek(SeekFrom::Start(LAP_START))
        .map_err(|e| e.to_string())?;
    let (mut missing, mut differs, mut at) = (Vec::new(), None, 0);
    walk(
        BufReader::new(journal).take(LAP),
        &header.head,
        |line, hash| {
            match in_log.get(at) {
                Some(same) if same == hash => {}
                Some(_) => differs = Some(at),
                None => missing.push((line.to_vec(), hash.to_string())),
            }
            at += 1;
            differs.is_none()
        },
    )?;
    if let Some(at) = differs {
        return Err(format!(
            "its record {} after byte {} differs from the one in its journal `{}`: run `mcp-warden audit verify`, then move both aside",
            at + 1,
            header.synced,
            path.display()
        ));
    }
    let end = header.synced + kept;
    let head = missing
        .last()
        .map(|(_, hash)| hash.clone())
        .or_else(|| in_log.last().cloned())
        .unwrap_or_else(|| header.head.clone());
    if end == len && missing.is_empty() {
        return Ok((len, head));
    }
    if end < len {
        keep_damaged_end(log_path, log, end)?;
    }
    log.set_len(end).map_err(|e| e.to_string())?;
    for (line, _) in &missing {
        log.write_all(line).map_err(|e| e.to_string())?;
    }
    log.sync_data().map_err(|e| e.to_string())?;
    if !missing.is_empty() {
        tracing::warn!(
            records = missing.len(),
            "restored audit records from the journal that the log had lost (the machine stopped before the log was synced)"
        );
    }
    let restored: u64 = missing.iter().map(|(l, _)| l.len() as u64).sum();
    Ok((end + restored, head))
}

/// Copy the log from byte `end` on (a record never acknowledged, cut short or damaged)
/// into a file beside it, before it is cut off.
fn keep_damaged_end(log_path: &Path, log: &mut File, end: u64) -> Result<PathBuf, String> {
    let mut damaged = Vec::new();
    log.seek(SeekFrom::Start(end)).map_err(|e| e.to_string())?;
    log.read_to_end(&mut damaged).map_err(|e| e.to_string())?;
    let mut aside = log_path.as_os_str().to_owned();
    aside.push(format!(".damaged-{}", now_secs()));
    std::fs::write(&aside, &damaged)
        .map_err(|e| format!("cannot keep the damaged end of the log aside: {e}"))?;
    tracing::warn!(
        bytes = damaged.len(),
        kept = %PathBuf::from(&aside).display(),
        "the audit log ended in a damaged or unfinished record (never acknowledged); moved it aside"
    );
    Ok(PathBuf::from(aside))
}

/// Where the log's last whole line ends: `len` when it ends with a newline, otherwise just
/// after the last newline (0 when there is none).
fn last_line_end(file: &mut File, len: u64) -> Result<u64, String> {
    let (start, tail) = read_back(file, len, |t| t.contains(&b'\n'))?;
    Ok(tail
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| start + at as u64 + 1))
}

/// The bytes of `file` before `end`, read backwards 64 KiB at a time until `enough` says
/// so (or the file's start): where they start, and the bytes.
fn read_back(
    file: &mut File,
    end: u64,
    enough: impl Fn(&[u8]) -> bool,
) -> Result<(u64, Vec<u8>), String> {
    let (mut pos, mut tail) = (end, Vec::new());
    while pos > 0 {
        let step = pos.min(64 * 1024);
        pos -= step;
        let mut chunk = vec![0u8; usize::try_from(step).map_err(|e| e.to_string())?];
        file.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        file.read_exact(&mut chunk).map_err(|e| e.to_string())?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        if enough(&tail) {
            break;
        }
    }
    Ok((pos, tail))
}

/// A whole line's own hash and its `prev`, if its hash verifies.
fn sealed(line: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Prev {
        prev: String,
    }
    let (body, hash) = unseal(line.strip_suffix(b"\n")?)?;
    if digest::sha256(&body) != hash {
        return None;
    }
    let prev = serde_json::from_slice::<Prev>(&body).ok()?.prev;
    Some((hash.to_string(), prev))
}

/// Read whole lines in order while each verifies and extends the chain from `head`,
/// handing each (with its newline) and its hash to `each`, which returns whether to go on.
fn walk(
    mut reader: impl BufRead,
    head: &str,
    mut each: impl FnMut(&[u8], &str) -> bool,
) -> Result<(), String> {
    let (mut last, mut line) = (head.to_string(), Vec::new());
    loop {
        // A record starts with `{`; zeros (a journal's unused end, a hole) start none.
        if reader.fill_buf().map_err(|e| e.to_string())?.first() != Some(&b'{') {
            return Ok(());
        }
        line.clear();
        reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        match sealed(&line) {
            Some((hash, prev)) if prev == last && each(&line, &hash) => last = hash,
            _ => return Ok(()),
        }
    }
}

/// The hash of the record that ends at byte `end`, after checking that its line is
/// whole and intact; [`GENESIS`] at 0.
pub fn hash_before(file: &mut File, end: u64) -> Result<String, String> {
    if end == 0 {
        return Ok(GENESIS.to_string());
    }
    let (_, tail) = read_back(file, end, |t| t.iter().rev().skip(1).any(|b| *b == b'\n'))?;
    let Some(stripped) = tail.strip_suffix(b"\n") else {
        return Err("its last line is incomplete: run `mcp-warden audit verify` and move the damaged log aside".into());
    };
    let last = stripped.rsplit(|b| *b == b'\n').next().unwrap_or_default();
    match unseal(last) {
        Some((body, hash)) if digest::sha256(&body) == hash => Ok(hash.to_string()),
        _ => Err("its last record does not verify: run `mcp-warden audit verify` and move the damaged log aside".into()),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::numbers;
    use crate::audit::{AuditLog, verify};
    use serde_json::{Map, Value, json};

    /// Write records numbered `from..to`, each with `pad` bytes of payload, and close.
    async fn write(path: &Path, from: u64, to: u64, pad: usize) {
        let log = AuditLog::open(path).unwrap();
        for n in from..to {
            let fields: Map<String, Value> = json!({"n": n, "pad": "x".repeat(pad)})
                .as_object()
                .cloned()
                .unwrap();
            log.event("test", fields).await.unwrap();
        }
        log.flush().await.unwrap();
    }

    fn header(log: &Path) -> Header {
        read_header(&mut File::open(path_of(log)).unwrap(), log).unwrap()
    }

    fn cut(path: &Path, len: u64) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    fn set_aside_files(dir: &Path, infix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(infix))
            .collect()
    }

    /// A machine that loses power loses what the log had not synced: anything from
    /// nothing to a record cut anywhere. Every acknowledged record comes back from the
    /// journal, in order, and the chain goes on; what was cut mid-record is kept aside.
    #[tokio::test]
    async fn every_acknowledged_record_survives_losing_the_unsynced_end_of_the_log() {
        let probe = tempfile::tempdir().unwrap();
        let path = probe.path().join("audit.jsonl");
        write(&path, 0, 6, 40).await;
        let full = std::fs::read(&path).unwrap();
        let mut ends = vec![0];
        ends.extend(
            full.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i as u64 + 1),
        );
        // Every record boundary, one byte either side of it, and the middle of each record.
        let mut cuts: Vec<u64> = ends
            .windows(2)
            .flat_map(|w| [w[0], w[0] + 1, (w[0] + w[1]) / 2, w[1] - 1])
            .collect();
        cuts.push(full.len() as u64);
        for at in cuts {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            write(&path, 0, 6, 40).await;
            assert_eq!(header(&path).synced, 0, "nothing synced in the log yet");
            cut(&path, at);
            write(&path, 6, 8, 40).await;
            assert_eq!(
                numbers(&path),
                (0..8).collect::<Vec<_>>(),
                "cut at byte {at}"
            );
            verify(&path).unwrap();
            let mid_record = !ends.contains(&at);
            assert_eq!(
                set_aside_files(dir.path(), ".damaged-").len(),
                usize::from(mid_record),
                "cut at byte {at}"
            );
        }
    }

    /// A hole of zeros where the log lost a page in the middle of its unsynced end, with
    /// records after it: the journal fills it.
    #[tokio::test]
    async fn a_hole_in_the_unsynced_end_is_filled_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(&path, 0, 20, 100).await;
        let mut bytes = std::fs::read(&path).unwrap();
        let (from, to) = (bytes.len() / 3, bytes.len() / 2);
        bytes[from..to].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        write(&path, 20, 21, 100).await;
        assert_eq!(numbers(&path), (0..21).collect::<Vec<_>>());
        verify(&path).unwrap();
    }

    /// Past a full journal the log is synced and the journal starts again; losing the
    /// log's unsynced end then still loses nothing, across several laps.
    #[tokio::test]
    async fn records_survive_across_many_laps_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(&path, 0, 700, 10_000).await;
        let synced = header(&path).synced;
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            synced > 5 * LAP && synced < len,
            "several laps, and records after the last: {synced} of {len}"
        );
        cut(&path, synced);
        write(&path, 700, 701, 10).await;
        assert_eq!(numbers(&path), (0..701).collect::<Vec<_>>());
        verify(&path).unwrap();
    }

    /// Records cut from below the point the log was last synced cannot be a crash: the
    /// gateway refuses to start on that log and says so, whole lines or not.
    #[tokio::test]
    async fn a_log_cut_below_its_last_sync_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(&path, 0, 10, 10).await;
        // Opened again: the log is synced whole and the journal says so.
        drop(AuditLog::open(&path).unwrap());
        let full = std::fs::read(&path).unwrap();
        let synced = header(&path).synced;
        assert_eq!(synced, full.len() as u64);
        let last_line = full[..full.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap() as u64
            + 1;
        for at in [synced - 1, last_line, 0] {
            cut(&path, at);
            let err = AuditLog::open(&path).err().unwrap().to_string();
            assert!(err.contains("lines were cut from its end"), "{err}");
            std::fs::write(&path, &full).unwrap();
        }
    }

    /// A record after the last sync that differs from the journal's (an edit, or a
    /// record made up and sealed again) is refused, not repaired and not believed.
    #[tokio::test]
    async fn a_log_that_disagrees_with_its_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(&path, 0, 5, 10).await;
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let last: Value = serde_json::from_str(lines[4]).unwrap();
        let mut forged = last.as_object().unwrap().clone();
        forged.remove("hash");
        let prev = forged.remove("prev").unwrap();
        forged.insert("n".into(), json!(99));
        let forged = crate::audit::AuditRecord::Event(forged);
        let (line, _) = super::super::writer::seal(&forged, prev.as_str().unwrap()).unwrap();
        let line = String::from_utf8(line).unwrap();
        lines[4] = line.trim_end();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        verify(&path).unwrap(); // the chain alone cannot tell
        let err = AuditLog::open(&path).err().unwrap().to_string();
        assert!(err.contains("differs from the one in its journal"), "{err}");
    }

    /// Direct writes rewrite the block the cursor is in: whatever the batch sizes (within
    /// a block, up to its end, across several), the journal holds exactly the batches in
    /// order, and zeros after them. On the disk the build is on, which takes direct writes.
    #[test]
    fn direct_writes_keep_every_batch_whole_across_block_boundaries() {
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, vec![0u8; (LAP_START + LAP) as usize]).unwrap();
        let mut direct = Direct::open(&path).expect("this filesystem takes direct writes");
        let (mut cursor, mut expected) = (LAP_START, Vec::new());
        let sizes = [
            1,
            100,
            BLOCK - 101,
            BLOCK,
            3,
            2 * BLOCK + 7,
            5000,
            BLOCK - 5000 % BLOCK,
        ];
        for (i, size) in sizes.into_iter().enumerate() {
            let batch: Vec<u8> = (0..size).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            direct.write(&batch, cursor).unwrap();
            cursor += size as u64;
            expected.extend_from_slice(&batch);
            let journal = std::fs::read(&path).unwrap();
            let start = LAP_START as usize;
            assert_eq!(
                &journal[start..start + expected.len()],
                &expected[..],
                "batch {i}"
            );
            let rest = &journal[start + expected.len()..];
            assert!(rest.iter().all(|b| *b == 0), "zeros after batch {i}");
        }
    }

    /// Where direct writes are refused, the journal is written through the page cache:
    /// the same bytes at the same places.
    #[test]
    fn without_direct_writes_the_journal_holds_the_same_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (log_path, path) = (dir.path().join("log"), dir.path().join("j"));
        std::fs::write(&path, vec![0u8; (LAP_START + LAP) as usize]).unwrap();
        let log = File::create(&log_path).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let mut journal = Journal {
            file,
            direct: None,
            generation: 1,
            inode: 0,
            cursor: LAP_START,
        };
        let batches: [&[u8]; 3] = [b"{\"a\":1}\n", &[b'x'; 5000], b"{\"b\":2}\n"];
        for batch in batches {
            journal.record(&log, batch, 0, GENESIS).unwrap();
        }
        let start = LAP_START as usize;
        let expected = batches.concat();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(&written[start..start + expected.len()], &expected[..]);
        assert!(written[start + expected.len()..].iter().all(|b| *b == 0));
    }

    /// A log moved aside and started anew is another log: its predecessor's journal is
    /// kept beside it, and the new log starts its own chain.
    #[tokio::test]
    async fn a_new_log_sets_the_old_journal_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(&path, 0, 5, 10).await;
        std::fs::rename(&path, dir.path().join("old.jsonl")).unwrap();
        write(&path, 5, 7, 10).await;
        assert_eq!(numbers(&path), [5, 6]);
        verify(&path).unwrap();
        assert_eq!(set_aside_files(dir.path(), ".journal.").len(), 1);
    }
}
