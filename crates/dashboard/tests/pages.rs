//! The dashboard over plain HTTP: status codes and messages for bad input, auth rules, and the
//! size of live updates.

mod support;

use decsweep_server::ServeOptions;
use reqwest::header;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{command_spec, Server};

async fn get(s: &Server, path: &str) -> (StatusCode, String) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn unknown_pages_are_404_and_malformed_queries_400_with_what_was_expected() {
    let s = Server::open().await;
    s.create(&command_spec("a", 3), None).await;
    let (status, body) = get(&s, "/studies/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("There is no study named `nope`"), "{body}");
    let (status, body) = get(&s, "/trials/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("There is no trial 999"), "{body}");
    let (status, body) = get(&s, "/trials/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("positive whole number"), "{body}");

    let (status, body) = get(&s, "/studies/a?page=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("`page` must be a whole number from 1"), "{body}");
    let (status, body) = get(&s, "/studies/a?sort=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("`sort` must be one of id, label") && body.contains("param:x"), "{body}");
    let (status, body) = get(&s, "/live/studies/a?since=-4").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("change cursor"), "{body}");

    let (status, body) = get(&s, "/studies/a?page=1&sort=param:x&order=desc&status=pending").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("trials 1–3 of"), "{body}");
    let (status, body) = get(&s, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(">cancelled<"), "cancelled is a column of the studies table");
    s.stop().await;
}

#[tokio::test]
async fn the_summary_fragment_uses_the_reports_statistics() {
    let s = Server::open().await;
    s.create(&command_spec("sum", 2), None).await;
    for acc in [0.6, 0.8] {
        let lease = s.lease("w/0", "w", None).await;
        s.complete(&lease, json!({ "accuracy": acc }), None).await;
    }
    let (status, body) = get(&s, "/studies/sum/summary").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Summary over seeds") && body.contains("accuracy mean ± std"), "{body}");
    assert!(body.contains("0.6") && body.contains("0.8"), "each configuration's mean: {body}");
    s.stop().await;
}

#[tokio::test]
async fn a_live_update_carries_only_the_changed_row() {
    let s = Server::open().await;
    s.create(&command_spec("big", 400), None).await;
    let cursor = s.coordinator.change_cursor().await.unwrap();
    let lease = s.lease("w/0", "w", None).await;
    s.complete(&lease, json!({ "accuracy": 0.5 }), None).await;
    let ids: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    let path = format!("/live/studies/big?since={cursor}&ids={}&metrics=accuracy&params=x", ids.join(","));
    let (status, body) = get(&s, &path).await;
    assert_eq!(status, StatusCode::OK);
    let patch: Value = serde_json::from_str(&body).unwrap();
    let rows = patch["rows"].as_object().unwrap();
    assert_eq!(rows.keys().collect::<Vec<_>>(), [&lease.trial_id.to_string()]);
    assert!(rows[&lease.trial_id.to_string()].as_str().unwrap().contains("data-status=\"completed\""));
    assert!(body.len() < 4_000, "one row and the counts, not the study: {} bytes", body.len());
    let now = patch["cursor"].as_i64().unwrap();
    let (_, quiet) = get(&s, &format!("/live/studies/big?since={now}&ids=1")).await;
    let quiet: Value = serde_json::from_str(&quiet).unwrap();
    assert_eq!((quiet["changed"].as_u64(), quiet["rows"].as_object().unwrap().len()), (Some(0), 0));
    s.stop().await;
}

#[tokio::test]
async fn sessions_are_checked_for_role_and_origin() {
    let token = "t0ken";
    let s = Server::start_serving(ServeOptions {
        token: Some(token.into()),
        read_token: Some("r3ad".into()),
        ..Default::default()
    })
    .await;
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = no_redirects.get(s.url("/studies/x?page=2")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[header::LOCATION], "/login?next=/studies/x%3Fpage%3D2");

    let login = |secret: &'static str, origin: &'static str| {
        let c = no_redirects.clone();
        let url = s.url("/login");
        let host = s.base.trim_start_matches("http://").to_string();
        async move {
            c.post(url)
                .header(header::ORIGIN, origin.replace("SELF", &host))
                .form(&[("token", secret), ("next", "/")])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = login("nope", "http://SELF").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("Wrong token"));
    assert_eq!(login(token, "http://evil.example").await.status(), StatusCode::FORBIDDEN, "login CSRF refused");

    let full = login(token, "http://SELF").await;
    assert_eq!(full.status(), StatusCode::SEE_OTHER);
    let cookie = full.headers()[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains(token), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let read = login("r3ad", "http://SELF").await;
    let read_session = read.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();

    let host = s.base.trim_start_matches("http://").to_string();
    let create = |cookie: String, origin: Option<String>| {
        let c = no_redirects.clone();
        let url = s.url("/v1/studies");
        async move {
            let mut req = c
                .post(url)
                .header(header::COOKIE, cookie)
                .json(&json!({ "spec": command_spec("made", 1), "spec_path": "t.toml" }));
            if let Some(o) = origin {
                req = req.header(header::ORIGIN, o);
            }
            req.send().await.unwrap().status()
        }
    };
    assert_eq!(create(session.clone(), Some("http://evil.example".into())).await, StatusCode::FORBIDDEN);
    assert_eq!(create(session.clone(), None).await, StatusCode::FORBIDDEN, "no Origin or Referer: refused");
    assert_eq!(create(read_session.clone(), Some(format!("http://{host}"))).await, StatusCode::FORBIDDEN, "view only");
    assert_eq!(create(session.clone(), Some(format!("http://{host}"))).await, StatusCode::CREATED);

    // The read token as a bearer reads /v1 but changes nothing; the pages accept the session.
    let r = s.http.get(s.url("/v1/studies")).bearer_auth("r3ad").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.post("/v1/lease", Some("r3ad"), json!({ "worker": "w" })).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let page = no_redirects.get(s.url("/studies/made")).header(header::COOKIE, &read_session).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let logout = no_redirects
        .post(s.url("/logout"))
        .header(header::COOKIE, &session)
        .header(header::ORIGIN, format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let after = no_redirects.get(s.url("/")).header(header::COOKIE, &session).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the session ended");
    s.stop().await;
}

/// The study page's "Resume study" button: the request its script sends (`POST` of its
/// `data-body` to its `data-action`, with the session cookie) is held to the same rules as the
/// other control buttons (a session that may act, and the page's own Origin), and it brings a
/// cancelled study back: no trial or study state says `cancelled` afterwards.
#[tokio::test]
async fn the_resume_button_brings_a_cancelled_study_back_under_the_session_rules() {
    let token = "t0ken-of-the-resume-test";
    let s = Server::start_serving(ServeOptions {
        token: Some(token.into()),
        read_token: Some("r3ad-of-the-resume-test".into()),
        ..Default::default()
    })
    .await;
    s.create(&command_spec("back", 3), Some(token)).await;
    let done = s.lease("w/0", "w", Some(token)).await;
    s.complete(&done, json!({ "accuracy": 0.5 }), Some(token)).await;
    assert_eq!(s.post("/v1/studies/back/cancel", Some(token), json!({})).await.status(), StatusCode::OK);

    let host = s.base.trim_start_matches("http://").to_string();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let session = |secret: &'static str| {
        let (c, url, origin) = (no_redirects.clone(), s.url("/login"), format!("http://{host}"));
        async move {
            let r = c.post(url).header(header::ORIGIN, origin).form(&[("token", secret), ("next", "/")]).send().await;
            let r = r.unwrap();
            assert_eq!(r.status(), StatusCode::SEE_OTHER);
            r.headers()[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string()
        }
    };
    let (full, view_only) = (session(token).await, session("r3ad-of-the-resume-test").await);
    let page = |cookie: String| {
        let (c, url) = (no_redirects.clone(), s.url("/studies/back"));
        async move { c.get(url).header(header::COOKIE, cookie).send().await.unwrap().text().await.unwrap() }
    };
    let list = |cookie: String| {
        let (c, url) = (no_redirects.clone(), s.url("/"));
        async move { c.get(url).header(header::COOKIE, cookie).send().await.unwrap().text().await.unwrap() }
    };
    assert!(list(full.clone()).await.contains("status s-cancelled"), "the study shows as cancelled first");
    let html = page(full.clone()).await;
    let button = html.split("id=\"resume-study\"").nth(1).expect("the page has the resume button");
    let button = &button[..button.find('>').unwrap()];
    assert!(
        button.contains("data-action=\"/v1/studies/back/resume\"") && button.contains("data-body=\"{}\""),
        "{button}"
    );
    assert!(!page(view_only.clone()).await.contains("resume-study"), "a view-only login has no buttons");

    // What the button's script sends, from elsewhere, without an Origin, or by a view-only login.
    let press = |cookie: String, origin: Option<String>| {
        let (c, url) = (no_redirects.clone(), s.url("/v1/studies/back/resume"));
        async move {
            let mut req = c.post(url).header(header::COOKIE, cookie).header(header::CONTENT_TYPE, "application/json");
            if let Some(o) = origin {
                req = req.header(header::ORIGIN, o);
            }
            req.body("{}").send().await.unwrap()
        }
    };
    let own = Some(format!("http://{host}"));
    assert_eq!(press(full.clone(), Some("http://evil.example".into())).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(press(full.clone(), None).await.status(), StatusCode::FORBIDDEN, "no Origin or Referer");
    assert_eq!(press(view_only, own.clone()).await.status(), StatusCode::FORBIDDEN, "view only");
    let info = s.coordinator.study("back").await.unwrap();
    assert_eq!((info.counts.cancelled, info.counts.pending), (2, 0), "nothing refused changed anything");

    let pressed = press(full.clone(), own).await;
    assert_eq!(pressed.status(), StatusCode::OK);
    assert_eq!(pressed.json::<Value>().await.unwrap(), json!({ "resumed": 2, "was_cancelled": true }));
    let info = s.coordinator.study("back").await.unwrap();
    assert_eq!((info.counts.cancelled, info.counts.pending, info.counts.completed), (0, 2, 1));
    let list = list(full.clone()).await;
    assert!(list.contains("status s-waiting") && !list.contains("status s-cancelled"), "{list}");
    assert!(!page(full).await.contains("resume-study"), "no resume button once nothing is cancelled");
    s.stop().await;
}

/// baseline and dec at two label fractions: four configurations, each named by its label.
const LABELLED_SPEC: &str = r#"
[study]
name = "labelled"
dataset = { synthetic = { seed = 0, n = 12 } }
pipelines = ["baseline", "dec"]
seeds = [0, 1]

[space]
label_fraction = { grid = [0.5, 1.0] }
"#;

#[tokio::test]
async fn configurations_are_named_by_their_labels_with_the_hash_only_in_tooltips() {
    let s = Server::open().await;
    s.create(LABELLED_SPEC, None).await;
    let lease = s.lease("w/0", "w", None).await;
    s.complete(&lease, json!({ "accuracy": 0.7 }), None).await;
    let trials = s.coordinator.trials("labelled", None).await.unwrap();
    let first = trials.iter().find(|t| t.id == lease.trial_id).unwrap();
    let hash = first.config_id.clone();
    let label = format!("{} lf={}", first.pipeline, first.params["label_fraction"]);

    let (status, page) = get(&s, "/studies/labelled").await;
    assert_eq!(status, StatusCode::OK);
    let cell = format!("title=\"config {hash}\">{label}</td>");
    assert!(page.contains(&cell), "trial table row named {label}: {page}");
    for name in ["baseline lf=0.5", "baseline lf=1", "dec lf=0.5", "dec lf=1"] {
        assert!(page.contains(&format!(">{name}</td>")), "{name} in the trial table");
    }
    assert!(!page.contains(&format!(">{hash}<")), "no bare hash as a row name");

    let (_, summary) = get(&s, "/studies/labelled/summary").await;
    assert!(summary.contains(&format!("title=\"config {hash}\">{label}</td>")), "summary row: {summary}");
    assert!(!summary.contains(&format!(">{hash}<")), "{summary}");

    let (_, trial) = get(&s, &format!("/trials/{}", lease.trial_id)).await;
    assert!(trial.contains(&format!("title=\"config {hash}\">{label}</span>")), "trial page: {trial}");

    // A live update names the row the same way.
    let path = format!("/live/studies/labelled?since=0&ids={}&metrics=accuracy&params=label_fraction", lease.trial_id);
    let (_, live) = get(&s, &path).await;
    let patch: Value = serde_json::from_str(&live).unwrap();
    let row = patch["rows"][lease.trial_id.to_string()].as_str().unwrap_or_default();
    assert!(row.contains(&format!(">{label}</td>")), "{live}");
    s.stop().await;
}

#[tokio::test]
async fn a_worker_that_said_goodbye_is_listed_stopped_and_one_that_vanished_is_not() {
    let s = Server::open().await;
    s.create(&command_spec("w", 4), None).await;
    let done = s.lease("clean-1/0", "clean-1", None).await;
    s.complete(&done, json!({ "accuracy": 0.5 }), None).await;
    let _held = s.lease("killed-2/0", "killed-2", None).await;
    let r = s.post("/v1/workers/goodbye", None, json!({ "name": "clean-1" })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["recorded"], true);
    let unknown = s.post("/v1/workers/goodbye", None, json!({ "name": "nobody" })).await;
    assert_eq!(unknown.json::<Value>().await.unwrap()["recorded"], false, "an unknown name records nothing");

    let (status, body) = get(&s, "/workers").await;
    assert_eq!(status, StatusCode::OK);
    let row = |name: &str| {
        let start = body.find(&format!("data-worker=\"{name}\"")).unwrap_or_else(|| panic!("{name} listed: {body}"));
        body[start..].split("</tr>").next().unwrap().to_string()
    };
    assert!(row("clean-1").contains("stopped"), "{}", row("clean-1"));
    assert!(!row("killed-2").contains("stopped"), "no goodbye, no `stopped`: {}", row("killed-2"));
    s.stop().await;
}
