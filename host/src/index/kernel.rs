//! The int8 dot-product kernels the scans run: a portable one and, where the CPU has it, AVX2.

use super::*;

/// Int8 dot products of rows with queries, as [`dots`] defines them.
pub(super) type Kernel = dyn Fn(&[i8], &[&Query], &mut [i32]) + Sync;

/// The fastest of [`dots`] and [`dots_avx2`] this CPU runs for queries of length `dim`.
pub(super) fn kernel(dim: usize) -> &'static Kernel {
    #[cfg(target_arch = "x86_64")]
    if dim.is_multiple_of(32) && dim <= 1024 && std::arch::is_x86_feature_detected!("avx2") {
        return &|rows, qs, out| {
            if !avx2_takes(rows, qs, out) {
                return dots(rows, qs, out);
            }
            // SAFETY: the CPU has AVX2 (checked above), and `avx2_takes` checked the lengths
            // `dots_avx2` reads and writes: queries of one length, a multiple of 32 of at most
            // 1024, whole rows of it and an `out` of rows times queries.
            #[allow(unsafe_code)]
            unsafe {
                dots_avx2(rows, qs, out)
            }
        };
    }
    let _ = dim;
    &dots
}

/// Whether `rows`, `queries` and `out` are what [`dots_avx2`] takes, checked before every
/// call so that no caller's mistake becomes a read or write out of bounds (the portable kernel
/// takes any lengths): queries of one length, a multiple of 32 of at most 1024, with codes in
/// -127..=127 (as [`quantise`] makes them: the kernel negates them), whole rows of that length
/// and an output of rows times queries.
pub(super) fn avx2_takes(rows: &[i8], queries: &[&Query], out: &[i32]) -> bool {
    let Some(dim) = queries.first().map(|q| q.codes.len()) else { return false };
    dim > 0
        && dim.is_multiple_of(32)
        && dim <= 1024
        && queries.iter().all(|q| q.codes.len() == dim && !q.codes.contains(&i8::MIN))
        && rows.len().is_multiple_of(dim)
        && out.len() >= rows.len() / dim * queries.len()
}

/// The dot products of each int8 row in `rows` (rows of the queries' length, back to back) with
/// every query: `out[row * queries + i] = row . queries[i]`. The arithmetic wraps so that
/// overflow checks (on in the dev profile) do not slow it; it cannot overflow, as
/// 127 * 127 * 16384 < 2^31 for any embedding this service makes.
pub(super) fn dots(rows: &[i8], queries: &[&Query], out: &mut [i32]) {
    let dim = queries.first().map_or(1, |q| q.codes.len()).max(1);
    for (row, out) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(queries.len())) {
        for (q, o) in queries.iter().zip(out.iter_mut()) {
            *o = row
                .iter()
                .zip(&q.codes)
                .fold(0i32, |s, (&a, &b)| s.wrapping_add(i32::from(a).wrapping_mul(i32::from(b))));
        }
    }
}

/// [`dots`] with AVX2, 32 products at a time in 8-bit lanes: a row's block is loaded once with
/// its absolute values, and each query costs a sign flip by the row's signs (`vpsignb`), one
/// unsigned-by-signed multiply-add into 16-bit pairs (`vpmaddubsw`) and one into 32-bit sums
/// (`vpmaddwd` by ones) per 32 components. Exact: |row| <= 128 and |query| <= 127, so a pair's
/// sum is at most 32,512 and never saturates; the results are [`dots`]'s.
///
/// # Safety
/// The CPU must have AVX2; every query must have the same length, a multiple of 32 and at most
/// 1024, and codes in -127..=127; `rows` must be whole rows of that length and `out` at least
/// rows times queries long ([`avx2_takes`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
pub(super) unsafe fn dots_avx2(rows: &[i8], queries: &[&Query], out: &mut [i32]) {
    use std::arch::x86_64::*;
    let Some(dim) = queries.first().map(|q| q.codes.len()) else { return };
    let blocks = (dim / 32).min(32);
    let ones = _mm256_set1_epi16(1);
    let (mut signs, mut magnitudes) = ([_mm256_setzero_si256(); 32], [_mm256_setzero_si256(); 32]);
    // One query's 32 products of block `b`, as eight 32-bit sums.
    let block = |b: usize, q: &Query, sign: __m256i, magnitude: __m256i| {
        // SAFETY: the query is as long as the row: block b is inside it.
        let v = unsafe { _mm256_loadu_si256(q.codes.as_ptr().add(32 * b).cast()) };
        _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(v, sign)), ones)
    };
    for (row, out) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(queries.len())) {
        for b in 0..blocks {
            // SAFETY: block b is row[32 b..32 b + 32], inside `row`.
            signs[b] = unsafe { _mm256_loadu_si256(row.as_ptr().add(32 * b).cast()) };
            magnitudes[b] = _mm256_abs_epi8(signs[b]);
        }
        // Four queries at a time: four independent sums, reduced together by three
        // horizontal adds into the four results.
        let mut fours = queries.chunks_exact(4);
        let mut o4 = out.chunks_exact_mut(4);
        for (q, o) in (&mut fours).zip(&mut o4) {
            let mut acc = [_mm256_setzero_si256(); 4];
            for b in 0..blocks {
                for (a, q) in acc.iter_mut().zip(q) {
                    *a = _mm256_add_epi32(*a, block(b, q, signs[b], magnitudes[b]));
                }
            }
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
            let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            // SAFETY: `o` is four i32s, the 16 bytes written.
            unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), s) };
        }
        for (q, o) in fours.remainder().iter().zip(o4.into_remainder()) {
            let mut acc = _mm256_setzero_si256();
            for b in 0..blocks {
                acc = _mm256_add_epi32(acc, block(b, q, signs[b], magnitudes[b]));
            }
            let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
            *o = _mm_cvtsi128_si32(s);
        }
    }
}
