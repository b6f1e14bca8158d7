//! The values crossing the WIT boundary from the guest: any faces a guest could return are
//! either refused by the host's contract check (`engine::checked`) or safe for every host path
//! that uses them: the Face API JSON, the faceId cache's embedding, and a trained index's
//! candidates and its stored form.

#![no_main]

use face_host::api::detect::detected_face;
use face_host::api::wire::ATTRIBUTES;
use face_host::engine::checked::{self, Asked};
use face_host::engine::guest;
use face_host::index::{Index, Row};

/// Reads values out of the fuzzer's bytes; past the end, zeros.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Mostly a value in 0..1; sometimes one a broken guest could send.
    fn unit(&mut self) -> f32 {
        match self.byte() {
            b @ 0..=249 => f32::from(b) / 249.0,
            250 => f32::NAN,
            251 => f32::INFINITY,
            252 => f32::NEG_INFINITY,
            253 => -1.0,
            254 => 1.5,
            _ => f32::from_bits(self.u32()),
        }
    }

    fn scaled(&mut self, scale: f32) -> f32 {
        self.unit() * scale
    }

    fn len(&mut self, usual: usize) -> usize {
        match self.byte() {
            0..=199 => usual,
            b => usize::from(b - 200),
        }
    }

    fn point(&mut self) -> guest::Point {
        guest::Point { x: self.scaled(4096.0), y: self.scaled(4096.0) }
    }

    fn points(&mut self, usual: usize) -> Vec<guest::Point> {
        let n = self.len(usual);
        (0..n).map(|_| self.point()).collect()
    }

    fn model(&mut self) -> guest::RecognitionModel {
        if self.bool() { guest::RecognitionModel::Sface } else { guest::RecognitionModel::Faceapi }
    }

    fn level(&mut self) -> guest::Level {
        [guest::Level::Low, guest::Level::Medium, guest::Level::High][usize::from(self.byte() % 3)]
    }

    fn measure(&mut self) -> guest::Measure {
        guest::Measure { value: self.unit(), level: self.level() }
    }

    fn embedding(&mut self) -> guest::Embedding {
        let n = self.len(128);
        let mut vector: Vec<f32> = (0..n).map(|_| self.unit() - 0.5).collect();
        if self.bool() {
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        guest::Embedding { model: self.model(), vector }
    }

    fn attributes(&mut self) -> guest::Attributes {
        use guest::{AccessoryType as A, HairColorType as H};
        let expressions = (0..self.len(7)).map(|_| self.unit()).collect();
        let head_pose = self.bool().then(|| guest::HeadPose {
            roll: self.scaled(360.0) - 180.0,
            yaw: self.scaled(360.0) - 180.0,
            pitch: self.scaled(360.0) - 180.0,
        });
        let colors = [H::Unknown, H::White, H::Gray, H::Blond, H::Brown, H::Red, H::Black, H::Other];
        let hair_color = (0..self.len(3))
            .map(|_| guest::HairColor { color: colors[usize::from(self.byte() % 8)], confidence: self.unit() })
            .collect();
        let accessories = (0..self.len(1))
            .map(|_| guest::Accessory {
                kind: [A::Headwear, A::Glasses, A::Mask][usize::from(self.byte() % 3)],
                confidence: self.unit(),
            })
            .collect();
        guest::Attributes {
            age: self.scaled(120.0),
            gender: if self.bool() { guest::Gender::Male } else { guest::Gender::Female },
            gender_confidence: self.unit(),
            expressions,
            smile: self.unit(),
            blur: self.measure(),
            exposure: self.measure(),
            noise: self.measure(),
            head_pose,
            emotion: guest::Emotion {
                anger: self.unit(),
                contempt: self.unit(),
                disgust: self.unit(),
                fear: self.unit(),
                happiness: self.unit(),
                neutral: self.unit(),
                sadness: self.unit(),
                surprise: self.unit(),
            },
            glasses: [
                guest::Glasses::NoGlasses,
                guest::Glasses::ReadingGlasses,
                guest::Glasses::Sunglasses,
                guest::Glasses::SwimmingGoggles,
            ][usize::from(self.byte() % 4)],
            facial_hair: guest::FacialHair { moustache: self.unit(), beard: self.unit(), sideburns: self.unit() },
            hair: guest::Hair { bald: self.unit(), invisible: self.bool(), hair_color },
            makeup: guest::Makeup { eye_makeup: self.bool(), lip_makeup: self.bool() },
            occlusion: guest::Occlusion {
                forehead_occluded: self.bool(),
                eye_occluded: self.bool(),
                mouth_occluded: self.bool(),
            },
            accessories,
        }
    }

    fn face(&mut self) -> guest::Face {
        guest::Face {
            rectangle: guest::Rectangle { left: self.u32(), top: self.u32(), width: self.u32(), height: self.u32() },
            box_: guest::Rect {
                left: self.scaled(4096.0),
                top: self.scaled(4096.0),
                width: self.scaled(4096.0),
                height: self.scaled(4096.0),
            },
            score: self.unit(),
            landmarks5: self.points(5),
            landmarks68: self.points(68),
            landmarks27: self.points(27),
            embedding: self.bool().then(|| self.embedding()),
            attributes: self.bool().then(|| self.attributes()),
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let asked = Asked {
        max_faces: u32::from(r.byte() % 8),
        landmarks: r.bool(),
        recognition: r.bool().then(|| r.model()),
        attributes: r.bool(),
    };
    let faces: Vec<guest::Face> = (0..r.byte() % 8).map(|_| r.face()).collect();
    if checked::faces(&faces, &asked).is_err() {
        return;
    }
    let wanted: &[&str] = if asked.attributes { &ATTRIBUTES } else { &[] };
    for f in &faces {
        let r = &f.rectangle;
        assert!(r.left.checked_add(r.width).is_some() && r.top.checked_add(r.height).is_some());
        let json = detected_face(f, Some(uuid::Uuid::nil()), Some("recognition_04"), asked.landmarks, wanted)
            .expect("a checked face writes");
        let text = serde_json::to_string(&json).expect("JSON writes");
        assert!(!text.contains("null"), "a checked face wrote a null (a NaN or infinity): {text}");
        if let (Some(model), Some(e)) = (asked.recognition, &f.embedding) {
            let model = face_core::RecognitionModel::from(model);
            let (face, person) = (uuid::Uuid::from_u128(1).to_string(), uuid::Uuid::from_u128(2).to_string());
            let row = Row { face_id: &face, person_id: Some(&person), embedding: &e.vector };
            let index = Index::from_faces(model, 0, true, [row]).expect("an index of UUID ids builds");
            assert_eq!(index.len(), 1, "a checked embedding is indexed");
            let found = index.candidates(&[&e.vector], -1.0, 1);
            assert_eq!(found[0].len(), 1, "a face finds itself");
            for row in index.rows_of(found[0][0]) {
                assert_eq!(index.ids(row), (Some(person.clone()), face.clone()));
            }
            let confidence = face_core::confidence_from_cosine(model, face_core::cosine(&e.vector, &e.vector));
            assert!((0.0..=1.0).contains(&confidence), "confidence {confidence} of a face with itself");
            let back = Index::from_bytes(&index.to_bytes()).expect("an index reads back");
            assert_eq!((back.len(), back.live()), (1, 1));
        }
    }
});
