//! The built-in step kinds, one module each.

pub(crate) mod finetune;
pub(crate) mod helm;
pub(crate) mod model_init;
pub(crate) mod model_server;
pub(crate) mod prepare;
pub(crate) mod serve;
