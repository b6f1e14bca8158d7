//! The persisted form: a header, then the face ids, persons, run starts, scales and codes,
//! little-endian, written in parts and read back streaming.

use super::*;

impl Index {
    /// The index in its persisted form: a header, then the face ids, persons, run starts,
    /// scales and codes, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.memory_bytes());
        let _ = self.write_parts(usize::MAX, &mut |_, part: &[u8]| {
            out.extend_from_slice(part);
            Ok::<(), ()>(())
        });
        out
    }

    /// [`Index::to_bytes`]'s bytes in parts of `part_size` (the last one shorter), each handed
    /// to `f` with its number as soon as it is full, so no second copy of a large index is made.
    pub fn write_parts<E>(&self, part_size: usize, f: &mut PartSink<'_, E>) -> Result<u32, E> {
        let mut w = Parts { buf: Vec::with_capacity(part_size.min(1 << 24)), size: part_size.max(1), next: 0, f };
        let model = self.model.id().as_bytes();
        w.put(MAGIC)?;
        w.put(&(model.len() as u32).to_le_bytes())?;
        w.put(model)?;
        w.put(&self.trained_ms.to_le_bytes())?;
        w.put(&[u8::from(self.has_persons)])?;
        w.put(&(self.faces.len() as u64).to_le_bytes())?;
        w.put(&(self.persons.len() as u64).to_le_bytes())?;
        for f in &self.faces {
            w.put(&f.to_le_bytes())?;
        }
        for p in &self.persons {
            w.put(&p.to_le_bytes())?;
        }
        for s in self.starts.iter().take(self.persons.len()) {
            w.put(&s.to_le_bytes())?;
        }
        // Rows in their own order: where each row's codes are, when stored by list.
        let at: Vec<u32> = if self.lists.members.is_empty() {
            (0..self.len() as u32).collect()
        } else {
            let mut at = vec![0u32; self.len()];
            self.lists.members.iter().enumerate().for_each(|(m, &(r, _))| at[r as usize] = m as u32);
            at
        };
        for &m in &at {
            w.put(&self.scales[m as usize].to_le_bytes())?;
        }
        let dim = self.dim;
        for rows in at.chunks(512) {
            let bytes: Vec<u8> = rows
                .iter()
                .flat_map(|&m| &self.codes[m as usize * dim..(m as usize + 1) * dim])
                .map(|&c| c as u8)
                .collect();
            w.put(&bytes)?;
        }
        // The lists, when there are any: the centres, then each row's list.
        let lists = &self.lists;
        if !lists.members.is_empty() {
            w.put(&(lists.starts.len() as u32 - 1).to_le_bytes())?;
            for c in &lists.centres {
                w.put(&c.to_le_bytes())?;
            }
            let mut list_of = vec![0u32; self.len()];
            for (l, run) in lists.starts.windows(2).enumerate() {
                for &(r, _) in &lists.members[run[0] as usize..run[1] as usize] {
                    list_of[r as usize] = l as u32;
                }
            }
            for l in &list_of {
                w.put(&l.to_le_bytes())?;
            }
        }
        w.finish()
    }

    /// Reads [`Index::to_bytes`]'s form back, checking every length and value.
    pub fn from_bytes(bytes: &[u8]) -> Result<Index, IndexError> {
        Index::from_reader(bytes.len() as u64, &mut std::io::Cursor::new(bytes))
    }

    /// Reads [`Index::to_bytes`]'s form from a stream of `len` bytes (a store's parts, one at a
    /// time), checking every length and value: the index is built as it is read, and nothing
    /// but it is kept, so loading a large index costs its own bytes, not twice them.
    pub fn from_reader(len: u64, stream: &mut dyn std::io::Read) -> Result<Index, IndexError> {
        let bad = |what: &str| IndexError(format!("the stored trained index is damaged ({what}); train again"));
        let mut r = Reader { stream, left: len };
        if r.take(8).ok_or_else(|| bad("header"))? != MAGIC {
            return Err(bad("not an index"));
        }
        let model_len = r.u32().ok_or_else(|| bad("header"))? as usize;
        let model = r.take(model_len).ok_or_else(|| bad("header"))?;
        let model = std::str::from_utf8(&model).map_err(|_| bad("model"))?;
        let model = RecognitionModel::from_id(model).ok_or_else(|| bad("model"))?;
        let trained_ms =
            i64::from_le_bytes(r.take(8).ok_or_else(|| bad("header"))?.try_into().map_err(|_| bad("header"))?);
        let has_persons = r.take(1).ok_or_else(|| bad("header"))?[0] == 1;
        let rows = r.u64().ok_or_else(|| bad("header"))? as usize;
        let persons = r.u64().ok_or_else(|| bad("header"))? as usize;
        let dim = model.dimensions();
        let need = rows.checked_mul(16 + 4 + dim).and_then(|n| n.checked_add(persons.checked_mul(20)?));
        // The lists, written from PREFILTER_ROWS rows, follow the codes; older indexes lack them.
        if need.is_none_or(|n| n as u64 > r.left) || (has_persons && persons > rows) || (!has_persons && persons != 0) {
            return Err(bad("lengths"));
        }
        let faces: Vec<u128> = r.take_values(rows).unwrap_or_default();
        let person_ids: Vec<u128> = r.take_values(persons).unwrap_or_default();
        let starts: Vec<u32> = r.take_values(persons).unwrap_or_default();
        let scales: Vec<f32> = r.take_values(rows).unwrap_or_default();
        // Read in place: the bytes' buffer becomes the codes' (same size and alignment).
        let codes: Vec<i8> = r.take(rows * dim).unwrap_or_default().into_iter().map(|b| b as i8).collect();
        if faces.len() != rows
            || person_ids.len() != persons
            || starts.len() != persons
            || scales.len() != rows
            || codes.len() != rows * dim
        {
            return Err(bad("lengths"));
        }
        let ordered = |v: &[u128]| v.windows(2).all(|w| w[0] < w[1]);
        if has_persons {
            let runs_ok = starts.first().is_none_or(|&s| s == 0)
                && starts.windows(2).all(|w| w[0] < w[1])
                && starts.last().is_none_or(|&s| (s as usize) < rows)
                && (rows == 0 || !starts.is_empty());
            if !ordered(&person_ids) || !runs_ok {
                return Err(bad("persons"));
            }
        } else if !ordered(&faces) {
            return Err(bad("faces"));
        }
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(bad("scales"));
        }
        let lists = if r.left == 0 {
            None
        } else {
            let count = r.u32().ok_or_else(|| bad("lists"))? as usize;
            let need = count.checked_mul(dim * 4).and_then(|n| n.checked_add(rows * 4));
            if rows < PREFILTER_ROWS || count == 0 || count > rows || need.is_none_or(|n| n as u64 != r.left) {
                return Err(bad("lists"));
            }
            let centres: Vec<f32> = r.take_values(count * dim).unwrap_or_default();
            let nearest: Vec<u32> = r.take_values(rows).unwrap_or_default();
            if centres.len() != count * dim
                || nearest.len() != rows
                || centres.iter().any(|c| !c.is_finite())
                || nearest.iter().any(|&l| l as usize >= count)
            {
                return Err(bad("lists"));
            }
            Some((centres, nearest))
        };
        Ok(Index::assemble(model, trained_ms, has_persons, faces, person_ids, starts, codes, scales, lists))
    }
}

/// Moves, in place, row `from[m]` of `values` (rows of `width` values) to row `m`, for every
/// `m`: one cycle of the permutation at a time, with one row of scratch and a bit per row.
/// `false`, with `values` untouched, when `from` does not name every row exactly once.
pub(super) fn permute_rows<T: Copy>(values: &mut [T], width: usize, from: &[u32]) -> bool {
    let n = from.len();
    if values.len() != n * width {
        return false;
    }
    let mut seen = vec![false; n];
    for &r in from {
        match seen.get_mut(r as usize) {
            Some(s) if !*s => *s = true,
            _ => return false,
        }
    }
    // `seen` now marks every row; cleared as each is put in place.
    let mut scratch: Vec<T> = Vec::with_capacity(width);
    for start in 0..n {
        if !seen[start] {
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&values[start * width..(start + 1) * width]);
        let mut j = start;
        loop {
            seen[j] = false;
            let src = from[j] as usize;
            if src == start {
                values[j * width..(j + 1) * width].copy_from_slice(&scratch);
                break;
            }
            values.copy_within(src * width..(src + 1) * width, j * width);
            j = src;
        }
    }
    true
}

/// Where [`Index::write_parts`] hands each part: its number and bytes.
pub type PartSink<'f, E> = dyn FnMut(u32, &[u8]) -> Result<(), E> + 'f;

/// Cuts a stream of bytes into numbered parts.
struct Parts<'f, E> {
    buf: Vec<u8>,
    size: usize,
    next: u32,
    f: &'f mut PartSink<'f, E>,
}

impl<E> Parts<'_, E> {
    fn put(&mut self, mut bytes: &[u8]) -> Result<(), E> {
        while !bytes.is_empty() {
            let room = self.size - self.buf.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            if self.buf.len() == self.size {
                (self.f)(self.next, &self.buf)?;
                self.next += 1;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Hands over the last part; returns how many parts there were.
    fn finish(mut self) -> Result<u32, E> {
        if !self.buf.is_empty() || self.next == 0 {
            (self.f)(self.next, &self.buf)?;
            self.next += 1;
        }
        Ok(self.next)
    }
}

/// A stream of a known length, read in pieces of known sizes.
struct Reader<'a> {
    stream: &'a mut dyn std::io::Read,
    /// Bytes of the stream not read yet.
    left: u64,
}

impl Reader<'_> {
    /// The next `n` bytes; `None` if the stream has fewer (or fails).
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if n as u64 > self.left {
            return None;
        }
        let mut out = vec![0u8; n];
        self.stream.read_exact(&mut out).ok()?;
        self.left -= n as u64;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// The next `n` little-endian values, read straight into their vector (no second copy of a
    /// million ids); `None` if the stream has fewer.
    fn take_values<T: LeValue>(&mut self, n: usize) -> Option<Vec<T>> {
        let bytes = n.checked_mul(std::mem::size_of::<T>())?;
        if bytes as u64 > self.left {
            return None;
        }
        let mut out = vec![T::zeroed(); n];
        self.stream.read_exact(bytemuck::cast_slice_mut(&mut out)).ok()?;
        self.left -= bytes as u64;
        out.iter_mut().for_each(|v| *v = v.from_le());
        Some(out)
    }
}

/// A value stored little-endian: read as its bytes, then put in this machine's order.
trait LeValue: bytemuck::Pod {
    #[expect(
        clippy::wrong_self_convention,
        reason = "named after the integers' own `from_le`, which also maps a value"
    )]
    fn from_le(self) -> Self;
}

impl LeValue for u32 {
    fn from_le(self) -> Self {
        u32::from_le(self)
    }
}

impl LeValue for u128 {
    fn from_le(self) -> Self {
        u128::from_le(self)
    }
}

impl LeValue for f32 {
    fn from_le(self) -> Self {
        f32::from_bits(u32::from_le(self.to_bits()))
    }
}
