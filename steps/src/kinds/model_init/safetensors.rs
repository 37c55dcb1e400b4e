//! A minimal safetensors writer: an 8-byte little-endian header length, the JSON header
//! (dtype, shape and byte range of each tensor, padded to 8 bytes), then the raw data. Tensors
//! are streamed to the file one by one; [`TensorSet`] fills them from seeded streams.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::StepError;

/// Fills a tensor's values (the vector comes with the tensor's length).
pub(crate) type Filler = Box<dyn Fn(&mut Vec<f32>)>;

/// One fp32 tensor to write: its name, shape and a function that fills its values.
pub(crate) struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub fill: Filler,
}

impl Entry {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Writes `entries` to `path`; the number of values written.
pub(crate) fn write(path: &Path, entries: &[Entry]) -> Result<usize, StepError> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for e in entries {
        let bytes = e.len() * 4;
        header.insert(
            e.name.clone(),
            serde_json::json!({"dtype": "F32", "shape": e.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut head = serde_json::to_vec(&header).expect("header serializes");
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let io = |e| StepError::io(format!("writing {}", path.display()), e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::new(file);
    out.write_all(&(head.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&head).map_err(io)?;
    let mut values = Vec::new();
    let mut total = 0;
    for e in entries {
        values.clear();
        (e.fill)(&mut values);
        assert_eq!(values.len(), e.len(), "tensor {} filled wrongly", e.name);
        for v in &values {
            out.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        total += values.len();
    }
    out.flush().map_err(io)?;
    Ok(total)
}

/// How a tensor is initialised.
pub(crate) enum Fill {
    /// Normal(0, 0.02²), from the set's seeded stream.
    Normal,
    /// Every value the same.
    Const(f32),
}

/// The tensors of a model being made, each drawn from its own seeded stream.
pub(crate) struct TensorSet {
    entries: Vec<Entry>,
    stream: u64,
}

impl TensorSet {
    pub(crate) fn new(seed: u64) -> Self {
        TensorSet {
            entries: Vec::new(),
            stream: seed.wrapping_mul(0x1000_0000_01b3),
        }
    }

    pub(crate) fn add(&mut self, name: String, shape: Vec<usize>, fill: Fill) {
        self.stream = self.stream.wrapping_add(1);
        let len: usize = shape.iter().product();
        let fill: Filler = match fill {
            Fill::Normal => {
                let f = normal(self.stream, 0.02);
                Box::new(move |v: &mut Vec<f32>| {
                    v.resize(len, 0.0);
                    f(v)
                })
            }
            Fill::Const(c) => Box::new(move |v: &mut Vec<f32>| v.resize(len, c)),
        };
        self.entries.push(Entry { name, shape, fill });
    }

    /// Writes the set; the number of values.
    pub(crate) fn write(&self, path: &Path) -> Result<usize, StepError> {
        write(path, &self.entries)
    }
}

/// Normal(0, std²) values from a seeded stream (splitmix64 + Box–Muller).
fn normal(seed: u64, std: f32) -> impl Fn(&mut Vec<f32>) {
    move |out: &mut Vec<f32>| {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let len = out.len();
        out.clear();
        for _ in 0..len.div_ceil(2) {
            let (u1, u2) = (next().max(f64::MIN_POSITIVE), next());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32 * std);
            out.push((r * t.sin()) as f32 * std);
        }
        out.truncate(len);
    }
}
