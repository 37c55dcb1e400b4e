//! Tokens and error answers on the wire (issue #10, item 12): the API takes a token only from
//! the `Authorization` header; `?token=` opens a dashboard page once, which redirects without
//! it and sets an HttpOnly, SameSite=Strict session cookie (not the token) that reads pages and
//! the API but changes nothing; every error answer of the API is JSON, axum's own included.

use tuna_tests::Project;

use crate::daemon_harness::{Serve, TOKEN, request, submission};

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_api_takes_the_header_and_the_dashboard_a_session_opened_once_by_url() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let bearer = format!("Bearer {TOKEN}");
    // A token in the URL opens nothing on the API.
    for path in [
        format!("/api/v1/runs?token={TOKEN}"),
        format!("/api/v1/schedules?token={TOKEN}"),
    ] {
        let (code, _, body) = request(&d.addr, "GET", &path, &[], "");
        assert_eq!(code, 401, "{path}: {body}");
    }
    // …nor on a dashboard page with a wrong token.
    let (code, _, _) = request(&d.addr, "GET", "/?token=wrong-token-0123456789", &[], "");
    assert_eq!(code, 401);

    // A dashboard page opened with it: redirected without the token, with a session cookie.
    let (code, head, _) = request(
        &d.addr,
        "GET",
        &format!("/schedules?a=1&token={TOKEN}"),
        &[],
        "",
    );
    assert_eq!(code, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/schedules?a=1"), "{head}");
    let cookie = header(&head, "set-cookie").expect("a cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the cookie carries the token: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    // The session reads pages and the API (the dashboard's own fetches)…
    let with = [("Cookie", session.as_str())];
    let (code, head, page) = request(&d.addr, "GET", "/schedules", &with, "");
    assert_eq!(code, 200, "{head}");
    assert!(page.contains("<html"), "{page}");
    assert_eq!(request(&d.addr, "GET", "/api/v1/runs", &with, "").0, 200);
    // …but changes nothing.
    let wf = submission("name: x\nsteps:\n  a:\n    run: \"true\"\n", "x.yaml");
    let json = ("Content-Type", "application/json");
    let (code, _, body) = request(&d.addr, "POST", "/api/v1/runs", &[with[0], json], &wf);
    assert_eq!(code, 401, "{body}");
    // The header alone does.
    let (code, _, body) = request(
        &d.addr,
        "POST",
        "/api/v1/runs",
        &[("Authorization", &bearer), json],
        &wf,
    );
    assert_eq!(code, 201, "{body}");
    // A made-up session, or the token itself as a cookie, opens nothing.
    for c in [
        "tuna_session=00".to_string(),
        format!("tuna_token={TOKEN}"),
        format!("tuna_session={TOKEN}"),
    ] {
        let (code, _, _) = request(&d.addr, "GET", "/", &[("Cookie", &c)], "");
        assert_eq!(code, 401, "{c}");
    }
}

/// Method, path, headers, body, the status expected.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

#[test]
fn every_api_error_is_json() {
    let p = Project::new();
    let d = Serve::start(&p, &[]);
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let json = ("Content-Type", "application/json");
    let big = submission(
        &format!(
            "name: big\n# {}\nsteps:\n  a:\n    run: \"true\"\n",
            "x".repeat(2 << 20)
        ),
        "big.yaml",
    );
    let invalid = submission("name: bad\nsteps:\n  a:\n    rnu: x\n", "bad.yaml");
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/runs", vec![], "", 401),
        ("GET", "/api/v1/nothing-here", vec![auth], "", 404),
        (
            "GET",
            "/api/v1/runs/20990101-000000-0000",
            vec![auth],
            "",
            404,
        ),
        ("DELETE", "/api/v1/runs", vec![auth], "", 405),
        ("PUT", "/api/v1/health", vec![], "", 405),
        ("POST", "/api/v1/runs", vec![auth, json], &big, 413),
        ("POST", "/api/v1/runs", vec![auth, json], &invalid, 422),
        (
            "POST",
            "/api/v1/runs",
            vec![auth, json],
            r#"{"nope": 1}"#,
            422,
        ),
        ("POST", "/api/v1/runs", vec![auth, json], "{not json", 400),
        (
            "POST",
            "/api/v1/runs",
            vec![auth],
            r#"{"workflow": ""}"#,
            415,
        ),
        ("GET", "/api/v1/runs/%FF%FE", vec![auth], "", 400),
        ("GET", "/api/v1/runs/a.b", vec![auth], "", 400),
        ("GET", "/api/v1/runs?limit=many", vec![auth], "", 400),
        (
            "GET",
            "/api/v1/leaderboard?threshold=x",
            vec![auth],
            "",
            400,
        ),
        (
            "DELETE",
            "/api/v1/schedules/Not_A-Name",
            vec![auth],
            "",
            400,
        ),
    ];
    for (method, path, headers, body, want) in cases {
        let (code, head, text) = request(&d.addr, method, path, &headers, body);
        assert_eq!(code, want, "{method} {path}: {head}\n{text}");
        assert!(
            header(&head, "content-type").is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}: {head}"
        );
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: {v}"
        );
    }
}
