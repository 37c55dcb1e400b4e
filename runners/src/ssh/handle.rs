//! What an ssh runner stores in a [`Handle`](crate::Handle): enough to find the attempt on its
//! host again from a later tuna process.

use serde::{Deserialize, Serialize};

/// The runner-specific part of an ssh job's handle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SshHandle {
    /// `[host]:port`, for messages and to notice a handle of another host.
    pub host: String,
    /// The remote attempt folder.
    pub dir: String,
    /// The wrapper process that supervises the job (its own session).
    pub supervisor: u32,
    /// The declared outputs to bring back after success.
    #[serde(default)]
    pub outputs: Vec<String>,
}
