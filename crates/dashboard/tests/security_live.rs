//! A hostile live-update request: however many ids and columns it names, the answer stays small
//! and the work bounded (issue 18, finding 4).

mod support;

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::json;
use support::{command_spec, Server};

async fn get(s: &Server, path: &str) -> (StatusCode, String) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_live_update_naming_ten_thousand_columns_gets_a_small_refusal() {
    let s = Server::open().await;
    s.create(&command_spec("wide", 300), None).await;
    let cursor = s.coordinator.change_cursor().await.unwrap();
    for _ in 0..3 {
        let lease = s.lease("w/0", "w", None).await;
        s.complete(&lease, json!({ "accuracy": 0.5 }), None).await;
    }
    let ids: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    let names: Vec<String> = (0..10_000).map(|i| format!("m{i}")).collect();
    let started = Instant::now();
    for (list, what) in [("metrics", "metrics"), ("params", "params")] {
        let path = format!("/live/studies/wide?since=0&ids={}&{list}={}", ids.join(","), names.join(","));
        let (status, body) = get(&s, &path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains(&format!("`{what}` lists more than 200 entries")), "{body}");
        assert!(body.len() < 2_000, "a refusal, not a table: {} bytes", body.len());
    }
    // Within the limit, names the study does not have: parameters are refused, metrics (which
    // follow the latest results) make the page redraw. Neither renders a row.
    let few: Vec<String> = (0..150).map(|i| format!("m{i}")).collect();
    let path = format!("/live/studies/wide?since=0&ids={}&params=x,{}", ids.join(","), few.join(","));
    let (status, body) = get(&s, &path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("`params` names columns this study does not have: m0, m1, m2, m3, m4 and 145 more"),
        "{body}"
    );
    let path = format!("/live/studies/wide?since=0&ids={}&metrics=accuracy,{}", ids.join(","), few.join(","));
    let (status, body) = get(&s, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let patch: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(patch["stale"], true, "{body}");
    assert!(body.len() < 1_000, "{} bytes", body.len());
    // More ids than a page shows.
    let many: Vec<String> = (1..=501).map(|i| i.to_string()).collect();
    let (status, body) = get(&s, &format!("/live/studies/wide?since=0&ids={}", many.join(","))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("`ids` lists more than 500 entries"), "{body}");
    // The study's own columns still work, and the answer carries only the changed rows.
    let path = format!("/live/studies/wide?since={cursor}&ids={}&metrics=accuracy&params=x", ids.join(","));
    let (status, body) = get(&s, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.len() < 20_000, "three changed rows of 300: {} bytes", body.len());
    assert!(started.elapsed().as_secs() < 5, "took {:?}", started.elapsed());
    s.stop().await;
}
