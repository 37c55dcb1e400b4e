//! A minimal safetensors writer: an 8-byte little-endian header length, the JSON header
//! (dtype, shape and byte range of each tensor, padded to 8 bytes), then the raw data. Tensors
//! are streamed to the file one by one.

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
