//! One rule for names (issue #10, item 8): a workflow, schedule or step name over 128
//! characters is refused when it is submitted or loaded, with a clear error, so every name
//! the daemon accepted can be named again (a registered schedule can always be removed).

use tuna_tests::Project;

use crate::daemon_harness::{Serve, TOKEN, submission};

fn scheduled(name: &str) -> String {
    format!(
        "name: {name}\nschedule:\n  cron: \"0 3 * * *\"\n  timezone: UTC\nsteps:\n  a:\n    run: \"true\"\n"
    )
}

#[test]
fn names_over_the_limit_are_refused_and_every_accepted_schedule_can_be_removed() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let longest = "n".repeat(128);
    let over = "n".repeat(129);

    // Over the limit: refused at submission, as a run or as a schedule, saying why.
    for route in ["/api/v1/runs", "/api/v1/schedules"] {
        let (code, body) = d.http(
            "POST",
            route,
            Some(TOKEN),
            Some(&submission(&scheduled(&over), "long.yaml")),
        );
        assert_eq!(code, 422, "{route}: {body}");
        assert!(body.contains("129 characters"), "{body}");
    }
    let list = d.get_json("/api/v1/schedules");
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");

    // The loader says the same for `tuna validate` and for a long step name.
    p.file("long.yaml", &scheduled(&over));
    let r = p.run(&["validate", "long.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("at most 128"), "{}", r.stderr);
    p.file(
        "step.yaml",
        &format!("name: s\nsteps:\n  {over}:\n    run: \"true\"\n"),
    );
    let r = p.run(&["validate", "step.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("129 characters"), "{}", r.stderr);

    // At the limit: registered, listed, and removed with `tuna schedule remove`.
    p.file("longest.yaml", &scheduled(&longest));
    let r = d.tuna(&p, &["schedule", "add", "longest.yaml"]).ok();
    assert!(r.stdout.contains(&longest), "{}", r.stdout);
    let r = d.tuna(&p, &["schedule", "remove", &longest]).ok();
    assert!(r.stdout.contains("removed"), "{}", r.stdout);
    assert_eq!(d.get_json("/api/v1/schedules").as_array().unwrap().len(), 0);

    // A name the rule refuses is refused by the client too, saying why.
    let r = d.tuna(&p, &["schedule", "remove", &over]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("at most 128"), "{}", r.stderr);
}
