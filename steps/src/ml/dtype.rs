//! Precision and device settings turned into libtorch kinds and devices.

pub use crate::settings::{DType, DeviceSpec};
use tch::{Device, Kind};

impl DType {
    /// The libtorch kind.
    pub fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::Bf16 => Kind::BFloat16,
        }
    }
}

impl DeviceSpec {
    /// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    pub fn resolve(&self) -> Result<Device, String> {
        let s = self.0.trim();
        match s {
            "" | "auto" => Ok(Device::cuda_if_available()),
            "cpu" => Ok(Device::Cpu),
            "cuda" => cuda(0),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => cuda(n),
                _ => Err(format!(
                    "`{s}` is not a device (write cpu, cuda, cuda:N or auto)"
                )),
            },
        }
    }
}

fn cuda(n: usize) -> Result<Device, String> {
    if tch::Cuda::is_available() && n < tch::Cuda::device_count() as usize {
        Ok(Device::Cuda(n))
    } else {
        Err(format!(
            "cuda:{n} requested but libtorch sees {} CUDA device(s)",
            tch::Cuda::device_count()
        ))
    }
}
