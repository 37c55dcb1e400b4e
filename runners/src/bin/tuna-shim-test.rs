//! The shim, built inside tuna-runners so that its tests can run it (the shipped binary is
//! `tuna-shim` in the tuna crate).

fn main() {
    std::process::exit(tuna_runners::local::shim_main());
}
