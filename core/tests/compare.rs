use face_core::{DetectOptions, Embedding, FindSimilarMode, RecognitionModel, find_similar, group, verify};

use crate::common::{engine, photo};

fn embeddings(model: RecognitionModel) -> Vec<Embedding> {
    ["obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg"]
        .iter()
        .map(|name| {
            let options = DetectOptions { recognition: Some(model), landmarks: false, ..Default::default() };
            engine().detect(&photo(name), &options).unwrap().remove(0).embedding.unwrap()
        })
        .collect()
}

#[test]
fn grouping_puts_one_person_together_and_the_odd_face_in_the_messy_group() {
    for model in RecognitionModel::ALL {
        let g = group(&embeddings(model)).unwrap();
        assert_eq!(g.groups, vec![vec![0, 2, 3]], "{model:?}");
        assert_eq!(g.messy_group, vec![1], "{model:?}");
    }
}

#[test]
fn find_similar_ranks_and_filters_by_mode() {
    let all = embeddings(RecognitionModel::SFace);
    let (query, candidates) = (&all[0], &all[1..]);
    let person = find_similar(query, candidates, FindSimilarMode::MatchPerson, 20).unwrap();
    let mut indices: Vec<usize> = person.iter().map(|s| s.index).collect();
    indices.sort();
    assert_eq!(indices, vec![1, 2]);
    assert!(person.windows(2).all(|w| w[0].confidence >= w[1].confidence));
    let face = find_similar(query, candidates, FindSimilarMode::MatchFace, 20).unwrap();
    assert_eq!(face.len(), 3);
    assert_eq!(face.last().unwrap().index, 0, "biden ranks last");
    assert_eq!(find_similar(query, candidates, FindSimilarMode::MatchFace, 1).unwrap().len(), 1);
}

#[test]
fn embeddings_of_different_models_do_not_compare() {
    let a = embeddings(RecognitionModel::SFace).remove(0);
    let b = embeddings(RecognitionModel::FaceApi).remove(0);
    assert!(verify(&a, &b).is_err());
    assert!(group(&vec![a.clone(); 1001]).is_err());
}

#[test]
fn confidence_is_one_half_exactly_at_the_published_threshold_and_monotonic() {
    for model in RecognitionModel::ALL {
        let t = model.threshold();
        assert!(face_core::confidence_from_cosine(model, t) >= 0.5);
        assert!(face_core::confidence_from_cosine(model, t - 1e-4) < 0.5);
        let mut last = -1.0;
        for i in -100..=100 {
            let c = face_core::confidence_from_cosine(model, i as f32 / 100.0);
            assert!((0.0..=1.0).contains(&c) && c >= last);
            last = c;
        }
    }
}

#[test]
fn the_registry_int8_sface_loads_into_the_very_weights_of_the_folded_file() {
    // Every runtime loads SFace as the registry has it (int8, blocked DequantizeLinear) and folds
    // it as it loads; `cargo xtask models` also writes the converter's folded f32 file, which
    // nothing ships. Same arithmetic: the same embedding, bit for bit, and the same bytes once
    // encoded again for onnxruntime.
    let int8_engine = engine();
    let int8 = crate::common::model("face_recognition_sface_2021dec_int8bq.onnx");
    let folded = crate::common::model("face_recognition_sface_2021dec.onnx");
    assert!(int8.len() * 3 < folded.len(), "the int8 file is the small one");
    let mut models = face_core::ModelSet::read_with(|name| Ok::<_, ()>(crate::common::model(name))).unwrap();
    assert_eq!(models.sface, int8, "the engine loads the registry's int8 file");
    models.sface = folded;
    let f32_engine = face_core::Engine::new(&models.bytes()).expect("the folded SFace loads");
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    for name in ["obama.jpg", "biden.jpg"] {
        let a = f32_engine.detect(&photo(name), &options).unwrap();
        let b = int8_engine.detect(&photo(name), &options).unwrap();
        let (a, b) = (a[0].embedding.as_ref().unwrap(), b[0].embedding.as_ref().unwrap());
        assert_eq!(a.vector, b.vector, "{name}");
    }
    let reencoded = face_core::onnxruntime_bytes(&int8).unwrap().expect("SFace has int8 weights to fold");
    let again = face_core::onnxruntime_bytes(&reencoded).unwrap();
    assert!(again.is_none(), "a folded, rewritten model has nothing left to change");
    assert!(reencoded.len() > int8.len() * 3, "the folded weights are f32");
    let detector = crate::common::model("face_detection_yunet_2023mar.onnx");
    assert!(face_core::onnxruntime_bytes(&detector).unwrap().is_none(), "the detector file is used as it is");
    assert!(face_core::onnxruntime_bytes(b"not a model").is_err());
}

#[test]
fn the_rewritten_prelu_computes_the_embeddings_of_the_graph_as_stored() {
    // tract runs SFace with each PRelu as face-core's one-pass operator, onnxruntime with each
    // rewritten as slope * x + (1 - slope) * Relu(x); the reference here is the registry's graph
    // as it is stored (only its int8 weights folded), run by tract with its own PRelu. Both give
    // its embeddings up to float rounding.
    let as_stored = face_core::Engine::from_runners(
        |info| {
            let plan = face_core::TractPlan::load_as_stored(&crate::common::model(info.file), info.shapes)
                .map_err(|reason| face_core::Error::Model { model: info.name, reason })?;
            Ok(std::sync::Arc::new(plan) as std::sync::Arc<dyn face_core::Runner>)
        },
        false,
    )
    .expect("the stored SFace loads");
    let mut models = face_core::ModelSet::read_with(|name| Ok::<_, ()>(crate::common::model(name))).unwrap();
    models.sface = face_core::onnxruntime_bytes(&models.sface).unwrap().expect("SFace is folded and rewritten");
    let onnxruntime_graph = face_core::Engine::new(&models.bytes()).expect("the rewritten SFace loads");
    let options = DetectOptions { recognition: Some(RecognitionModel::SFace), ..Default::default() };
    let mut largest = 0.0f32;
    for name in ["obama.jpg", "biden.jpg", "obama2.jpg"] {
        let reference = as_stored.detect(&photo(name), &options).unwrap().remove(0).embedding.unwrap();
        for (label, engine) in [("tract's", engine()), ("onnxruntime's", &onnxruntime_graph)] {
            let got = engine.detect(&photo(name), &options).unwrap().remove(0).embedding.unwrap();
            let worst = got.vector.iter().zip(&reference.vector).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{name}: {label} rewritten graph's embedding differs by {worst}");
            largest = largest.max(worst);
        }
    }
    // Other operators round differently: identical embeddings would mean nothing was rewritten.
    eprintln!("largest difference from the stored graph: {largest:e}");
    assert!(largest > 0.0, "the rewritten graphs computed exactly the stored graph's embeddings");
}
