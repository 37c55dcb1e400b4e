//! tuna's built-in step kinds.
