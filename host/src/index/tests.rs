use super::*;

/// A seeded pseudo-random unit vector.
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 20_001) as f32 / 10_000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn uuid(n: u64) -> String {
    Uuid::from_u128(u128::from(n) * 7919 + 1).to_string()
}

/// `n` persons with `per` faces each around a centre of their own.
fn group(n: u64, per: u64) -> Vec<(String, String, Vec<f32>)> {
    let mut out = Vec::new();
    for p in 0..n {
        let centre = vector(p, 128);
        for f in 0..per {
            let noise = vector(1_000_000 + p * per + f, 128);
            let v: Vec<f32> = centre.iter().zip(&noise).map(|(c, e)| c + 0.6 * e).collect();
            out.push((uuid(p), uuid(1_000_000 + p * per + f), v));
        }
    }
    out
}

fn exact_best(faces: &[(String, String, Vec<f32>)], q: &[f32], k: usize) -> Vec<(String, f32)> {
    let mut best = std::collections::HashMap::<&str, f32>::new();
    for (p, _, v) in faces {
        let c = face_core::cosine(v, q);
        let e = best.entry(p).or_insert(-2.0);
        *e = e.max(c);
    }
    let mut ranked: Vec<(String, f32)> = best.into_iter().map(|(p, c)| (p.to_owned(), c)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

#[test]
fn the_lists_keep_the_best_person_of_a_large_group() {
    // Just past the size where searches are narrowed to the nearest lists. Every face shares
    // one offset, as real embeddings share a mean.
    let offset = vector(99, 128);
    let shift = |v: &[f32]| -> Vec<f32> { v.iter().zip(&offset).map(|(x, o)| x + 0.8 * o).collect() };
    let persons = PREFILTER_ROWS as u64 / 4;
    let mut faces = group(persons, 4);
    for face in &mut faces {
        face.2 = shift(&face.2);
    }
    let rows = faces.iter().map(|(p, f, v)| Row { face_id: f, person_id: Some(p), embedding: v });
    let index = Index::from_faces(RecognitionModel::SFace, 1, true, rows).unwrap();
    let lists = &index.lists;
    assert_eq!(lists.members.len(), index.len());
    assert_eq!(lists.starts.len(), (index.len() as f64).sqrt() as usize + 1);
    assert_eq!(lists.centres.len(), (lists.starts.len() - 1) * 128);
    // Twenty query faces, each a new photo of a known person (its centre plus noise of its
    // own: about cos 0.7 to that person's faces), all in one call.
    let queries: Vec<Vec<f32>> = (0..20u64)
        .map(|seed| {
            let noise = vector(7_000_000 + seed, 128);
            let centre = vector(seed * 9_973 % persons, 128);
            shift(&centre.iter().zip(&noise).map(|(c, e)| c + 0.6 * e).collect::<Vec<f32>>())
        })
        .collect();
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    let by_id: std::collections::HashMap<&str, &[f32]> =
        faces.iter().map(|(_, f, v)| (f.as_str(), v.as_slice())).collect();
    // The caller's exact re-ranking of the candidates: the best person and cosine.
    let best = |cands: &[u32], q: &[f32]| {
        cands
            .iter()
            .flat_map(|&u| index.rows_of(u))
            .map(|r| {
                let (person, face) = index.ids(r);
                (person.unwrap(), face_core::cosine(by_id[face.as_str()], q))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let cands = index.candidates(&refs, 0.3, 1);
    for (q, cands) in queries.iter().zip(&cands) {
        let exact = exact_best(&faces, q, 1);
        assert_eq!(best(cands, q).expect("a candidate").0, exact[0].0, "top-1 person");
        assert!(cands.len() < 50, "{} candidates", cands.len());
    }
    // The lists are stored with the index, and an index stored without them (as before
    // they existed) splits the same way when read.
    let bytes = index.to_bytes();
    let lists_len = 4 + lists.centres.len() * 4 + index.len() * 4;
    let back = Index::from_bytes(&bytes).unwrap();
    let older = Index::from_bytes(&bytes[..bytes.len() - lists_len]).unwrap();
    for other in [&back, &older] {
        assert_eq!(other.lists.members, lists.members);
        assert_eq!(other.lists.centres, lists.centres);
        assert_eq!((&other.codes, &other.scales), (&index.codes, &index.scales));
        assert_eq!(other.candidates(&refs, 0.3, 1), cands);
    }
    assert_eq!(older.to_bytes(), bytes);
    assert!(Index::from_bytes(&bytes[..bytes.len() - 1]).is_err(), "a damaged list is refused");
    // A LargeFaceList of the same faces, searched for its best 20 as find-similar does. These
    // vectors are spread evenly over the sphere, the lists' hardest case (real embeddings
    // cluster): the exact best face is found for at least 19 of the 20 queries, and at least
    // 80% of the faces clearly like a query (cos > 0.6, mostly its person's) are found.
    let rows = faces.iter().map(|(_, f, v)| Row { face_id: f, person_id: None, embedding: v });
    let list = Index::from_faces(RecognitionModel::SFace, 1, false, rows).unwrap();
    assert_eq!(list.lists.members.len(), list.len());
    let (mut best_found, mut alike_found, mut alike_all) = (0, 0, 0);
    for (q, query) in queries.iter().zip(list.candidates(&refs, -1.0, 20)) {
        let found: Vec<String> = query.iter().map(|&u| list.ids(u).1).collect();
        let cos = |v: &[f32]| face_core::cosine(v, q);
        let best = faces.iter().max_by(|a, b| cos(&a.2).total_cmp(&cos(&b.2))).unwrap();
        best_found += usize::from(found.contains(&best.1));
        let alike: Vec<&String> = faces.iter().filter(|(_, _, v)| cos(v) > 0.6).map(|(_, f, _)| f).collect();
        alike_all += alike.len();
        alike_found += alike.iter().filter(|f| found.contains(f)).count();
    }
    assert!(best_found >= 19, "the best face found for {best_found} of 20 queries");
    assert!(alike_found * 5 >= alike_all * 4, "{alike_found} of {alike_all} faces alike found");
    // A deleted person is never found.
    let gone = exact_best(&faces, &queries[0], 1)[0].0.clone();
    assert!(index.kill_person(&gone));
    let after = index.candidates(&refs[..1], -1.0, 1);
    let found = best(&after[0], &queries[0]).expect("a candidate");
    assert_ne!(found.0, gone);
    let live: Vec<_> = faces.iter().filter(|(p, _, _)| *p != gone).cloned().collect();
    assert_eq!(found.0, exact_best(&live, &queries[0], 1)[0].0, "top-1 once the best is deleted");
}

#[test]
fn candidates_hold_the_exact_best_persons() {
    let faces = group(300, 4);
    let rows = faces.iter().map(|(p, f, v)| Row { face_id: f, person_id: Some(p), embedding: v });
    let index = Index::from_faces(RecognitionModel::SFace, 1, true, rows).unwrap();
    assert_eq!(index.len(), 1200);
    for seed in 0..20 {
        let q = vector(5_000_000 + seed, 128);
        let q: Vec<f32> = q.iter().zip(&faces[(seed * 37) as usize].2).map(|(a, b)| a + b).collect();
        let cands = index.candidates(&[&q], -1.0, 5);
        let exact = exact_best(&faces, &q, 5);
        let held: Vec<String> = cands[0].iter().map(|&u| index.ids(index.rows_of(u)[0]).0.unwrap()).collect();
        for (p, _) in &exact {
            assert!(held.contains(p), "seed {seed}: {p} missing from {} candidates", held.len());
        }
        assert!(held.len() < 60, "the bound keeps the candidates few: {}", held.len());
    }
}

#[test]
fn dead_rows_are_never_found_and_the_bytes_round_trip() {
    let faces = group(20, 3);
    let rows = faces.iter().map(|(p, f, v)| Row { face_id: f, person_id: Some(p), embedding: v });
    let index = Index::from_faces(RecognitionModel::SFace, 42, true, rows).unwrap();
    let (p0, f0, v0) = &faces[0];
    let top = |ix: &Index| {
        ix.candidates(&[v0], 0.5, 1)[0].iter().map(|&u| ix.ids(ix.rows_of(u)[0]).0.unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(top(&index), [p0.as_str()]);
    assert!(index.kill_face(Some(p0), f0));
    assert_eq!(index.live(), 59);
    assert!(index.kill_person(p0));
    assert!(!index.kill_person(&uuid(999)));
    assert!(!top(&index).contains(p0), "a deleted person is not found");
    let back = Index::from_bytes(&index.to_bytes()).unwrap();
    assert_eq!((back.len(), back.trained_ms, back.live()), (60, 42, 60), "deaths are not part of the training");
    assert_eq!(top(&back), [p0.as_str()]);
    let mut damaged = index.to_bytes();
    damaged.truncate(damaged.len() - 1);
    assert!(Index::from_bytes(&damaged).is_err());
    assert!(Index::from_bytes(b"FACEIDX1").is_err());
    // Streamed from parts of 100 bytes as a store hands them over: the same index.
    let mut parts: Vec<Vec<u8>> = Vec::new();
    index
        .write_parts(100, &mut |_, p: &[u8]| {
            parts.push(p.to_vec());
            Ok::<(), ()>(())
        })
        .unwrap();
    let len = parts.iter().map(Vec::len).sum::<usize>() as u64;
    let mut stream = crate::store::PartsReader::new(parts.len(), |i| Ok(parts[i].clone()));
    let streamed = Index::from_reader(len, &mut stream).unwrap();
    assert_eq!(streamed.to_bytes(), back.to_bytes());
    // A stream shorter than its stated length, or one whose part fails, is refused.
    let mut short = crate::store::PartsReader::new(parts.len() - 1, |i| Ok(parts[i].clone()));
    assert!(Index::from_reader(len, &mut short).is_err());
    let mut failing = crate::store::PartsReader::new(parts.len(), |i| {
        if i == 3 { Err(crate::store::StoreError::Unavailable("cut".into())) } else { Ok(parts[i].clone()) }
    });
    assert!(Index::from_reader(len, &mut failing).is_err());
    assert!(failing.error.is_some(), "the store's error is kept for the caller");
}

#[test]
fn rows_are_permuted_in_place_or_not_at_all() {
    let mut v: Vec<i8> = (0..12).collect();
    // Rows of 3: row m takes old row from[m].
    assert!(permute_rows(&mut v, 3, &[2, 0, 3, 1]));
    assert_eq!(v, [6, 7, 8, 0, 1, 2, 9, 10, 11, 3, 4, 5]);
    let mut w: Vec<f32> = vec![0.5, 1.5, 2.5];
    assert!(permute_rows(&mut w, 1, &[0, 1, 2]), "the identity");
    assert_eq!(w, [0.5, 1.5, 2.5]);
    for bad in [&[0u32, 0, 1][..], &[0, 1, 3], &[0, 1]] {
        let mut u: Vec<i8> = vec![1, 2, 3];
        assert!(!permute_rows(&mut u, 1, bad), "{bad:?}");
        assert_eq!(u, [1, 2, 3], "untouched");
    }
}

#[test]
fn the_threshold_becomes_a_cosine() {
    for c in [0.1f32, 0.5, 0.9] {
        let cos = cosine_for(RecognitionModel::SFace, c);
        assert!(face_core::confidence_from_cosine(RecognitionModel::SFace, cos + 1e-4) >= c);
        assert!(face_core::confidence_from_cosine(RecognitionModel::SFace, cos - 1e-3) < c);
    }
    assert_eq!(cosine_for(RecognitionModel::SFace, 0.0), -1.0);
}

#[test]
fn the_avx2_kernel_computes_the_portable_kernels_products() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for dim in [16, 32, 128, 512] {
        for queries in [1, 3, 4, 5, 9] {
            // The extremes included: rows at -128 and 127, queries at -127 and 127.
            let rows: Vec<i8> = (0..dim * 7).map(|i| if i % 11 == 0 { -128 } else { next() as i8 }).collect();
            let qs: Vec<Query> = (0..queries)
                .map(|_| Query {
                    codes: (0..dim).map(|_| ((next() % 255) as i16 - 127) as i8).collect(),
                    scale: 1.0,
                    bound: 0.0,
                })
                .collect();
            let refs: Vec<&Query> = qs.iter().collect();
            let mut portable = vec![0i32; 7 * queries];
            kernel::dots(&rows, &refs, &mut portable);
            let mut chosen = vec![0i32; 7 * queries];
            kernel::kernel(dim)(&rows, &refs, &mut chosen);
            assert_eq!(chosen, portable, "dim {dim}, {queries} queries");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // Dims that are not a multiple of 32 go to the portable kernel.
                assert_eq!(kernel::avx2_takes(&rows, &refs, &chosen), dim % 32 == 0, "dim {dim}");
                if dim % 32 != 0 {
                    continue;
                }
                let mut avx2 = vec![0i32; 7 * queries];
                // SAFETY: the CPU has AVX2 and the lengths were checked just above.
                #[allow(unsafe_code)]
                unsafe {
                    kernel::dots_avx2(&rows, &refs, &mut avx2)
                };
                assert_eq!(avx2, portable, "dim {dim}, {queries} queries");
            }
        }
    }
    // Lengths the AVX2 kernel must not be handed: the chosen kernel falls back to the portable one.
    let q = Query { codes: vec![1; 128], scale: 1.0, bound: 0.0 };
    let short = Query { codes: vec![1; 64], scale: 1.0, bound: 0.0 };
    let extreme = Query { codes: vec![-128; 128], scale: 1.0, bound: 0.0 };
    let rows = vec![1i8; 128 * 2];
    assert!(!kernel::avx2_takes(&rows, &[&q, &short], &[0; 4]), "queries of two lengths");
    assert!(!kernel::avx2_takes(&rows[..200], &[&q], &[0; 2]), "a cut row");
    assert!(!kernel::avx2_takes(&rows, &[&q], &[0; 1]), "an output too short");
    assert!(!kernel::avx2_takes(&rows, &[], &[]), "no query");
    assert!(!kernel::avx2_takes(&rows, &[&extreme], &[0; 2]), "a query code of -128");
    let mut out = [0i32; 2];
    kernel::kernel(128)(&rows[..200], &[&q], &mut out);
    assert_eq!(out, [128, 0], "the cut row is left out, as the portable kernel does");
}
