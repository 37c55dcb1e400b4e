//! `tuna-shim ATTEMPT_DIR`: the detached wrapper the local runner starts for each job.
//! Kept tiny so it starts fast; all of it lives in `tuna_runners::local`.

fn main() {
    std::process::exit(tuna_runners::local::shim_main());
}
