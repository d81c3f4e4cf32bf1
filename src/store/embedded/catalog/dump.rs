//! The catalog as bytes, for its snapshot (`super::super::snapshot`): each org's parts as they
//! are in memory (rows, strings, interned values, postings, orders, search grams), so a start
//! reads them instead of rebuilding them. Rebuilding from the rows (decode, intern, post, sort)
//! took 2.4 s at 1M unit tests on the 2-core machine, and the search grams another 80 s in the
//! background, during which searches read every candidate's text; reading the parts takes
//! 0.35–0.45 s, grams included.
//!
//! Layout (integers little-endian; a block is a `u32` byte length and its bytes; a bitmap is a
//! block of roaring's serialized form): per org `1u8`, its id (block), then its parts in the order
//! [`save_org`] writes them; `0u8` after the last org.
//!
//! The snapshot's checksum is checked only after everything is read, so nothing read here is
//! trusted to index anything: every number that points into a table, a string or the rows is
//! checked, and a damaged length costs what the file holds, never a larger allocation. Any
//! change to these parts or to the orders' sorting needs a new snapshot magic: an older file
//! is then not used (the next start reads the rows once).

use std::collections::HashMap;
use std::hash::Hash;
use std::io::{self, Read, Write};

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::{Catalog, Extras, GramIndex, Interner, OrgIndex, Postings, Row};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UserInfo};

/// Bytes of a row: id, two timestamps, eight numbers, the deleted flag.
const ROW_BYTES: usize = DELETED_AT + 1;

impl Catalog {
    /// Writes every org's parts to `out`; returns how many unit tests they hold.
    pub fn save(&self, out: &mut impl Write) -> io::Result<u64> {
        let mut count = 0;
        for (org_id, org) in &self.orgs {
            out.write_all(&[1])?;
            put_block(out, org_id.as_str().as_bytes())?;
            save_org(out, org)?;
            count += org.all.len();
        }
        out.write_all(&[0])?;
        Ok(count)
    }

    /// The catalog [`Catalog::save`] wrote to `input` and how many unit tests it holds. `size`
    /// bounds what a damaged count may reserve. Parts that do not fit together are an
    /// `InvalidData` error.
    pub fn restore(input: impl Read, size: u64) -> io::Result<(Catalog, u64)> {
        let mut input = Input { inner: input, size };
        let mut catalog = Catalog::default();
        let mut count = 0;
        while input.byte()? == 1 {
            let org_id = OrgId::from(input.string()?);
            let org = restore_org(&mut input)?;
            count += org.all.len();
            catalog.orgs.insert(org_id, org);
        }
        Ok((catalog, count))
    }
}

fn save_org(out: &mut impl Write, org: &OrgIndex) -> io::Result<()> {
    // Written a row at a time (through the caller's buffer): as one block, 61 MB more at 1M.
    put_u32(out, org.rows.len() * ROW_BYTES)?;
    for row in &org.rows {
        out.write_all(&row_bytes(row))?;
    }
    put_block(out, org.texts.as_bytes())?;
    out.write_all(&(org.garbage as u64).to_le_bytes())?;
    let refs: Vec<u8> = org.refs.values.iter().flat_map(|id| id.bytes()).collect();
    put_block(out, &refs)?;
    put_u32(out, org.creators.values.len())?;
    for creator in &org.creators.values {
        put_block(out, creator.org_id.as_str().as_bytes())?;
        put_block(out, creator.user_id.as_str().as_bytes())?;
    }
    put_u32(out, org.words.values.len())?;
    for word in &org.words.values {
        put_block(out, word.as_bytes())?;
    }
    let mut extras = Vec::new();
    for e in &org.extras.values {
        extras.push(e.metrics.len() as u32);
        extras.extend_from_slice(&e.metrics);
        extras.push(e.tags.len() as u32);
        for &(key, value) in &e.tags {
            extras.extend([key, value.map_or(0, |v| v + 1)]);
        }
    }
    put_u32(out, org.extras.values.len())?;
    put_block(out, &words_bytes(&extras))?;
    let mut buffer = Vec::new();
    put_bitmap(out, &org.all, &mut buffer)?;
    put_bitmap(out, &org.deleted, &mut buffer)?;
    for (postings, _) in keyed_postings(org) {
        put_u32(out, postings.0.len())?;
        for (&key, rows) in &postings.0 {
            put_u32(out, key as usize)?;
            put_bitmap(out, rows, &mut buffer)?;
        }
    }
    put_u32(out, org.by_tag.0.len())?;
    for (&(key, value), rows) in &org.by_tag.0 {
        put_u32(out, key as usize)?;
        put_u32(out, value.map_or(0, |v| v as usize + 1))?;
        put_bitmap(out, rows, &mut buffer)?;
    }
    let (indexed, grams) = org.grams.parts();
    put_u32(out, indexed as usize)?;
    put_u32(out, grams.len())?;
    for (&gram, rows) in grams {
        put_u32(out, gram as usize)?;
        put_bitmap(out, rows, &mut buffer)?;
    }
    for order in &org.orders {
        put_block(out, &words_bytes(order))?;
    }
    Ok(())
}

fn restore_org(input: &mut Input<impl Read>) -> io::Result<OrgIndex> {
    let rows = input.rows()?;
    let texts = String::from_utf8(input.block()?).map_err(invalid)?;
    let garbage = usize::try_from(input.u64()?).map_err(invalid)?;
    let block = input.block()?;
    if !block.len().is_multiple_of(12) {
        return Err(invalid("refs"));
    }
    let refs = interner(
        block
            .chunks_exact(12)
            .map(|b| ObjectIdHex::from_bytes(b.try_into().expect("chunks of 12 bytes"))),
    );
    let mut creators = Vec::new();
    for _ in 0..input.count()? {
        let org_id = input.string()?;
        let user_id = input.string()?;
        creators.push(UserInfo {
            org_id: org_id.into(),
            user_id: user_id.into(),
        });
    }
    let creators = interner(creators);
    let mut words = Vec::new();
    for _ in 0..input.count()? {
        words.push(input.string()?);
    }
    let words = interner(words);
    let extras_count = input.count()?;
    let extras = extras_of(
        &input.block()?,
        extras_count,
        refs.values.len(),
        words.values.len(),
    )?;
    let extras = interner(extras);
    let all = input.bitmap()?;
    let deleted = input.bitmap()?;
    let mut org = OrgIndex {
        rows,
        texts,
        garbage,
        refs,
        creators,
        words,
        extras,
        all,
        deleted,
        ..OrgIndex::default()
    };
    for postings in keyed_postings_mut(&mut org) {
        for _ in 0..input.count()? {
            let key = input.u32()?;
            postings.0.insert(key, input.bitmap()?);
        }
    }
    for _ in 0..input.count()? {
        let key = input.u32()?;
        let value = input.u32()?.checked_sub(1);
        org.by_tag.0.insert((key, value), input.bitmap()?);
    }
    let indexed = input.u32()?;
    let mut grams = FxHashMap::default();
    for _ in 0..input.count()? {
        let gram = input.u32()?;
        grams.insert(gram, input.bitmap()?);
    }
    org.grams = GramIndex::from_parts(indexed, grams);
    for order in &mut org.orders {
        *order = u32s(&input.block()?)?;
    }
    fits(&org)?;
    Ok(org)
}

/// Whether every number of `org` that points somewhere points inside: what a query reads
/// unchecked.
fn fits(org: &OrgIndex) -> io::Result<()> {
    let rows = org.rows.len();
    let (refs, creators, words, extras) = (
        org.refs.values.len(),
        org.creators.values.len(),
        org.words.values.len(),
        org.extras.values.len(),
    );
    let below = |n: u32, len: usize| (n as usize) < len;
    let texts = &org.texts;
    let strings_fit = |row: &Row| {
        let start = row.strings as usize;
        let name_end = start + row.name_len as usize;
        let end = name_end + row.text_len as usize;
        end <= texts.len()
            && [start, name_end, end]
                .into_iter()
                .all(|at| texts.is_char_boundary(at))
    };
    let rows_fit = org.rows.iter().all(|row| {
        below(row.service, refs)
            && below(row.persona, refs)
            && below(row.scenario, refs)
            && below(row.creator, creators)
            && below(row.extras, extras)
            && strings_fit(row)
    });
    let slots_fit = |bitmap: &RoaringBitmap| bitmap.max().is_none_or(|s| below(s, rows));
    let postings_fit = |postings: &Postings<u32>, values: usize| {
        (postings.0.iter()).all(|(&key, slots)| below(key, values) && slots_fit(slots))
    };
    let (indexed, grams) = org.grams.parts();
    let fit = rows_fit
        && slots_fit(&org.all)
        && slots_fit(&org.deleted)
        && keyed_postings(org)
            .into_iter()
            .all(|(postings, values)| postings_fit(postings, values))
        && (org.by_tag.0.iter()).all(|(&(key, value), slots)| {
            below(key, words) && value.is_none_or(|v| below(v, words)) && slots_fit(slots)
        })
        && indexed as usize <= rows
        && grams
            .values()
            .all(|slots| slots.max().is_none_or(|s| s < indexed))
        && (org.orders.iter()).all(|order| order.iter().all(|&s| below(s, rows)))
        && org.garbage <= texts.len();
    if fit {
        Ok(())
    } else {
        Err(invalid("a number points outside its table"))
    }
}

/// The postings keyed by an interned value, in the snapshot's order, each with the length of the
/// table its keys index; [`keyed_postings_mut`] lists them in the same order.
fn keyed_postings(org: &OrgIndex) -> [(&Postings<u32>, usize); 6] {
    let (refs, creators, words) = (
        org.refs.values.len(),
        org.creators.values.len(),
        org.words.values.len(),
    );
    [
        (&org.by_service, refs),
        (&org.by_persona, refs),
        (&org.by_scenario, refs),
        (&org.by_metric, refs),
        (&org.by_creator, creators),
        (&org.by_tag_key, words),
    ]
}

fn keyed_postings_mut(org: &mut OrgIndex) -> [&mut Postings<u32>; 6] {
    [
        &mut org.by_service,
        &mut org.by_persona,
        &mut org.by_scenario,
        &mut org.by_metric,
        &mut org.by_creator,
        &mut org.by_tag_key,
    ]
}

// Where a row's parts sit in its record; [`row_bytes`] and [`row_of`] share them.
const ID_AT: usize = 0;
const CREATED_AT: usize = 12;
const UPDATED_AT: usize = 20;
/// Eight `u32`s, in the order of [`row_numbers`].
const NUMBERS_AT: usize = 28;
const DELETED_AT: usize = 60;

/// A row's eight numbers, in their record's order.
fn row_numbers(row: &Row) -> [u32; 8] {
    [
        row.service,
        row.persona,
        row.scenario,
        row.creator,
        row.extras,
        row.strings,
        row.name_len,
        row.text_len,
    ]
}

fn row_bytes(row: &Row) -> [u8; ROW_BYTES] {
    let mut b = [0u8; ROW_BYTES];
    b[ID_AT..CREATED_AT].copy_from_slice(&row.id.bytes());
    b[CREATED_AT..UPDATED_AT].copy_from_slice(&row.created_at.millis().to_le_bytes());
    b[UPDATED_AT..NUMBERS_AT].copy_from_slice(&row.updated_at.millis().to_le_bytes());
    for (at, n) in (NUMBERS_AT..).step_by(4).zip(row_numbers(row)) {
        b[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    b[DELETED_AT] = u8::from(row.is_deleted);
    b
}

fn row_of(b: &[u8]) -> Row {
    let i64_at = |at: usize| i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let [
        service,
        persona,
        scenario,
        creator,
        extras,
        strings,
        name_len,
        text_len,
    ] = std::array::from_fn(|i| {
        let at = NUMBERS_AT + 4 * i;
        u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
    });
    Row {
        id: ObjectIdHex::from_bytes(b[ID_AT..CREATED_AT].try_into().expect("12 bytes")),
        created_at: Timestamp::from_millis(i64_at(CREATED_AT)),
        updated_at: Timestamp::from_millis(i64_at(UPDATED_AT)),
        service,
        persona,
        scenario,
        creator,
        extras,
        strings,
        name_len,
        text_len,
        is_deleted: b[DELETED_AT] != 0,
    }
}

/// `count` extras from their words (see [`save_org`]), their numbers checked.
fn extras_of(block: &[u8], count: usize, refs: usize, words: usize) -> io::Result<Vec<Extras>> {
    let numbers = u32s(block)?;
    let mut numbers = numbers.iter().copied();
    let mut next = || numbers.next().ok_or_else(|| invalid("extras"));
    let mut extras = Vec::new();
    for _ in 0..count {
        let metrics: Box<[u32]> = (0..next()?).map(|_| next()).collect::<io::Result<_>>()?;
        let tags: Box<[(u32, Option<u32>)]> = (0..next()?)
            .map(|_| Ok((next()?, next()?.checked_sub(1))))
            .collect::<io::Result<_>>()?;
        let fit = metrics.iter().all(|&m| (m as usize) < refs)
            && (tags.iter())
                .all(|&(k, v)| (k as usize) < words && v.is_none_or(|v| (v as usize) < words));
        if !fit {
            return Err(invalid("extras"));
        }
        extras.push(Extras { metrics, tags });
    }
    if numbers.next().is_some() {
        return Err(invalid("extras"));
    }
    Ok(extras)
}

/// An interner holding `values`, numbered in their order.
fn interner<T: Hash + Eq + Clone, S: std::hash::BuildHasher + Default>(
    values: impl IntoIterator<Item = T>,
) -> Interner<T, S> {
    let values: Vec<T> = values.into_iter().collect();
    let mut numbers = HashMap::with_capacity_and_hasher(values.len(), S::default());
    for (n, value) in values.iter().enumerate() {
        numbers.insert(value.clone(), n as u32);
    }
    Interner { numbers, values }
}

fn words_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn u32s(block: &[u8]) -> io::Result<Vec<u32>> {
    if !block.len().is_multiple_of(4) {
        return Err(invalid("a list of numbers"));
    }
    Ok((block.chunks_exact(4))
        .map(|b| u32::from_le_bytes(b.try_into().expect("chunks of 4 bytes")))
        .collect())
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the catalog's parts do not fit together: {what}"),
    )
}

fn put_u32(out: &mut impl Write, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| io::Error::other("over 2^32"))?;
    out.write_all(&n.to_le_bytes())
}

fn put_block(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    put_u32(out, bytes.len())?;
    out.write_all(bytes)
}

fn put_bitmap(out: &mut impl Write, rows: &RoaringBitmap, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.clear();
    rows.serialize_into(&mut *buffer)?;
    put_block(out, buffer)
}

/// What [`Catalog::restore`] reads, with the file's size: no length or count read from it may
/// claim more than that.
struct Input<R> {
    inner: R,
    size: u64,
}

impl<R: Read> Input<R> {
    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut bytes = [0u8; 4];
        self.inner.read_exact(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut bytes = [0u8; 8];
        self.inner.read_exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// A count of things that each take at least a byte.
    fn count(&mut self) -> io::Result<usize> {
        let count = self.u32()?;
        if u64::from(count) > self.size {
            return Err(invalid("a count larger than the file"));
        }
        Ok(count as usize)
    }

    /// The length of a block, at most the file's size.
    fn block_len(&mut self) -> io::Result<usize> {
        let len = self.u32()?;
        if u64::from(len) > self.size {
            return Err(invalid("a block larger than the file"));
        }
        Ok(len as usize)
    }

    /// A block's bytes, in a buffer of exactly their length (the texts are most of the file).
    fn block(&mut self) -> io::Result<Vec<u8>> {
        let len = self.block_len()?;
        let mut block = vec![0; len];
        self.inner.read_exact(&mut block)?;
        Ok(block)
    }

    /// The block of rows, read a few thousand at a time: as one buffer it would add its size
    /// (61 MB at 1M) to the start's peak memory.
    fn rows(&mut self) -> io::Result<Vec<Row>> {
        let len = self.block_len()?;
        if !len.is_multiple_of(ROW_BYTES) {
            return Err(invalid("rows"));
        }
        let mut rows = Vec::with_capacity(len / ROW_BYTES);
        let mut chunk = vec![0; 4096 * ROW_BYTES];
        let mut left = len;
        while left > 0 {
            let chunk = &mut chunk[..left.min(4096 * ROW_BYTES)];
            self.inner.read_exact(chunk)?;
            rows.extend(chunk.chunks_exact(ROW_BYTES).map(row_of));
            left -= chunk.len();
        }
        Ok(rows)
    }

    fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.block()?).map_err(invalid)
    }

    fn bitmap(&mut self) -> io::Result<RoaringBitmap> {
        RoaringBitmap::deserialize_from(&self.block()?[..])
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::store::tests::testgen::random_doc;

    /// A number pointing past its table is refused as the parts are read, before any query
    /// could index with it (the checksum is checked only after them).
    #[test]
    fn a_number_pointing_outside_its_table_is_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let catalog = Catalog::build((0..50).map(|n| random_doc(&mut rng, n)));
        let mut saved = Vec::new();
        catalog.save(&mut saved).unwrap();
        let restored = |bytes: &[u8]| Catalog::restore(bytes, bytes.len() as u64);
        assert!(restored(&saved).is_ok());
        // The first org's first row: after its flag, its id's block and the rows' length.
        let id_len = u32::from_le_bytes(saved[1..5].try_into().unwrap()) as usize;
        let first_row = 1 + 4 + id_len + 4;
        for (field, at) in [("service", 28), ("creator", 40), ("strings", 48)] {
            let mut damaged = saved.clone();
            damaged[first_row + at..first_row + at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            let error = restored(&damaged)
                .err()
                .unwrap_or_else(|| panic!("{field}"));
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{field}");
        }
        // A block said to be longer than the file is refused before anything is reserved.
        let mut damaged = saved.clone();
        damaged[first_row - 4..first_row].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(restored(&damaged).is_err());
    }
}
