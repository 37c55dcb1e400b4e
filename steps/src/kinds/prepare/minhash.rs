//! Near-duplicate detection by MinHash over word 3-gram shingles with LSH banding: an example
//! is a near-duplicate of a kept one when their signatures agree on at least `threshold` of
//! their positions (an estimate of the Jaccard similarity of their shingle sets).

use std::collections::HashMap;

/// Signature length.
const HASHES: usize = 128;
/// LSH bands (each of `HASHES / BANDS` rows): two texts become candidates when one band agrees.
const BANDS: usize = 32;
const ROWS: usize = HASHES / BANDS;

/// A 64-bit mixing function (splitmix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The MinHash signature of `text`.
fn signature(text: &str) -> [u64; HASHES] {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let shingles: Vec<u64> = if words.len() < 3 {
        vec![fnv(&words.join(" "))]
    } else {
        words.windows(3).map(|w| fnv(&w.join(" "))).collect()
    };
    let mut sig = [u64::MAX; HASHES];
    for s in shingles {
        for (i, slot) in sig.iter_mut().enumerate() {
            let h = mix(s ^ mix(i as u64 + 1));
            *slot = (*slot).min(h);
        }
    }
    sig
}

/// The kept examples' signatures, indexed by band.
pub(crate) struct NearDuplicates {
    threshold: f64,
    kept: Vec<[u64; HASHES]>,
    bands: Vec<HashMap<u64, Vec<usize>>>,
}

impl NearDuplicates {
    pub(crate) fn new(threshold: f64) -> Self {
        NearDuplicates {
            threshold,
            kept: Vec::new(),
            bands: (0..BANDS).map(|_| HashMap::new()).collect(),
        }
    }

    /// Keeps `text` unless it is a near-duplicate of one kept before; says whether it was kept.
    pub(crate) fn admit(&mut self, text: &str) -> bool {
        let sig = signature(text);
        let keys: Vec<u64> = (0..BANDS)
            .map(|b| {
                sig[b * ROWS..(b + 1) * ROWS]
                    .iter()
                    .fold(b as u64, |h, &x| mix(h ^ x))
            })
            .collect();
        for (b, key) in keys.iter().enumerate() {
            for &j in self.bands[b].get(key).into_iter().flatten() {
                let same = sig
                    .iter()
                    .zip(self.kept[j].iter())
                    .filter(|(a, b)| a == b)
                    .count();
                if same as f64 / HASHES as f64 >= self.threshold {
                    return false;
                }
            }
        }
        let id = self.kept.len();
        self.kept.push(sig);
        for (b, key) in keys.into_iter().enumerate() {
            self.bands[b].entry(key).or_default().push(id);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::NearDuplicates;

    #[test]
    fn near_copies_are_caught_and_different_texts_kept() {
        let base = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat by the door";
        let mut nd = NearDuplicates::new(0.8);
        assert!(nd.admit(base));
        // One word changed at the end: most 3-grams are shared.
        assert!(!nd.admit(&base.replace("door", "window")));
        // Case and punctuation do not make a text new.
        assert!(!nd.admit(&base.to_uppercase().replace(' ', ", ")));
        assert!(nd.admit(
            "an entirely different sentence about training adapters on small language models"
        ));
    }

    #[test]
    fn threshold_one_keeps_anything_not_identical_in_words() {
        let mut nd = NearDuplicates::new(1.0);
        assert!(nd.admit("alpha beta gamma delta epsilon"));
        assert!(nd.admit("alpha beta gamma delta zeta"));
    }
}
