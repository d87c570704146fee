//! TensorFlow V2 checkpoints (`tf.train.Saver` / `tf.train.Checkpoint`),
//! read natively: `PREFIX.index` is a LevelDB-format table mapping tensor
//! names to `BundleEntryProto`s (dtype, shape, shard, offset, size, crc32c),
//! and `PREFIX.data-0000i-of-0000n` hold the bytes.
//!
//! Everything is checked: the footer magic, each block's masked crc32c, the
//! block and entry bounds, and each tensor's crc32c. TensorFlow writes the
//! index uncompressed; a compressed block is refused.
//!
//! String tensors (a SavedModel's object graph) are listed by [`read`]
//! without their bytes; [`read_strings`] reads one, with the checks of
//! their own encoding: `[varint64 length]... [masked crc32c of the
//! lengths] [bytes]...`, and an entry checksum over the lengths (each as a
//! u32, or u64 above 4 GiB), that masked crc and the bytes.

use std::path::{Path, PathBuf};

use super::{CheckpointError, DType, ErrorKind, RawTensor};

/// The table magic number (LevelDB's), the last 8 bytes of an index file.
const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;
/// Bytes after each block: compression type and masked crc32c.
const BLOCK_TRAILER_LEN: usize = 5;

/// `PREFIX.index` for a checkpoint prefix.
pub fn index_path(prefix: &Path) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

/// Finds the checkpoint prefix for a folder (through its `checkpoint` file,
/// or its only `.index` file), an `.index` path, or a prefix.
pub fn resolve_prefix(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.is_dir() {
        let state = path.join("checkpoint");
        // The state file is a few lines of text: a bigger one (or a device
        // behind a link) is not one.
        let state_text = std::fs::metadata(&state)
            .ok()
            .filter(|m| m.is_file() && m.len() <= 1 << 20)
            .and_then(|_| std::fs::read_to_string(&state).ok());
        if std::fs::metadata(&state).is_ok_and(|m| !m.is_file()) {
            return Err(CheckpointError::new(&state, ErrorKind::NotRegular));
        }
        if let Some(text) = state_text {
            let line = text.lines().find_map(|l| l.trim().strip_prefix("model_checkpoint_path:"));
            if let Some(value) = line {
                let name = PathBuf::from(value.trim().trim_matches('"'));
                // Absolute paths from the training machine: fall back to the file name here.
                let candidates = [path.join(&name), path.join(name.file_name().unwrap_or_default())];
                if let Some(p) = candidates.into_iter().find(|p| index_path(p).is_file()) {
                    return Ok(p);
                }
                return Err(CheckpointError::new(
                    &state,
                    ErrorKind::Missing(format!("{} names {}, which has no .index file", state.display(), name.display())),
                ));
            }
        }
        let entries = std::fs::read_dir(path).map_err(|e| CheckpointError::new(path, e))?;
        let mut indexes: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "index"))
            .collect();
        return match indexes.len() {
            1 => Ok(indexes.pop().unwrap().with_extension("")),
            0 => Err(CheckpointError::new(
                path,
                ErrorKind::Missing("no `checkpoint` file and no .index file in the folder".into()),
            )),
            n => Err(CheckpointError::new(
                path,
                ErrorKind::Unsupported(format!("{n} .index files and no `checkpoint` file: name one of them")),
            )),
        };
    }
    if path.extension().is_some_and(|e| e == "index") {
        return Ok(path.with_extension(""));
    }
    Ok(path.to_path_buf())
}

/// crc32c as LevelDB and TensorFlow store it (rotated and offset).
fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The parsed index of the checkpoint at `path`, with its prefix and file.
fn open(path: &Path) -> Result<(PathBuf, PathBuf, Index), CheckpointError> {
    let prefix = resolve_prefix(path)?;
    let index_file = index_path(&prefix);
    let index = super::read_regular(&index_file)?;
    let entries = parse_index(&index).map_err(|(tensor, e)| CheckpointError {
        file: index_file.clone(),
        tensor,
        kind: e,
    })?;
    Ok((prefix, index_file, entries))
}

/// The bytes of `entry` in `shard` (read from `shard_file`), after
/// checking that the entry lies inside it.
fn entry_bytes<'a>(shard_file: &Path, entry: &Entry, shard: &'a [u8]) -> Result<&'a [u8], CheckpointError> {
    let end = entry
        .offset
        .checked_add(entry.size)
        .filter(|&e| e <= shard.len() as u64)
        .ok_or_else(|| {
            CheckpointError::tensor(
                shard_file,
                &entry.name,
                ErrorKind::TooLarge {
                    what: format!("tensor at offset {}", entry.offset),
                    claimed: entry.offset as u128 + entry.size as u128,
                    available: shard.len() as u64,
                },
            )
        })?;
    Ok(&shard[entry.offset as usize..end as usize])
}

fn shard_path(prefix: &Path, shard: usize, num_shards: usize) -> PathBuf {
    PathBuf::from(format!("{}.data-{:05}-of-{:05}", prefix.display(), shard, num_shards))
}

/// Reads the string tensor `name` of the checkpoint at `path`: its
/// elements, in C order, after checking both of its checksums.
pub fn read_strings(path: &Path, name: &str) -> Result<Vec<Vec<u8>>, CheckpointError> {
    let (prefix, index_file, index) = open(path)?;
    let entry = index
        .entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| CheckpointError::tensor(&index_file, name, ErrorKind::Missing("not in the checkpoint".into())))?;
    if entry.dtype != DType::Other("string".into()) {
        return Err(CheckpointError::tensor(
            &index_file,
            name,
            ErrorKind::DType(format!("a {} tensor, not strings", entry.dtype.name())),
        ));
    }
    if entry.shard >= index.num_shards {
        return Err(CheckpointError::tensor(
            &index_file,
            name,
            ErrorKind::Corrupt(format!("shard {} of {}", entry.shard, index.num_shards)),
        ));
    }
    let shard_file = shard_path(&prefix, entry.shard, index.num_shards);
    let shard = super::read_regular(&shard_file)?;
    let bytes = entry_bytes(&shard_file, entry, &shard)?;
    let count = entry.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    decode_strings(bytes, count, entry.crc32c).map_err(|e| CheckpointError::tensor(&shard_file, name, e))
}

/// Decodes a string tensor of `count` elements stored as `bytes`, whose
/// index entry records checksum `stored`.
fn decode_strings(bytes: &[u8], count: Option<usize>, stored: u32) -> Result<Vec<Vec<u8>>, ErrorKind> {
    // Every length takes at least one byte: a count beyond the bytes is a claim.
    let count = count.filter(|&n| n <= bytes.len()).ok_or_else(|| ErrorKind::TooLarge {
        what: "string tensor's element count".into(),
        claimed: count.map_or(u128::MAX, |n| n as u128),
        available: bytes.len() as u64,
    })?;
    let mut r = Reader::new(bytes);
    let mut lengths = Vec::with_capacity(count);
    let mut crc = 0u32;
    for _ in 0..count {
        let len = r.varint()?;
        crc = match u32::try_from(len) {
            Ok(l) => crc32c::crc32c_append(crc, &l.to_le_bytes()),
            Err(_) => crc32c::crc32c_append(crc, &len.to_le_bytes()),
        };
        lengths.push(len);
    }
    let length_crc = r.bytes(4)?;
    let stored_lengths = u32::from_le_bytes(length_crc.try_into().expect("4 bytes"));
    if stored_lengths != mask(crc) {
        return Err(ErrorKind::Checksum {
            what: "string lengths".into(),
            stored: stored_lengths,
            computed: mask(crc),
        });
    }
    crc = crc32c::crc32c_append(crc, length_crc);
    let mut out = Vec::with_capacity(count);
    for len in lengths {
        let s = r.bytes(len)?;
        crc = crc32c::crc32c_append(crc, s);
        out.push(s.to_vec());
    }
    if !r.done() {
        return Err(ErrorKind::Corrupt(format!("{} bytes after the strings", bytes.len() - r.pos)));
    }
    if mask(crc) != stored {
        return Err(ErrorKind::Checksum {
            what: "string tensor".into(),
            stored,
            computed: mask(crc),
        });
    }
    Ok(out)
}

/// Reads every tensor of the checkpoint at `path` (folder, `.index` or prefix).
pub fn read(path: &Path) -> Result<Vec<RawTensor>, CheckpointError> {
    let (prefix, index_file, entries) = open(path)?;
    let mut shards: Vec<Option<Vec<u8>>> = Vec::new();
    let mut tensors = Vec::with_capacity(entries.entries.len());
    for entry in entries.entries {
        let shard_file = shard_path(&prefix, entry.shard, entries.num_shards);
        if entry.shard >= entries.num_shards {
            return Err(CheckpointError::tensor(
                &index_file,
                &entry.name,
                ErrorKind::Corrupt(format!("shard {} of {}", entry.shard, entries.num_shards)),
            ));
        }
        let Some(item) = entry.dtype.size() else {
            // Strings and other types are never weights: keep the entry, not the bytes.
            tensors.push(RawTensor {
                name: entry.name,
                shape: entry.shape,
                dtype: entry.dtype,
                data: Vec::new(),
                read: true,
            });
            continue;
        };
        if shards.len() < entries.num_shards {
            shards.resize(entries.num_shards, None);
        }
        if shards[entry.shard].is_none() {
            shards[entry.shard] = Some(super::read_regular(&shard_file)?);
        }
        let data = shards[entry.shard].as_deref().expect("just read");
        let tensor_err = |e| CheckpointError::tensor(&shard_file, &entry.name, e);
        let numel = entry.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
        let want = numel.and_then(|n| n.checked_mul(item as u64));
        if want != Some(entry.size) {
            return Err(tensor_err(ErrorKind::Shape(format!(
                "shape {:?} of {} does not take the {} bytes the index records",
                entry.shape,
                entry.dtype.name(),
                entry.size
            ))));
        }
        let end = entry
            .offset
            .checked_add(entry.size)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                tensor_err(ErrorKind::TooLarge {
                    what: format!("tensor at offset {}", entry.offset),
                    claimed: entry.offset as u128 + entry.size as u128,
                    available: data.len() as u64,
                })
            })?;
        let bytes = &data[entry.offset as usize..end as usize];
        let computed = crc32c::crc32c(bytes);
        if mask(computed) != entry.crc32c {
            return Err(tensor_err(ErrorKind::Checksum {
                what: "tensor data".into(),
                stored: entry.crc32c,
                computed: mask(computed),
            }));
        }
        tensors.push(RawTensor::new(entry.name.clone(), entry.shape, entry.dtype, bytes.to_vec()).map_err(tensor_err)?);
    }
    Ok(tensors)
}

/// One tensor's index entry.
#[derive(Debug)]
struct Entry {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    shard: usize,
    offset: u64,
    size: u64,
    crc32c: u32,
}

struct Index {
    num_shards: usize,
    entries: Vec<Entry>,
}

type IndexError = (Option<String>, ErrorKind);

fn whole(e: ErrorKind) -> IndexError {
    (None, e)
}

/// Parses a whole `.index` file.
fn parse_index(file: &[u8]) -> Result<Index, IndexError> {
    if file.len() < FOOTER_LEN {
        return Err(whole(ErrorKind::Truncated(format!(
            "{} bytes, shorter than the {FOOTER_LEN}-byte table footer",
            file.len()
        ))));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..].try_into().expect("8 bytes"));
    if magic != TABLE_MAGIC {
        return Err(whole(ErrorKind::BadMagic(format!(
            "table magic {magic:#018x}, expected {TABLE_MAGIC:#018x}"
        ))));
    }
    let mut r = Reader::new(&footer[..40]);
    let _metaindex = (r.varint().map_err(whole)?, r.varint().map_err(whole)?);
    let index_handle = (r.varint().map_err(whole)?, r.varint().map_err(whole)?);
    let index_block = block(file, index_handle, "index block").map_err(whole)?;
    let mut num_shards = None;
    let mut entries = Vec::new();
    for (_, handle) in block_entries(index_block).map_err(whole)? {
        let mut h = Reader::new(handle);
        let handle = (h.varint().map_err(whole)?, h.varint().map_err(whole)?);
        for (key, value) in block_entries(block(file, handle, "data block").map_err(whole)?).map_err(whole)? {
            let name = String::from_utf8(key).map_err(|_| whole(ErrorKind::Corrupt("tensor name is not UTF-8".into())))?;
            if name.is_empty() {
                num_shards = Some(parse_header(value).map_err(whole)?);
            } else {
                let entry = parse_entry(&name, value).map_err(|e| (Some(name.clone()), e))?;
                entries.push(entry);
            }
        }
    }
    let num_shards = num_shards.ok_or_else(|| whole(ErrorKind::Missing("bundle header (the entry with the empty key)".into())))?;
    Ok(Index { num_shards, entries })
}

/// The contents of the block at `handle`, after checking its bounds,
/// compression type and checksum.
fn block<'a>(file: &'a [u8], (offset, size): (u64, u64), what: &str) -> Result<&'a [u8], ErrorKind> {
    let end = offset
        .checked_add(size)
        .and_then(|e| e.checked_add(BLOCK_TRAILER_LEN as u64))
        .filter(|&e| e <= file.len() as u64)
        .ok_or_else(|| ErrorKind::TooLarge {
            what: format!("{what} at offset {offset}"),
            claimed: size as u128 + BLOCK_TRAILER_LEN as u128,
            available: (file.len() as u64).saturating_sub(offset),
        })?;
    let (start, end) = (offset as usize, end as usize);
    let contents = &file[start..end - BLOCK_TRAILER_LEN];
    let kind = file[end - BLOCK_TRAILER_LEN];
    let stored = u32::from_le_bytes(file[end - 4..end].try_into().expect("4 bytes"));
    let computed = mask(crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]));
    if stored != computed {
        return Err(ErrorKind::Checksum {
            what: what.into(),
            stored,
            computed,
        });
    }
    if kind != 0 {
        return Err(ErrorKind::Unsupported(format!(
            "{what} is compressed (type {kind}, 1 = snappy); TensorFlow writes checkpoint indexes uncompressed"
        )));
    }
    Ok(contents)
}

/// A table record: the full key and the value bytes.
type Record<'a> = (Vec<u8>, &'a [u8]);

/// The records of a block, keys expanded from their shared prefixes.
fn block_entries(block: &[u8]) -> Result<Vec<Record<'_>>, ErrorKind> {
    let corrupt = |m: &str| ErrorKind::Corrupt(format!("table block: {m}"));
    if block.len() < 4 {
        return Err(corrupt("shorter than its restart count"));
    }
    let restarts = u32::from_le_bytes(block[block.len() - 4..].try_into().expect("4 bytes")) as u64;
    let trailer = restarts
        .checked_mul(4)
        .and_then(|n| n.checked_add(4))
        .filter(|&n| n <= block.len() as u64)
        .ok_or_else(|| corrupt("restart array larger than the block"))?;
    let mut r = Reader::new(&block[..block.len() - trailer as usize]);
    let mut key: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    while !r.done() {
        let shared = r.varint()? as usize;
        let unshared = r.varint()?;
        let value_len = r.varint()?;
        if shared > key.len() {
            return Err(corrupt("key shares more bytes than the previous key has"));
        }
        key.truncate(shared);
        key.extend_from_slice(r.bytes(unshared)?);
        out.push((key.clone(), r.bytes(value_len)?));
    }
    Ok(out)
}

/// `BundleHeaderProto`: returns `num_shards` after checking endianness.
fn parse_header(msg: &[u8]) -> Result<usize, ErrorKind> {
    let mut r = Reader::new(msg);
    let mut shards = 1u64;
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Field::Varint(n)) => shards = n,
            (2, Field::Varint(1)) => return Err(ErrorKind::Unsupported("big-endian checkpoint".into())),
            _ => {}
        }
    }
    if shards == 0 || shards > 100_000 {
        return Err(ErrorKind::Corrupt(format!("bundle header: {shards} shards")));
    }
    Ok(shards as usize)
}

fn tf_dtype(code: u64) -> DType {
    match code {
        1 => DType::F32,
        2 => DType::F64,
        3 => DType::I32,
        9 => DType::I64,
        14 => DType::BF16,
        19 => DType::F16,
        7 => DType::Other("string".into()),
        other => DType::Other(format!("tf-dtype-{other}")),
    }
}

/// `BundleEntryProto`.
fn parse_entry(name: &str, msg: &[u8]) -> Result<Entry, ErrorKind> {
    let mut r = Reader::new(msg);
    let mut e = Entry {
        name: name.to_string(),
        dtype: DType::Other("unset".into()),
        shape: Vec::new(),
        shard: 0,
        offset: 0,
        size: 0,
        crc32c: 0,
    };
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (1, Field::Varint(d)) => e.dtype = tf_dtype(d),
            (2, Field::Bytes(shape)) => e.shape = parse_shape(shape)?,
            (3, Field::Varint(s)) => e.shard = usize::try_from(s).map_err(|_| ErrorKind::Corrupt(format!("shard id {s}")))?,
            (4, Field::Varint(o)) => e.offset = o,
            (5, Field::Varint(s)) => e.size = s,
            (6, Field::Fixed32(c)) => e.crc32c = c,
            (7, Field::Bytes(_)) => {
                return Err(ErrorKind::Unsupported(
                    "partitioned variable (slices); save it unpartitioned".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(e)
}

/// `TensorShapeProto`: the dims' sizes.
fn parse_shape(msg: &[u8]) -> Result<Vec<usize>, ErrorKind> {
    let mut r = Reader::new(msg);
    let mut dims = Vec::new();
    while let Some((field, value)) = r.field()? {
        match (field, value) {
            (2, Field::Bytes(dim)) => {
                let mut d = Reader::new(dim);
                let mut size = 0u64;
                while let Some((f, v)) = d.field()? {
                    if let (1, Field::Varint(s)) = (f, v) {
                        size = s;
                    }
                }
                // int64 on the wire: a negative (unknown) size is a huge varint.
                let size = usize::try_from(size)
                    .ok()
                    .filter(|&s| s as u64 <= i64::MAX as u64)
                    .ok_or_else(|| ErrorKind::Shape(format!("dimension {}", size as i64)))?;
                dims.push(size);
            }
            (3, Field::Varint(1)) => return Err(ErrorKind::Shape("unknown rank".into())),
            _ => {}
        }
    }
    Ok(dims)
}

/// A protobuf field value.
enum Field<'a> {
    Varint(u64),
    Fixed64,
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// A cursor over bytes with the varint and protobuf reads the index needs.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> Result<u64, ErrorKind> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| ErrorKind::Truncated("varint".into()))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ErrorKind::Corrupt("varint longer than 10 bytes".into()))
    }
    fn bytes(&mut self, n: u64) -> Result<&'a [u8], ErrorKind> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(ErrorKind::TooLarge {
                what: "length-prefixed record".into(),
                claimed: n as u128,
                available: left,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, ErrorKind> {
        if self.done() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.bytes(8)?;
                Field::Fixed64
            }
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.bytes(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes"))),
            w => return Err(ErrorKind::Corrupt(format!("protobuf wire type {w}"))),
        };
        Ok(Some((tag >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string tensor as TensorFlow's bundle writer stores it, and its entry checksum.
    fn encode(strings: &[&[u8]]) -> (Vec<u8>, u32) {
        let mut out = Vec::new();
        let mut crc = 0u32;
        for s in strings {
            let mut n = s.len() as u64;
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                out.push(if n > 0 { byte | 0x80 } else { byte });
                if n == 0 {
                    break;
                }
            }
            crc = crc32c::crc32c_append(crc, &(s.len() as u32).to_le_bytes());
        }
        let lengths = mask(crc).to_le_bytes();
        out.extend_from_slice(&lengths);
        crc = crc32c::crc32c_append(crc, &lengths);
        for s in strings {
            out.extend_from_slice(s);
            crc = crc32c::crc32c_append(crc, s);
        }
        (out, mask(crc))
    }

    #[test]
    fn string_tensors_are_checked_by_their_own_checksums() {
        let long = vec![7u8; 300];
        let (bytes, crc) = encode(&[b"graph", b"", &long]);
        assert_eq!(
            decode_strings(&bytes, Some(3), crc).unwrap(),
            vec![b"graph".to_vec(), Vec::new(), long]
        );
        // The entry checksum covers the bytes; the lengths have their own.
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(decode_strings(&flipped, Some(3), crc), Err(ErrorKind::Checksum { what, .. }) if what == "string tensor"));
        let mut bad_len = bytes.clone();
        bad_len[0] = 4;
        assert!(matches!(decode_strings(&bad_len, Some(3), crc), Err(ErrorKind::Checksum { what, .. }) if what == "string lengths"));
        // A count the bytes cannot hold is refused before anything is allocated.
        assert!(matches!(
            decode_strings(&bytes, Some(usize::MAX), crc),
            Err(ErrorKind::TooLarge { .. })
        ));
        assert!(matches!(
            decode_strings(&bytes[..bytes.len() - 1], Some(3), crc),
            Err(ErrorKind::TooLarge { .. })
        ));
        assert!(matches!(
            decode_strings(&bytes, Some(2), crc),
            Err(ErrorKind::Checksum { .. } | ErrorKind::Corrupt(_))
        ));
    }
}
