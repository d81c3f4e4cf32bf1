//! The catalog saved in a file of its own when the store closes cleanly, so that the next start
//! reads one file front to back instead of the row table's pages, which lie scattered over the
//! store file among the documents (at a million unit tests with nothing in the page cache: 15 s
//! one page at a time), and takes the catalog's parts as they were instead of building them again
//! (see `catalog/dump.rs`).
//!
//! A snapshot is trusted only while nothing was written since it was taken: closing writes the
//! file, then a random mark both in it and in the store's bookkeeping table; every write
//! transaction that changes unit tests removes that mark in the same commit. So a crash, a write
//! after the snapshot, or a store file restored from a backup leaves marks that differ, and the
//! catalog is read from the rows as before. Never stale: at worst slower. (Only a simtest from
//! before snapshots, writing to the store after a newer one closed it, would not remove the
//! mark: a data dir is not to go back to an older version, as for the rows themselves.)
//!
//! Layout (integers little-endian): [`MAGIC`], mark `u64`, the catalog's parts
//! ([`Catalog::save`]), then the number of unit tests `u64`, the CRC-32 of every byte between the
//! mark and it `u32`, and [`MAGIC`] again (a file cut short or damaged is refused).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::catalog::Catalog;

pub const FILE_NAME: &str = "catalog.snapshot";
/// Changes with the layout of the catalog's parts (`catalog/dump.rs`): a file of another
/// version is not used.
const MAGIC: &[u8; 8] = b"simtcat2";
/// Buffers: large enough that reading and writing are a few system calls per megabyte.
const BUFFER: usize = 1 << 20;

/// Writes `catalog`'s rows with `mark` to [`FILE_NAME`] in `dir`, replacing any earlier one only
/// once the new one is complete and synced (a crash meanwhile leaves the old one, whose mark no
/// longer matches). Returns how many unit tests it holds.
pub fn write(dir: &Path, mark: u64, catalog: &Catalog) -> io::Result<u64> {
    let partial = dir.join(format!("{FILE_NAME}.partial"));
    let written = write_to(&partial, mark, catalog).and_then(|count| {
        std::fs::rename(&partial, dir.join(FILE_NAME))?;
        File::open(dir)?.sync_all()?;
        Ok(count)
    });
    if written.is_err() {
        // A disk that filled up gets its space back.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Writes the snapshot to `partial` and syncs it.
fn write_to(partial: &Path, mark: u64, catalog: &Catalog) -> io::Result<u64> {
    let file = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        // Names and descriptions: the owner's alone, as the store file.
        0o600,
    )
    .open(partial)?;
    let mut file = BufWriter::with_capacity(BUFFER, file);
    file.write_all(MAGIC)?;
    file.write_all(&mark.to_le_bytes())?;
    let mut out = Summed::new(file);
    let count = catalog.save(&mut out)?;
    let (mut file, sum) = (out.inner, out.sum.finalize());
    file.write_all(&count.to_le_bytes())?;
    file.write_all(&sum.to_le_bytes())?;
    file.write_all(MAGIC)?;
    file.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(count)
}

/// The catalog saved in `dir` with `mark` and how many unit tests it holds; `None` when there is
/// none, it has another mark, or it is not whole.
pub fn read(dir: &Path, mark: u64) -> io::Result<Option<(Catalog, u64)>> {
    let file = match File::open(dir.join(FILE_NAME)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let mut file = BufReader::with_capacity(BUFFER, file);
    let mut head = [0u8; 16];
    file.read_exact(&mut head)?;
    if head[..8] != MAGIC[..] || head[8..] != mark.to_le_bytes() {
        return Ok(None);
    }
    let mut input = Summed::new(file);
    let (catalog, count) = Catalog::restore(&mut input, size)?;
    let (mut file, sum) = (input.inner, input.sum.finalize());
    let mut tail = [0u8; 20];
    file.read_exact(&mut tail)?;
    if tail[..8] != count.to_le_bytes()
        || tail[8..12] != sum.to_le_bytes()
        || tail[12..] != MAGIC[..]
        || byte(&mut file).is_ok()
    {
        return Ok(None);
    }
    Ok(Some((catalog, count)))
}

/// A reader or writer that sums what passes through it.
struct Summed<T> {
    inner: T,
    sum: crc32fast::Hasher,
}

impl<T> Summed<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            sum: crc32fast::Hasher::new(),
        }
    }
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.sum.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Summed<R> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(into)?;
        self.sum.update(&into[..read]);
        Ok(read)
    }
}

fn byte(input: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    Ok(b[0])
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::store::tests::testgen::random_doc;

    /// A snapshot is read back only whole, unchanged, and with its own mark.
    #[test]
    fn only_a_whole_snapshot_with_its_mark_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let catalog = Catalog::build((0..200).map(|n| random_doc(&mut rng, n)));
        assert_eq!(write(dir.path(), 7, &catalog).unwrap(), 200);
        let used = |mark| matches!(read(dir.path(), mark), Ok(Some((_, 200))));
        assert!(used(7));
        assert!(!used(8), "another mark");
        let path = dir.path().join(FILE_NAME);
        let whole = std::fs::read(&path).unwrap();
        for at in [20, whole.len() / 2, whole.len() - 25] {
            let mut damaged = whole.clone();
            damaged[at] ^= 0x20;
            std::fs::write(&path, &damaged).unwrap();
            assert!(!used(7), "a byte changed at {at}");
        }
        for len in [10, 100, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&path, &whole[..len]).unwrap();
            assert!(!used(7), "cut at {len}");
        }
        std::fs::write(&path, [whole.as_slice(), b"x"].concat()).unwrap();
        assert!(!used(7), "a byte after the end");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(read(dir.path(), 7), Ok(None)));
    }

    /// A snapshot that cannot be put in place leaves nothing behind (no partial file filling
    /// the disk) and the place as it was.
    #[test]
    fn a_failed_save_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        // Renaming a file over a directory that holds something fails.
        std::fs::create_dir_all(dir.path().join(FILE_NAME).join("in the way")).unwrap();
        let catalog = Catalog::build(std::iter::empty());
        assert!(write(dir.path(), 1, &catalog).is_err());
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, [FILE_NAME]);
    }
}
