//! A baseline JPEG decoded at 1/2, 1/4 or 1/8 of its size, fast: the decode the detector's input
//! takes from every large photo.
//!
//! jpeg-decoder reads the entropy-coded data a byte at a time through `Read`, checking for markers
//! on each, and looks codes up eight bits at a time; at 12 megapixels that entropy decoding is
//! nearly all of its 60-80 ms, at any DCT scale. Here the scan is first copied without its stuffed
//! bytes (`FF 00`), split at its restart markers, so the bit reader takes four bytes at a time
//! with no check; codes (and, for the AC tables, code and value together, an end of block
//! included) are looked up eleven bits at a time in fixed-size tables; only the coefficients the
//! scaled inverse transform reads are kept, and only they are cleared for each block.
//!
//! What comes out is jpeg-decoder's image to the byte: the same scaled inverse transforms, the
//! same upsampling of subsampled chroma and the same colour conversion (ported from jpeg-decoder
//! 0.3.2, MIT/Apache-2.0), so the engine's answers do not move (this file's tests compare the
//! two on the registry photos and on every sampling, odd size and restart interval). It takes only the common case: baseline Huffman coding, 8-bit samples,
//! greyscale or YCbCr in a single interleaved scan, each sampling factor 1 or 2, restart markers
//! in their order, the scan ended by a marker and the file by EOI. Anything else is `None`, and
//! so is any marker it does not expect: the caller then uses jpeg-decoder, with its errors. (A
//! corrupt scan inside such a frame decodes to some image here, as it can in jpeg-decoder.)

use std::num::Wrapping;

/// Bits looked up at once; longer codes take the canonical search. Eleven measured fastest on
/// the bench's noisy 12 MP photo (nine and twelve were 5-10% slower natively).
const FAST_BITS: u32 = 11;

/// A photo decoded at `1/scale` (2, 4 or 8): its size and RGB pixels, or `None` where this
/// decoder does not take the stream (see the module's notes). `max_alloc` caps the bytes of the
/// component planes.
pub(crate) fn decode_scaled(bytes: &[u8], scale: u32, max_alloc: u64) -> Option<(u32, u32, Vec<u8>)> {
    let dct = match scale {
        2 => 4,
        4 => 2,
        8 => 1,
        _ => return None,
    };
    let header = Header::parse(bytes)?;
    let frame = &header.frame;
    let (w, h) = (usize::from(frame.width), usize::from(frame.height));
    let hmax = frame.components.iter().map(|c| c.h).max()?;
    let vmax = frame.components.iter().map(|c| c.v).max()?;
    let (mcu_cols, mcu_rows) = (w.div_ceil(8 * hmax), h.div_ceil(8 * vmax));
    let mut planes = Vec::with_capacity(frame.components.len());
    let mut total = 0u64;
    for c in &frame.components {
        let stride = mcu_cols * c.h * dct;
        let rows = mcu_rows * c.v * dct;
        total += (stride * rows) as u64;
        planes.push(Plane {
            stride,
            width: (w * c.h * dct).div_ceil(hmax * 8),
            height: (h * c.v * dct).div_ceil(vmax * 8),
            pixels: Vec::new(),
        });
    }
    let (ow, oh) = ((w * dct).div_ceil(8), (h * dct).div_ceil(8));
    if total + ow as u64 * oh as u64 * 3 > max_alloc {
        return None;
    }
    for (p, c) in planes.iter_mut().zip(&frame.components) {
        p.pixels = vec![0u8; p.stride * mcu_rows * c.v * dct];
    }
    header.decode_scan(dct, (mcu_cols, mcu_rows), &mut planes)?;
    let rgb = if planes.len() == 1 { grey_to_rgb(&planes[0], ow, oh) } else { ycbcr_to_rgb(&planes, frame, ow, oh) };
    Some((u32::try_from(ow).ok()?, u32::try_from(oh).ok()?, rgb))
}

#[derive(Debug)]
struct Component {
    h: usize,
    v: usize,
    quant: usize,
}

#[derive(Debug)]
struct Frame {
    width: u16,
    height: u16,
    components: Vec<Component>,
}

/// One component's samples at the decode's scale, `stride` wide with the blocks that pad the
/// last MCUs; `width x height` of them are the image's.
#[derive(Debug)]
struct Plane {
    stride: usize,
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

#[derive(Debug)]
struct Header<'a> {
    frame: Frame,
    quant: [Option<[u16; 64]>; 4],
    /// The scan's DC and AC table of each frame component, in frame order.
    tables: Vec<(Table, Table)>,
    restart_interval: usize,
    /// The bytes after the scan's header: entropy-coded data, then the rest of the file.
    scan: &'a [u8],
}

/// The marker at `at` (after any fill bytes) and where its segment starts; `None` when no marker
/// is there.
fn marker_at(bytes: &[u8], mut at: usize) -> Option<(u8, usize)> {
    if *bytes.get(at)? != 0xFF {
        return None;
    }
    while *bytes.get(at)? == 0xFF {
        at += 1;
    }
    Some((*bytes.get(at)?, at + 1))
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(*b.get(at)?) << 8 | usize::from(*b.get(at + 1)?))
}

impl<'a> Header<'a> {
    /// The markers up to the first scan, checked to be a case this decoder takes.
    fn parse(bytes: &'a [u8]) -> Option<Header<'a>> {
        if bytes.get(..2)? != [0xFF, 0xD8] {
            return None;
        }
        let mut at = 2;
        let mut frame = None;
        let mut ids = Vec::new();
        let mut quant = [None; 4];
        let mut dc: [Option<Table>; 4] = Default::default();
        let mut ac: [Option<Table>; 4] = Default::default();
        let mut restart_interval = 0;
        let (mut jfif, mut adobe) = (false, None);
        let mut baseline = false;
        loop {
            let marker;
            (marker, at) = marker_at(bytes, at)?;
            if matches!(marker, 0xD8 | 0xD9 | 0x01 | 0xD0..=0xD7) {
                // SOI again, EOI before a scan, TEM, RSTn: not a stream this decoder reads.
                return None;
            }
            let len = be16(bytes, at)?;
            let seg = bytes.get(at + 2..(at + len).max(at + 2))?;
            if len < 2 {
                return None;
            }
            at += len;
            match marker {
                0xC0 | 0xC1 => {
                    if frame.is_some() || *seg.first()? != 8 {
                        return None;
                    }
                    baseline = marker == 0xC0;
                    let (height, width) = (be16(seg, 1)?, be16(seg, 3)?);
                    let n = usize::from(*seg.get(5)?);
                    if height == 0 || width == 0 || !(n == 1 || n == 3) {
                        return None;
                    }
                    let mut components = Vec::with_capacity(n);
                    for i in 0..n {
                        let c = seg.get(6 + 3 * i..9 + 3 * i)?;
                        let (h, v, q) = (usize::from(c[1] >> 4), usize::from(c[1] & 15), usize::from(c[2]));
                        if !(1..=2).contains(&h) || !(1..=2).contains(&v) || q > 3 || (n == 1 && (h, v) != (1, 1)) {
                            return None;
                        }
                        ids.push(c[0]);
                        components.push(Component { h, v, quant: q });
                    }
                    // As jpeg-decoder: distinct ids, at most 10 blocks in an MCU.
                    let distinct = (1..ids.len()).all(|i| !ids[..i].contains(&ids[i]));
                    if !distinct || components.iter().map(|c| c.h * c.v).sum::<usize>() > 10 {
                        return None;
                    }
                    frame = Some(Frame { width: width as u16, height: height as u16, components });
                }
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
                0xC4 => {
                    let mut s = seg;
                    while !s.is_empty() {
                        let (class, id) = (s[0] >> 4, usize::from(s[0] & 15));
                        let counts: [u8; 16] = s.get(1..17)?.try_into().ok()?;
                        let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                        let values = s.get(17..17 + n)?;
                        if id > 3 || class > 1 {
                            return None;
                        }
                        let table = Table::new(&counts, values, class == 1)?;
                        if class == 0 {
                            dc[id] = Some(table);
                        } else {
                            ac[id] = Some(table);
                        }
                        s = &s[17 + n..];
                    }
                }
                0xDB => {
                    let mut s = seg;
                    while !s.is_empty() {
                        let (precision, id) = (s[0] >> 4, usize::from(s[0] & 15));
                        if id > 3 || precision > 1 {
                            return None;
                        }
                        let mut table = [0u16; 64];
                        for (k, &natural) in UNZIGZAG.iter().enumerate() {
                            table[usize::from(natural)] =
                                if precision == 0 { u16::from(*s.get(1 + k)?) } else { be16(s, 1 + 2 * k)? as u16 };
                        }
                        if table.contains(&0) {
                            return None;
                        }
                        quant[id] = Some(table);
                        s = s.get(1 + 64 * (1 + usize::from(precision))..)?;
                    }
                }
                0xDD => restart_interval = be16(seg, 0)?,
                0xE0 if seg.starts_with(b"JFIF\0") => jfif = true,
                0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe\0") => adobe = Some(seg[11]),
                0xDA => {
                    let frame = frame?;
                    if frame.components.len() == 3 && !ycbcr(&ids, jfif, adobe) {
                        return None;
                    }
                    let n = usize::from(*seg.first()?);
                    // One scan of every component, in frame order, all 64 coefficients at once.
                    if n != frame.components.len() || seg.get(1 + 2 * n..4 + 2 * n)? != [0, 63, 0] {
                        return None;
                    }
                    let mut tables = Vec::with_capacity(n);
                    for (i, &id) in ids.iter().enumerate() {
                        let s = seg.get(1 + 2 * i..3 + 2 * i)?;
                        if s[0] != id {
                            return None;
                        }
                        let (d, a) = (usize::from(s[1] >> 4), usize::from(s[1] & 15));
                        // A baseline frame may use tables 0 and 1 only.
                        if baseline && (d > 1 || a > 1) {
                            return None;
                        }
                        tables.push((dc.get(d)?.clone()?, ac.get(a)?.clone()?));
                    }
                    if frame.components.iter().any(|c| quant[c.quant].is_none()) {
                        return None;
                    }
                    return Some(Header { frame, quant, tables, restart_interval, scan: bytes.get(at..)? });
                }
                // Application data and comments; any other marker (DAC, DNL, DHP, EXP, JPGn,
                // reserved ones) is left to jpeg-decoder.
                0xE0..=0xEF | 0xFE => {}
                _ => return None,
            }
        }
    }

    /// Decodes the scan into `planes`, each block's inverse transform `dct x dct` samples.
    fn decode_scan(&self, dct: usize, (mcu_cols, mcu_rows): (usize, usize), planes: &mut [Plane]) -> Option<()> {
        let (segments, rest) = destuff(self.scan)?;
        // The scan ended by a marker, the file by EOI, and no second scan (one would overwrite
        // this one in jpeg-decoder): a file cut short is left to jpeg-decoder's errors.
        if rest.is_empty() || later_scan(rest)? {
            return None;
        }
        let mcus = mcu_cols * mcu_rows;
        // One piece per restart interval, as many as the MCUs need.
        let intervals = if self.restart_interval > 0 { mcus.div_ceil(self.restart_interval) } else { 1 };
        if segments.len() != intervals {
            return None;
        }
        let keep = kept_coefficients(dct);
        let mut segment = 0;
        let mut bits = Bits::new(segments.get(segment).map_or(&[][..], |s| &s[..]));
        let mut predictors = [Wrapping(0i16); 3];
        let mut eob_run = 0u32;
        // Indexed by `keep`'s bytes, so no index needs a bounds check. The transform reads only
        // the slots `keep` sends coefficients to below 64 (the rest land in slot 64, read by
        // none): those up to the highest are cleared before each block.
        let mut coefficients = [0i16; 256];
        let read = keep.iter().filter(|&&n| n < 64).max().map_or(1, |&n| usize::from(n) + 1);
        for mcu in 0..mcus {
            if self.restart_interval > 0 && mcu > 0 && mcu % self.restart_interval == 0 {
                segment += 1;
                bits = Bits::new(segments.get(segment).map_or(&[][..], |s| &s[..]));
                predictors = [Wrapping(0); 3];
                eob_run = 0;
            }
            let (mx, my) = (mcu % mcu_cols, mcu / mcu_cols);
            for (ci, c) in self.frame.components.iter().enumerate() {
                let (dc, ac) = &self.tables[ci];
                let quant = self.quant[c.quant].as_ref()?;
                let plane = &mut planes[ci];
                for by in 0..c.v {
                    for bx in 0..c.h {
                        coefficients[..read].fill(0);
                        decode_block(&mut bits, dc, ac, &keep, &mut coefficients, &mut predictors[ci], &mut eob_run)?;
                        let (x, y) = ((mx * c.h + bx) * dct, (my * c.v + by) * dct);
                        let out = plane.pixels.get_mut(y * plane.stride + x..)?;
                        idct(dct, &coefficients, quant, plane.stride, out)?;
                    }
                }
            }
        }
        Some(())
    }
}

/// Whether a three-component frame is YCbCr by jpeg-decoder's rule: its component ids, then a
/// JFIF marker, then Adobe's colour transform; the others (RGB, and the transforms jpeg-decoder
/// refuses) are left to it.
fn ycbcr(ids: &[u8], jfif: bool, adobe: Option<u8>) -> bool {
    match ids {
        [1, 2, 3] => true,
        [1, 34, 35] | [82, 71, 66] | [114, 103, 98] => false,
        _ => jfif || adobe.is_none_or(|t| t == 1),
    }
}

/// Whether the markers after a scan hold another scan before the end of the image; `None` when
/// they run out before EOI or hold one jpeg-decoder would not skip there.
fn later_scan(rest: &[u8]) -> Option<bool> {
    let mut at = 0;
    loop {
        let marker;
        (marker, at) = marker_at(rest, at)?;
        match marker {
            0xD9 => return Some(false),
            0xDA => return Some(true),
            // Tables, application data and comments between scans.
            0xC4 | 0xDB | 0xDD | 0xE0..=0xEF | 0xFE => at += be16(rest, at)?,
            _ => return None,
        }
    }
}

/// The scan's entropy-coded data without its stuffed bytes, one piece per restart interval, and
/// the file after it (from the marker that ends it, empty when none does); `None` when the
/// restart markers are out of their order (RST0, RST1, ... RST7, RST0).
fn destuff(scan: &[u8]) -> Option<(Vec<Vec<u8>>, &[u8])> {
    let mut segments = Vec::new();
    let mut current = Vec::with_capacity(scan.len());
    let mut at = 0;
    loop {
        let Some(ff) = scan[at..].iter().position(|&b| b == 0xFF) else {
            current.extend_from_slice(&scan[at..]);
            segments.push(current);
            return Some((segments, &[]));
        };
        current.extend_from_slice(&scan[at..at + ff]);
        at += ff;
        // `at` is an FF: stuffing, fill bytes before a marker, or a marker.
        let mut next = at + 1;
        while scan.get(next) == Some(&0xFF) {
            next += 1;
        }
        match scan.get(next) {
            Some(0x00) if next == at + 1 => {
                current.push(0xFF);
                at = next + 1;
            }
            Some(&rst @ 0xD0..=0xD7) => {
                if usize::from(rst - 0xD0) != segments.len() % 8 {
                    return None;
                }
                segments.push(std::mem::take(&mut current));
                at = next + 1;
            }
            _ => {
                segments.push(current);
                return Some((segments, &scan[at..]));
            }
        }
    }
}

/// Reads a piece of entropy-coded data most significant bit first; past its end, zeros (as
/// jpeg-decoder reads past a marker).
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    buffer: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits { data, at: 0, buffer: 0, count: 0 }
    }

    /// At least 33 bits in the buffer.
    #[inline(always)]
    fn refill(&mut self) {
        if self.count <= 32 {
            let word = match self.data.get(self.at..self.at + 4) {
                Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                None => {
                    let mut w = [0u8; 4];
                    for (i, b) in w.iter_mut().enumerate() {
                        *b = self.data.get(self.at + i).copied().unwrap_or(0);
                    }
                    u32::from_be_bytes(w)
                }
            };
            self.buffer |= u64::from(word) << (32 - self.count);
            self.at += 4;
            self.count += 32;
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.buffer >> (64 - n)) as u32
    }

    #[inline(always)]
    fn skip(&mut self, n: u32) {
        self.buffer <<= n;
        self.count -= n;
    }

    /// `n` bits (at most 16), refilling first.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        self.refill();
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.skip(n);
        v
    }

    /// The next symbol of `table`, or `None` where no code of up to 16 bits matches.
    #[inline(always)]
    fn symbol(&mut self, table: &Table) -> Option<u8> {
        self.refill();
        let fast = table.fast[self.peek(FAST_BITS) as usize];
        if fast != 0 {
            self.skip(u32::from(fast >> 8));
            return Some(fast as u8);
        }
        let code16 = self.peek(16) as i32;
        for len in FAST_BITS + 1..=16 {
            let code = code16 >> (16 - len);
            if code <= table.max_code[len as usize] {
                self.skip(len);
                return table.values.get((code + table.delta[len as usize]) as usize).copied();
            }
        }
        None
    }
}

/// One Huffman table: the canonical codes' limits by length, and the lookups of `FAST_BITS`.
#[derive(Debug, Clone)]
struct Table {
    values: Vec<u8>,
    max_code: [i32; 17],
    delta: [i32; 17],
    /// By the next `FAST_BITS` bits: `length << 8 | symbol`, 0 where the code is longer.
    fast: Box<[u16; 1 << FAST_BITS]>,
    /// AC tables (all zeros in a DC table): by the next `FAST_BITS` bits, a code and its value's
    /// bits that fit together:
    /// `value << 16 | run << 8 | bits`, 0 where they do not. An end of block (`0x00`) reads as a
    /// run of 64, past the block's end; sixteen zeros (`0xF0`) as a run of 15 and a zero.
    fast_ac: Box<[i32; 1 << FAST_BITS]>,
}

impl Table {
    fn new(counts: &[u8; 16], values: &[u8], ac: bool) -> Option<Table> {
        let mut sizes = Vec::with_capacity(values.len());
        for (i, &n) in counts.iter().enumerate() {
            sizes.extend(std::iter::repeat_n(i as u32 + 1, usize::from(n)));
        }
        let first = *sizes.first()?;
        let mut codes = Vec::with_capacity(sizes.len());
        let (mut code, mut size) = (0u32, first);
        for &s in &sizes {
            while size < s {
                code <<= 1;
                size += 1;
            }
            if code >= 1 << s {
                return None;
            }
            codes.push(code);
            code += 1;
        }
        let mut max_code = [-1i32; 17];
        let mut delta = [0i32; 17];
        let mut j = 0usize;
        for len in 1..=16 {
            let n = usize::from(counts[len - 1]);
            if n > 0 {
                delta[len] = j as i32 - codes[j] as i32;
                j += n;
                max_code[len] = codes[j - 1] as i32;
            }
        }
        // Fixed-size, so the lookups by `FAST_BITS` bits need no bounds check.
        let mut fast = Box::new([0u16; 1 << FAST_BITS]);
        let mut fast_ac = Box::new([0i32; 1 << FAST_BITS]);
        for ((&s, &c), &symbol) in sizes.iter().zip(&codes).zip(values) {
            if s > FAST_BITS {
                continue;
            }
            let free = FAST_BITS - s;
            for low in 0..1u32 << free {
                let i = ((c << free) | low) as usize;
                fast[i] = (s as u16) << 8 | u16::from(symbol);
                let (run, magnitude) = (u32::from(symbol >> 4), u32::from(symbol & 15));
                if ac && magnitude > 0 && s + magnitude <= FAST_BITS {
                    let value = extend((low >> (free - magnitude)) as u16, magnitude);
                    fast_ac[i] = i32::from(value) << 16 | (run << 8 | (s + magnitude)) as i32;
                } else if ac && symbol == 0x00 {
                    fast_ac[i] = (64 << 8 | s) as i32;
                } else if ac && symbol == 0xF0 {
                    fast_ac[i] = (15 << 8 | s) as i32;
                }
            }
        }
        Some(Table { values: values.to_vec(), max_code, delta, fast, fast_ac })
    }
}

/// A value's `n` bits read as the signed value they code (F.2.2.1).
#[inline(always)]
fn extend(v: u16, n: u32) -> i16 {
    if n == 0 {
        return 0;
    }
    let v = i32::from(v);
    (if v < 1 << (n - 1) { v - (1 << n) + 1 } else { v }) as i16
}

/// Natural (row-major) index of each zig-zag position.
const UNZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// Where each zig-zag position's coefficient goes for a `dct x dct` inverse transform: its natural
/// index when the transform reads it, else 64 (a slot nothing reads).
fn kept_coefficients(dct: usize) -> [u8; 64] {
    UNZIGZAG.map(|n| if usize::from(n % 8) < dct && usize::from(n / 8) < dct { n } else { 64 })
}

/// One block's coefficients, as jpeg-decoder's baseline `decode_block` reads them (its handling
/// of an end-of-band run in a baseline stream included).
#[inline(always)]
fn decode_block(
    bits: &mut Bits,
    dc: &Table,
    ac: &Table,
    keep: &[u8; 64],
    coefficients: &mut [i16; 256],
    predictor: &mut Wrapping<i16>,
    eob_run: &mut u32,
) -> Option<()> {
    let size = u32::from(bits.symbol(dc)?);
    if size > 11 {
        return None;
    }
    let diff = extend(bits.take(size) as u16, size);
    *predictor += Wrapping(diff);
    coefficients[0] = predictor.0;
    if *eob_run > 0 {
        *eob_run -= 1;
        return Some(());
    }
    let mut k = 1usize;
    while k < 64 {
        bits.refill();
        let fast = ac.fast_ac[bits.peek(FAST_BITS) as usize];
        if fast != 0 {
            bits.skip((fast & 0xFF) as u32);
            k += ((fast >> 8) & 0xFF) as usize;
            if k >= 64 {
                break;
            }
            coefficients[usize::from(keep[k])] = (fast >> 16) as i16;
            k += 1;
            continue;
        }
        let rs = bits.symbol(ac)?;
        let (run, magnitude) = (u32::from(rs >> 4), u32::from(rs & 15));
        if magnitude == 0 {
            if run == 15 {
                k += 16;
                continue;
            }
            *eob_run = (1 << run) - 1;
            if run > 0 {
                *eob_run += bits.take(run);
            }
            break;
        }
        k += run as usize;
        if k >= 64 {
            break;
        }
        coefficients[usize::from(keep[k])] = extend(bits.take(magnitude) as u16, magnitude);
        k += 1;
    }
    Some(())
}

fn dequantize(c: i16, q: u16) -> Wrapping<i32> {
    Wrapping(i32::from(c) * i32::from(q))
}

fn clamp(x: Wrapping<i32>) -> u8 {
    x.0.clamp(0, 255) as u8
}

fn f2f(x: f32) -> Wrapping<i32> {
    Wrapping((x * 4096.0 + 0.5) as i32)
}

/// jpeg-decoder's scaled inverse transforms, `dct x dct` samples into `out` at `stride`.
fn idct(dct: usize, c: &[i16; 256], q: &[u16; 64], stride: usize, out: &mut [u8]) -> Option<()> {
    match dct {
        4 => {
            const CONST_BITS: usize = 12;
            const PASS1_BITS: usize = 2;
            const FINAL_BITS: usize = CONST_BITS + PASS1_BITS + 3;
            let mut temp = [Wrapping(0i32); 16];
            for i in 0..4 {
                let s0 = dequantize(c[i], q[i]);
                let s1 = dequantize(c[i + 8], q[i + 8]);
                let s2 = dequantize(c[i + 16], q[i + 16]);
                let s3 = dequantize(c[i + 24], q[i + 24]);
                let x0 = (s0 + s2) << PASS1_BITS;
                let x2 = (s0 - s2) << PASS1_BITS;
                let p1 = (s1 + s3) * f2f(0.541_196_1);
                let t0 = (p1 + s3 * f2f(-1.847_759_1) + Wrapping(512)) >> (CONST_BITS - PASS1_BITS);
                let t2 = (p1 + s1 * f2f(0.765_366_87) + Wrapping(512)) >> (CONST_BITS - PASS1_BITS);
                temp[i] = x0 + t2;
                temp[i + 12] = x0 - t2;
                temp[i + 4] = x2 + t0;
                temp[i + 8] = x2 - t0;
            }
            for i in 0..4 {
                let (s0, s1, s2, s3) = (temp[i * 4], temp[i * 4 + 1], temp[i * 4 + 2], temp[i * 4 + 3]);
                let x0 = (s0 + s2) << CONST_BITS;
                let x2 = (s0 - s2) << CONST_BITS;
                let p1 = (s1 + s3) * f2f(0.541_196_1);
                let t0 = p1 + s3 * f2f(-1.847_759_1);
                let t2 = p1 + s1 * f2f(0.765_366_87);
                let x0 = x0 + Wrapping(1 << (FINAL_BITS - 1)) + Wrapping(128 << FINAL_BITS);
                let x2 = x2 + Wrapping(1 << (FINAL_BITS - 1)) + Wrapping(128 << FINAL_BITS);
                let row = out.get_mut(i * stride..i * stride + 4)?;
                row[0] = clamp((x0 + t2) >> FINAL_BITS);
                row[3] = clamp((x0 - t2) >> FINAL_BITS);
                row[1] = clamp((x2 + t0) >> FINAL_BITS);
                row[2] = clamp((x2 - t0) >> FINAL_BITS);
            }
        }
        2 => {
            const SCALE_BITS: usize = 3;
            let s00 = dequantize(c[0], q[0]);
            let s10 = dequantize(c[8], q[8]);
            let s01 = dequantize(c[1], q[1]);
            let s11 = dequantize(c[9], q[9]);
            let (x0, x2) = (s00 + s10, s00 - s10);
            let (x1, x3) = (s01 + s11, s01 - s11);
            let x0 = x0 + Wrapping(1 << (SCALE_BITS - 1)) + Wrapping(128 << SCALE_BITS);
            let x2 = x2 + Wrapping(1 << (SCALE_BITS - 1)) + Wrapping(128 << SCALE_BITS);
            let top = out.get_mut(..2)?;
            top[0] = clamp((x0 + x1) >> SCALE_BITS);
            top[1] = clamp((x0 - x1) >> SCALE_BITS);
            let bottom = out.get_mut(stride..stride + 2)?;
            bottom[0] = clamp((x2 + x3) >> SCALE_BITS);
            bottom[1] = clamp((x2 - x3) >> SCALE_BITS);
        }
        _ => {
            let s0 = (dequantize(c[0], q[0]) + Wrapping(128 * 8)) / Wrapping(8);
            *out.first_mut()? = clamp(s0);
        }
    }
    Some(())
}

fn grey_to_rgb(plane: &Plane, width: usize, height: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width * height * 3);
    for row in plane.pixels.chunks(plane.stride).take(height) {
        rgb.extend(row[..width].iter().flat_map(|&v| [v, v, v]));
    }
    rgb
}

/// jpeg-decoder's upsampling (a triangle filter where a chroma plane has half the samples) and
/// YCbCr to RGB conversion, a row at a time.
fn ycbcr_to_rgb(planes: &[Plane], frame: &Frame, width: usize, height: usize) -> Vec<u8> {
    let hmax = frame.components.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = frame.components.iter().map(|c| c.v).max().unwrap_or(1);
    let line = planes.iter().map(|p| p.width).max().unwrap_or(0) * hmax;
    let mut lines = vec![vec![0u8; line]; 3];
    let mut rgb = vec![0u8; width * height * 3];
    for (row, out) in rgb.chunks_exact_mut(width * 3).enumerate() {
        for ((plane, c), buffer) in planes.iter().zip(&frame.components).zip(&mut lines) {
            let h2 = c.h * 2 == hmax && width != 1;
            let v2 = c.v * 2 == vmax && height != 1;
            upsample_row(plane, row, (h2, v2), width, buffer);
        }
        let (head, tail) = out.split_at_mut(vectored_pixels(width) * 3);
        let (y, cb, cr) = (&lines[0][..width], &lines[1][..width], &lines[2][..width]);
        for (i, px) in head.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&ycbcr_pixel_q6(y[i], cb[i], cr[i]));
        }
        let done = head.len() / 3;
        for (i, px) in tail.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&ycbcr_pixel(y[done + i], cb[done + i], cr[done + i]));
        }
    }
    rgb
}

fn upsample_row(plane: &Plane, row: usize, (h2, v2): (bool, bool), width: usize, out: &mut [u8]) {
    let at = |r: usize| &plane.pixels[r * plane.stride..];
    let (near, far) = if v2 {
        let near = row as f32 / 2.0;
        let far = (near + near.fract() * 3.0 - 0.25).min((plane.height - 1) as f32);
        (at(near as usize), at(far as usize))
    } else {
        (at(row), at(row))
    };
    let n = plane.width;
    match (h2, v2) {
        (false, false) => out[..width].copy_from_slice(&near[..width]),
        (false, true) => {
            for i in 0..width {
                out[i] = ((3 * u32::from(near[i]) + u32::from(far[i]) + 2) >> 2) as u8;
            }
        }
        (true, false) => {
            if n == 1 {
                out[0] = near[0];
                out[1] = near[0];
                return;
            }
            out[0] = near[0];
            out[1] = ((u32::from(near[0]) * 3 + u32::from(near[1]) + 2) >> 2) as u8;
            for i in 1..n - 1 {
                let sample = 3 * u32::from(near[i]) + 2;
                out[i * 2] = ((sample + u32::from(near[i - 1])) >> 2) as u8;
                out[i * 2 + 1] = ((sample + u32::from(near[i + 1])) >> 2) as u8;
            }
            out[(n - 1) * 2] = ((u32::from(near[n - 1]) * 3 + u32::from(near[n - 2]) + 2) >> 2) as u8;
            out[(n - 1) * 2 + 1] = near[n - 1];
        }
        (true, true) => {
            if n == 1 {
                let v = ((3 * u32::from(near[0]) + u32::from(far[0]) + 2) >> 2) as u8;
                out[0] = v;
                out[1] = v;
                return;
            }
            let mut t1 = 3 * u32::from(near[0]) + u32::from(far[0]);
            out[0] = ((t1 + 2) >> 2) as u8;
            for i in 1..n {
                let t0 = t1;
                t1 = 3 * u32::from(near[i]) + u32::from(far[i]);
                out[i * 2 - 1] = ((3 * t0 + t1 + 8) >> 4) as u8;
                out[i * 2] = ((3 * t1 + t0 + 8) >> 4) as u8;
            }
            out[n * 2 - 1] = ((t1 + 2) >> 2) as u8;
        }
    }
}

/// How many pixels of a `width`-pixel row jpeg-decoder converts with its vector code on this
/// platform (16-bit lanes, 6 fraction bits: [`ycbcr_pixel_q6`]); it converts the rest with its
/// scalar code ([`ycbcr_pixel`]). The two differ by one in some pixels, so both are kept.
fn vectored_pixels(width: usize) -> usize {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::is_x86_feature_detected!("ssse3") {
            // Its SSSE3 loop leaves a vector's worth to the scalar code.
            return (width / 8).saturating_sub(1) * 8;
        }
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return width / 8 * 8;
    }
    #[allow(unreachable_code)]
    0
}

/// jpeg-decoder's vector YCbCr to RGB (SSSE3 and wasm simd128 alike), one lane at a time:
/// saturating 16-bit arithmetic, products rounded as `pmulhrsw` rounds them.
#[inline(always)]
fn ycbcr_pixel_q6(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SHIFT: u32 = 6;
    let mulhrs = |a: i16, b: i16| ((i32::from(a) * i32::from(b) + 0x4000) >> 15).clamp(-32768, 32767) as i16;
    let y = (i16::from(y) << SHIFT).saturating_add(1 << (SHIFT - 1));
    let cb = (i16::from(cb) << SHIFT).saturating_sub(128 << SHIFT);
    let cr = (i16::from(cr) << SHIFT).saturating_sub(128 << SHIFT);
    let r = y.saturating_add(mulhrs(cr, 13173).saturating_add(cr));
    let g = y.saturating_sub(mulhrs(cb, 11276).saturating_add(mulhrs(cr, 23401)));
    let b = y.saturating_add(mulhrs(cb, 25297).saturating_add(cb));
    let pack = |v: i16| (v >> SHIFT).clamp(0, 255) as u8;
    [pack(r), pack(g), pack(b)]
}

/// jpeg-decoder's scalar fixed-point YCbCr to RGB (20 fraction bits).
fn ycbcr_pixel(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SHIFT: i32 = 20;
    let f2f = |x: f32| (x * (1 << SHIFT) as f32 + 0.5) as i32;
    let y = i32::from(y) * (1 << SHIFT) + (1 << (SHIFT - 1));
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    let fix = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
    [fix(y + f2f(1.402_00) * cr), fix(y - f2f(0.344_14) * cb - f2f(0.714_14) * cr), fix(y + f2f(1.772_00) * cb)]
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    use super::decode_scaled;

    const LIMIT: u64 = 256 << 20;

    /// The registry photos the tests fetch (`cargo xtask testdata`).
    fn registry_photo(name: &str) -> Vec<u8> {
        let cache = std::env::var_os("FACE_CACHE").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME or FACE_CACHE")).join(".cache/face")
        });
        let path = cache.join("testdata").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask testdata`", path.display()))
    }

    /// jpeg-decoder's image of `bytes` at `1/scale`, in RGB.
    fn reference(bytes: &[u8], scale: u32) -> (u32, u32, Vec<u8>) {
        let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        d.read_info().expect("header");
        let info = d.info().expect("info");
        let (w, h) = (u32::from(info.width), u32::from(info.height));
        let (sw, sh) = d.scale(w.div_ceil(scale) as u16, h.div_ceil(scale) as u16).expect("scale");
        let pixels = d.decode().expect("jpeg-decoder decodes it");
        let rgb = match d.info().expect("info").pixel_format {
            jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
            _ => pixels,
        };
        (u32::from(sw), u32::from(sh), rgb)
    }

    /// A `w x h` crop of a registry photo with a little deterministic noise, so every code
    /// length and run of the Huffman tables turns up.
    fn picture(w: u32, h: u32) -> Vec<u8> {
        let photo = image::load_from_memory(&registry_photo("obama.jpg")).expect("photo").to_rgb8();
        let mut state = 0x2545_f491u32;
        let mut out = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let p = photo.get_pixel(x % photo.width(), y % photo.height());
                for c in p.0 {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    out.push(c.saturating_add((state >> 28) as u8));
                }
            }
        }
        out
    }

    fn encode(pixels: &[u8], (w, h): (u32, u32), grey: bool, sampling: SamplingFactor, restart: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, 90);
        e.set_sampling_factor(sampling);
        e.set_restart_interval(restart);
        if grey {
            let luma: Vec<u8> = pixels.chunks(3).map(|p| p[1]).collect();
            e.encode(&luma, w as u16, h as u16, ColorType::Luma).expect("encode");
        } else {
            e.encode(pixels, w as u16, h as u16, ColorType::Rgb).expect("encode");
        }
        out
    }

    fn same_as_jpeg_decoder(bytes: &[u8], what: &str) {
        for scale in [2, 4, 8] {
            let ours = decode_scaled(bytes, scale, LIMIT).unwrap_or_else(|| panic!("{what} 1/{scale}: not taken"));
            let theirs = reference(bytes, scale);
            assert_eq!((ours.0, ours.1), (theirs.0, theirs.1), "{what} 1/{scale}: size");
            if let Some(i) = ours.2.iter().zip(&theirs.2).position(|(a, b)| a != b) {
                let px = i / 3;
                panic!(
                    "{what} 1/{scale}: pixel ({}, {}) channel {} is {}, jpeg-decoder's {}",
                    px % ours.0 as usize,
                    px / ours.0 as usize,
                    i % 3,
                    ours.2[i],
                    theirs.2[i]
                );
            }
        }
    }

    #[test]
    fn registry_photos_decode_to_jpeg_decoders_pixels() {
        for name in ["obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg", "azure_queryface.jpg"] {
            same_as_jpeg_decoder(&registry_photo(name), name);
        }
    }

    #[test]
    fn every_sampling_size_and_restart_interval_decodes_to_jpeg_decoders_pixels() {
        let samplings = [
            ("4:4:4", SamplingFactor::R_4_4_4),
            ("4:2:2", SamplingFactor::R_4_2_2),
            ("4:4:0", SamplingFactor::R_4_4_0),
            ("4:2:0", SamplingFactor::R_4_2_0),
            ("2x2 all", SamplingFactor::F_2_2),
        ];
        // Sizes that leave partial MCUs on both axes, a chroma plane one sample wide or high at
        // 1/8, whole MCUs, and rows that are not a multiple of the vector code's 8 pixels. (A
        // photo one pixel wide is not among them: jpeg-decoder picks its scale by the longer
        // side there, so it gives no reference at the scale asked; the engine refuses sides
        // under 36 pixels anyway.)
        for (w, h) in [(97, 61), (9, 23), (40, 9), (16, 16), (333, 250)] {
            let pixels = picture(w, h);
            for restart in [0, 1, 7] {
                for (label, sampling) in samplings {
                    let bytes = encode(&pixels, (w, h), false, sampling, restart);
                    same_as_jpeg_decoder(&bytes, &format!("{w}x{h} {label} restart {restart}"));
                }
                let bytes = encode(&pixels, (w, h), true, SamplingFactor::R_4_4_4, restart);
                same_as_jpeg_decoder(&bytes, &format!("{w}x{h} grey restart {restart}"));
            }
        }
    }

    #[test]
    fn streams_it_does_not_take_are_left_to_jpeg_decoder() {
        let pixels = picture(64, 48);
        let mut progressive = Vec::new();
        let mut e = Encoder::new(&mut progressive, 90);
        e.set_progressive(true);
        e.encode(&pixels, 64, 48, ColorType::Rgb).expect("encode");
        assert!(decode_scaled(&progressive, 2, LIMIT).is_none(), "progressive");
        let mut cmyk = Vec::new();
        let four: Vec<u8> = pixels.chunks(3).flat_map(|p| [p[0], p[1], p[2], 0]).collect();
        Encoder::new(&mut cmyk, 90).encode(&four, 64, 48, ColorType::Cmyk).expect("encode");
        assert!(decode_scaled(&cmyk, 2, LIMIT).is_none(), "CMYK");
        let baseline = encode(&pixels, (64, 48), false, SamplingFactor::R_4_2_0, 0);
        assert!(decode_scaled(&baseline, 2, 100).is_none(), "over the allocation limit");
        assert!(decode_scaled(&baseline, 3, LIMIT).is_none(), "scale 3");
        // Cut short, even by its EOI alone: jpeg-decoder's error, not an image with a made-up end.
        assert!(decode_scaled(&baseline, 2, LIMIT).is_some());
        assert!(decode_scaled(&baseline[..baseline.len() - 2], 2, LIMIT).is_none(), "no EOI");
        assert!(decode_scaled(&baseline[..baseline.len() / 2], 2, LIMIT).is_none(), "half the scan");
        // Restart markers out of their order.
        let restarts = encode(&pixels, (64, 48), false, SamplingFactor::R_4_2_0, 1);
        assert!(decode_scaled(&restarts, 2, LIMIT).is_some());
        let mut swapped = restarts.clone();
        let rst0 = swapped.windows(2).position(|w| w == [0xFF, 0xD0]).expect("an RST0 marker");
        swapped[rst0 + 1] = 0xD1;
        assert!(decode_scaled(&swapped, 2, LIMIT).is_none(), "RST1 where RST0 belongs");
        // Cut short anywhere, or with a byte changed anywhere, it never panics.
        for cut in (0..baseline.len()).step_by(7) {
            let _ = decode_scaled(&baseline[..cut], 4, LIMIT);
            let mut changed = baseline.clone();
            changed[cut] ^= 0x5A;
            let _ = decode_scaled(&changed, 4, LIMIT);
        }
    }
}
