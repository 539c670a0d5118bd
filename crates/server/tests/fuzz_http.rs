//! Fuzzing every HTTP endpoint (issue 12, part 5), in process through the router
//! (`tower::ServiceExt::oneshot`) for speed. The endpoints come from `Coordinator::routes()`, so
//! a route added later is fuzzed without touching this file; request bodies start from the
//! OpenAPI document's schema for the route (when it has one) and are then mutated, or are
//! random JSON, random bytes, or nothing. Path parameters are real names, ids and lease ids,
//! edge numbers, or odd strings (percent-encoded unicode, dot segments, very long).
//!
//! Half the requests are sent a second time dressed as a hostile client's (issue 18): made-up
//! methods, and some of the time a `Host` (other hosts, look-alikes, junk), an `Origin` (this server, other
//! sites, `null`), a `Cookie` (made-up sessions, thousands of cookies, huge values) and a query
//! string (thousands of pairs, repeated keys, huge values), from `decsweep_fuzz::http`.
//!
//! Every answer must be below 500 with a body of at most [`MAX_ANSWER_BYTES`], no handler may
//! panic, and afterwards the same router still answers `/healthz` and still leases and completes
//! a trial. The coordinator holds a real study with leased trials, so valid-looking calls reach
//! the store rather than stopping at "no such lease".

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use decsweep_api::wire::{CheckpointUpload, CreateStudy, LeaseRequest};
use decsweep_api::Stage;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_fuzz::http::{cookie_header, encode, host_header, origin_header, query_string};
use decsweep_fuzz::{
    instance_of, mutate_json, mutate_tokens, random_bytes, random_json, weird_string, Campaign, FuzzRng, Rng,
    SliceRandom,
};
use decsweep_server::sessions::SESSION_COOKIE;
use decsweep_server::{openapi, ServeOptions, Server};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";

/// The largest answer any fuzzed route may give. The study here is small (80 trials at most
/// after the fuzzer's own add-seeds), so every honest answer is far below it; one past it means
/// a request made the server do work out of proportion to it.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The `Host` a request carries unless the case makes one up: loopback, as a local client sends.
const LOOPBACK_HOST: &str = "127.0.0.1";

/// Query keys the API reads, for query strings that reach its parsers.
const QUERY_KEYS: &[&str] = &["status", "stage", "epoch", "sha256", "wait_ms", "since", "ids", "after", "limit"];

/// Methods no route serves, to check that they neither fail nor grow anything.
const MADE_UP_METHODS: &[&str] = &["FOO", "M-SEARCH", "PROPFIND", "get", "X-0123456789-0123456789-0123456789"];

fn command_spec(name: &str) -> String {
    format!(
        r#"[study]
name = "{name}"
dataset = {{ synthetic = {{ seed = 1, n = 8 }} }}
pipelines = ["command"]
seeds = [0, 1]
retries = 1

[command]
program = ["python3", "train.py"]

[space]
x = {{ grid = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }}
"#
    )
}

/// What the fuzzer knows of the coordinator's state, to build path parameters that exist.
struct Known {
    study: String,
    trial_ids: Vec<i64>,
    lease_ids: Vec<String>,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn path_value(rng: &mut FuzzRng, name: &str, known: &Known) -> String {
    match rng.gen_range(0..10) {
        // The value that exists, most often, so calls get past the lookup.
        0..=3 => match name {
            "name" => known.study.clone(),
            "id" => known.trial_ids.choose(rng).copied().unwrap_or(1).to_string(),
            // Half the time the newest lease, as a worker calls with its current one: most older
            // leases have ended, so their calls stop at the 409 of the lease's standing.
            "lease_id" if rng.gen_bool(0.5) => known.lease_ids.last().cloned().unwrap_or_default(),
            "lease_id" => known.lease_ids.choose(rng).cloned().unwrap_or_default(),
            "sha256" => known.sha256.clone(),
            _ => weird_string(rng),
        },
        4 => ["0", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e3", "0x10", "+1"]
            .choose(rng)
            .unwrap()
            .to_string(),
        5 => "..".into(),
        6 => encode(&"a".repeat(rng.gen_range(1..5000))),
        7 => known.sha256.to_uppercase(),
        _ => encode(&weird_string(rng).chars().take(300).collect::<String>()),
    }
}

fn fill_path(rng: &mut FuzzRng, template: &str, known: &Known) -> String {
    template
        .split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => path_value(rng, name, known),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `$ref` schema of a route's JSON body in the OpenAPI document, if it has one.
fn body_schema(doc: &Value, method: &str, path: &str) -> Option<Value> {
    doc["paths"][path][method.to_lowercase()]["requestBody"]["content"]["application/json"]["schema"]
        .as_object()
        .map(|o| Value::Object(o.clone()))
}

const BODY_KINDS: [&str; 6] = ["schema", "mutated schema", "mutated spec", "random json", "random bytes", "none"];

fn make_body(rng: &mut FuzzRng, schema: Option<&Value>, components: &Value) -> (usize, Vec<u8>) {
    // Mostly bodies shaped by the schema, so calls get past parsing into the handlers.
    let kind = match rng.gen_range(0..10) {
        0..=2 => 0,
        3..=5 => 1,
        6 => 2,
        7 => 3,
        8 => 4,
        _ => 5,
    };
    let body = match (kind, schema) {
        (0, Some(s)) => instance_of(rng, s, components, 8).to_string().into_bytes(),
        (1, Some(s)) => {
            let valid = instance_of(rng, s, components, 8);
            mutate_json(rng, &valid).to_string().into_bytes()
        }
        (2, _) => {
            let base = command_spec(&format!("fuzz-{}", rng.gen_range(0..4)));
            let spec = mutate_tokens(rng, &base);
            json!({ "spec": spec, "spec_path": weird_string(rng).chars().take(200).collect::<String>() })
                .to_string()
                .into_bytes()
        }
        (4, _) => random_bytes(rng, 2048),
        (5, _) => Vec::new(),
        _ => random_json(rng, 3).to_string().into_bytes(),
    };
    (kind, body)
}

/// The answer's status and body; panics when the body is longer than [`MAX_ANSWER_BYTES`].
async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let what = format!("{} {}", req.method(), req.uri().path());
    let response = router.clone().oneshot(req).await.expect("the router's error type is Infallible");
    let status = response.status();
    let body = to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .unwrap_or_else(|e| panic!("{what} answered {status} with a body over {MAX_ANSWER_BYTES} bytes: {e}"));
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn request(method: Method, uri: &str, token: Option<&str>, content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri).header(header::HOST, LOOPBACK_HOST);
    if let Some(t) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(Body::from(body)).expect("a valid request")
}

/// Some of the time each: a made-up `Host`, an `Origin`, a `Cookie`.
fn hostile_headers(rng: &mut FuzzRng) -> Vec<(header::HeaderName, Vec<u8>)> {
    let mut headers = Vec::new();
    if rng.gen_bool(0.2) {
        headers.push((header::HOST, host_header(rng)));
    }
    if rng.gen_bool(0.2) {
        headers.push((header::ORIGIN, origin_header(rng, LOOPBACK_HOST)));
    }
    if rng.gen_bool(0.15) {
        headers.push((header::COOKIE, cookie_header(rng, SESSION_COOKIE)));
    }
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_random_requests_without_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = CoordinatorOptions {
        // Lease requests with any `wait_ms` come back at once.
        max_wait: Duration::from_millis(5),
        ..Default::default()
    };
    let c = Coordinator::open(dir.path().join("fuzz.db"), options).unwrap();
    let info = c.create_study(CreateStudy::new(command_spec("fuzz"), "fuzz.toml")).await.unwrap();
    let mut lease_ids = Vec::new();
    for w in 0..4 {
        let lease = c
            .lease(&LeaseRequest { worker: format!("w{w}"), wait_ms: 0, agent: None, pack: None })
            .await
            .unwrap()
            .unwrap();
        lease_ids.push(lease.lease_id);
    }
    // A stored checkpoint, so downloading one can succeed from the first case on.
    let state = b"a trial state".to_vec();
    let upload = CheckpointUpload { stage: Stage::Ae, epoch: 1, sha256: sha256_hex(&state) };
    c.save_checkpoint(&lease_ids[0], upload, Body::from(state).into_data_stream()).await.unwrap();
    let trial_ids = c.trials("fuzz", None).await.unwrap().iter().map(|t| t.id).collect();
    let mut known = Known { study: info.name.clone(), trial_ids, lease_ids, sha256: info.dataset_sha256.clone() };

    let server = Server::new(c.clone(), ServeOptions { token: Some(TOKEN.into()), ..Default::default() });
    let router = server.router();
    let routes = server.routes();
    let doc = openapi::document();
    let components = doc["components"]["schemas"].clone();
    let campaign = Campaign::new("http endpoints", 8000);
    let mut statuses: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut kinds = [0usize; BODY_KINDS.len()];
    let hostile = Campaign::new("http endpoints: headers and queries", campaign.cases());
    let mut hostile_statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let indices = campaign.indices();
    for &i in &indices {
        let (mut rng, _guard) = campaign.case(i);
        let rng = &mut rng;
        // Every route gets the same share of cases.
        let (route_method, template) = routes[i % routes.len()];
        let schema = body_schema(&doc, route_method, template);
        let method = if rng.gen_bool(0.9) {
            Method::from_bytes(route_method.as_bytes()).unwrap()
        } else {
            [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH].choose(rng).unwrap().clone()
        };
        let mut uri = fill_path(rng, template, &known);
        if rng.gen_bool(0.15) {
            uri.push_str(&format!("?status={}", encode(&weird_string(rng).chars().take(40).collect::<String>())));
        }
        let token = match rng.gen_range(0..20) {
            0 => None,
            1 => Some("fuzz-tokeN"),
            _ => Some(TOKEN),
        };
        let content_type = match rng.gen_range(0..20) {
            0 => "text/plain",
            1 => "",
            2 => "application/json; charset=latin1",
            _ => "application/json",
        };
        let (kind, body) = make_body(rng, schema.as_ref(), &components);
        // A checkpoint upload's query names the body's hash: half the time the right one.
        if template.ends_with("/checkpoint") && rng.gen_bool(0.5) {
            let sha = if rng.gen_bool(0.8) {
                sha256_hex(&body)
            } else {
                encode(&weird_string(rng).chars().take(80).collect::<String>())
            };
            let stage = ["ae", "dec", "finetune", "data", "nope"].choose(rng).unwrap();
            uri.push_str(&format!("?stage={stage}&epoch={}&sha256={sha}", rng.gen_range(-1..40)));
        }
        kinds[kind] += 1;
        let shown_body = String::from_utf8_lossy(&body).chars().take(500).collect::<String>();
        let ct = (!content_type.is_empty()).then_some(content_type);
        let (status, answer) = send(&router, request(method.clone(), &uri, token, ct, body.clone())).await;
        assert!(
            !status.is_server_error(),
            "{method} {uri} answered {status}: {answer}\nbody ({} kind): {shown_body}",
            BODY_KINDS[kind]
        );
        // Half the cases are sent again as a hostile client or web page would dress them: a
        // made-up method, a query list, foreign `Host`/`Origin`/`Cookie` headers. They come from a
        // stream of their own and go in a second request, so the base cases above (and the
        // state they build up, and how often each route gets past validation) stay what they
        // were before these parts were added.
        let (mut extra, _) = hostile.case(i);
        let extra = &mut extra;
        if extra.gen_bool(0.5) {
            let method = if extra.gen_bool(0.05) {
                Method::from_bytes(MADE_UP_METHODS.choose(extra).unwrap().as_bytes()).unwrap()
            } else {
                method.clone()
            };
            let uri = if !uri.contains('?') && extra.gen_bool(0.3) {
                format!("{uri}?{}", query_string(extra, QUERY_KEYS))
            } else {
                uri.clone()
            };
            let mut req = request(method.clone(), &uri, token, ct, body);
            let hostile = hostile_headers(extra);
            for (name, value) in &hostile {
                let value = header::HeaderValue::from_bytes(value).expect("decsweep_fuzz::http makes sendable values");
                req.headers_mut().insert(name, value);
            }
            let (status, answer) = send(&router, req).await;
            let shown_headers: Vec<String> = hostile
                .iter()
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v).chars().take(200).collect::<String>()))
                .collect();
            assert!(
                !status.is_server_error(),
                "hostile {method} {uri} answered {status}: {answer}\nheaders: {shown_headers:?}\nbody ({} kind): {shown_body}",
                BODY_KINDS[kind]
            );
            *hostile_statuses.entry(status.as_u16()).or_default() += 1;
        }
        // Leases the fuzzer obtained become targets of the lease calls that follow.
        if template == "/v1/lease" && status == StatusCode::OK {
            if let Some(id) =
                serde_json::from_str::<Value>(&answer).ok().and_then(|v| v["lease_id"].as_str().map(String::from))
            {
                known.lease_ids.push(id);
            }
        }
        // Trials added by a successful call (new seeds, a retry) become targets too: once a
        // cancel has ended every first trial, only those can still be failed with 200.
        if method == Method::POST && status.is_success() && template.starts_with("/v1/studies/") {
            known.trial_ids = c.trials("fuzz", None).await.unwrap().iter().map(|t| t.id).collect();
        }
        *statuses.entry(format!("{route_method} {template}")).or_default().entry(status.as_u16()).or_default() += 1;
    }

    // The server keeps serving: health, and a real lease → complete round trip.
    let (status, _) = send(&router, request(Method::GET, "/healthz", None, None, Vec::new())).await;
    assert_eq!(status, StatusCode::OK);
    let spec = command_spec("after-fuzz");
    let body = json!({ "spec": spec, "spec_path": "after.toml" }).to_string().into_bytes();
    let (status, answer) =
        send(&router, request(Method::POST, "/v1/studies", Some(TOKEN), Some("application/json"), body)).await;
    assert!(status.is_success(), "{status}: {answer}");
    let lease = c
        .lease(&LeaseRequest { worker: "after".into(), wait_ms: 0, agent: None, pack: None })
        .await
        .unwrap()
        .expect("a pending trial");
    let body = json!({ "metrics": { "accuracy": 0.5 } }).to_string().into_bytes();
    let uri = format!("/v1/leases/{}/complete", lease.lease_id);
    let (status, answer) =
        send(&router, request(Method::POST, &uri, Some(TOKEN), Some("application/json"), body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let per_route: Vec<String> = statuses
        .iter()
        .map(|(route, by)| {
            let counts: Vec<String> = by.iter().map(|(s, n)| format!("{s}×{n}")).collect();
            format!("{route}: {}", counts.join(" "))
        })
        .collect();
    for line in &per_route {
        eprintln!("  {line}");
    }
    eprintln!("  hostile copies: {hostile_statuses:?}");
    let kinds: Vec<String> = BODY_KINDS.iter().zip(kinds).map(|(k, n)| format!("{k} {n}")).collect();
    campaign.report(indices.len(), &format!("over {} routes; bodies [{}]", routes.len(), kinds.join(", ")));
    // Every route answered something other than an error at least once, so the fuzzer got
    // past validation into the handlers, not only into the 4xx paths.
    if indices.len() >= 20 * routes.len() {
        for (route, by) in &statuses {
            assert!(by.keys().any(|s| (200..300).contains(s)), "{route} never succeeded: {by:?}");
        }
    }
}
