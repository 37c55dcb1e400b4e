//! The `StepKind` trait and the registry of built-in kinds.

/// A problem in a step's `with:` mapping, at a dotted key path (`lora.r`; empty = the mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithProblem {
    pub path: String,
    pub message: String,
}

/// A built-in step kind.
pub trait StepKind: Sync {
    /// The name used in `uses:`.
    fn name(&self) -> &'static str;
    /// Bump to invalidate every cached result of this kind.
    fn version(&self) -> u32;
    /// Checks a `with:` mapping before anything runs.
    fn check_with(&self, with: &serde_yaml::Value) -> Vec<WithProblem>;
}

static KINDS: &[&dyn StepKind] = &[];

/// Every built-in kind.
pub fn all() -> &'static [&'static dyn StepKind] {
    KINDS
}

/// The kind named `name`, if built in.
pub fn find(name: &str) -> Option<&'static dyn StepKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}
