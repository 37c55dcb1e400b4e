//! The malformed-workflow corpus: every file fails, with the diagnostics its snapshot pins.

use tuna::dag::load_str;

use super::{repo, yaml_files};

#[test]
fn every_invalid_file_fails_with_its_snapshotted_diagnostics() {
    let files = yaml_files("tests/corpus/invalid");
    assert!(files.len() >= 30, "the corpus holds {} files", files.len());
    for (name, rel) in files {
        let text = std::fs::read_to_string(repo().join(&rel)).unwrap();
        let err = match load_str(&rel, &text) {
            Ok(_) => panic!("{} loaded, but it is in the invalid corpus", rel.display()),
            Err(e) => e,
        };
        for d in err.diagnostics() {
            assert!(
                d.code.starts_with("tuna::workflow::"),
                "{}: {}",
                rel.display(),
                d.code
            );
        }
        insta::assert_snapshot!(name, err.render_plain());
    }
}

#[test]
fn diagnostics_as_json_name_file_line_and_column() {
    let text = "name: j\nsteps:\n  a:\n    run: echo a\n    need: [b]\n";
    let err = load_str(std::path::Path::new("w.yaml"), text).unwrap_err();
    let json = err.to_json();
    assert_eq!(
        json,
        serde_json::json!([{
            "file": "w.yaml",
            "line": 5,
            "column": 5,
            "code": "tuna::workflow::unknown_key",
            "message": "unknown key `need` in step `a`",
            "help": "did you mean `needs`?",
        }])
    );
}

#[test]
fn a_single_problem_renders_as_one_miette_report() {
    let err = load_str(std::path::Path::new("w.yaml"), "name: x\nsteps: {}\n").unwrap_err();
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut out, &err)
        .unwrap();
    assert!(out.contains("tuna::workflow::no_steps"), "{out}");
    assert!(out.contains("[w.yaml:2:1]"), "{out}");
}

#[test]
fn an_unreadable_file_is_a_load_error() {
    let err = tuna::dag::load_file(std::path::Path::new("/nonexistent/w.yaml")).unwrap_err();
    assert_eq!(err.diagnostics()[0].code, "tuna::workflow::io");
    assert!(
        err.render_plain()
            .contains("cannot read /nonexistent/w.yaml")
    );
}
