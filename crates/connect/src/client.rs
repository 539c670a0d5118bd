//! The coordinator's `/v1` API over blocking HTTP: one client for the worker agent, the
//! `decsweep` command and the tests. It knows the wire types and how to call; it does not know
//! what a trial is for, nor how a caller reports a failure to its user.
//!
//! The typed verbs (one per call of the API) are in [`crate::verbs`]; this module holds the
//! transport: the base URL, the bearer token, timeouts, and the retry of outcome calls
//! ([`crate::retry`]).

use std::time::{Duration, Instant};

use decsweep_api::wire::{Lease, LeasePack, LeaseRequest};
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::retry::{Backoff, REPORT_PATIENCE};
use crate::{ApiCallError, ClientArgs, ConnectError};

/// How long a call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the connection; `None`: as long as the whole call may take.
    pub connect: Option<Duration>,
    /// The whole of a call that is not a long poll or a transfer.
    pub request: Duration,
}

impl Timeouts {
    /// A worker agent's: a partitioned link must not hold a request until TCP gives up,
    /// minutes later.
    pub const AGENT: Timeouts = Timeouts { connect: Some(Duration::from_secs(5)), request: Duration::from_secs(20) };
    /// A person's command (`decsweep status`, `submit`, `report`...).
    pub const COMMAND: Timeouts = Timeouts { connect: None, request: Duration::from_secs(60) };
}

/// A file transfer (a dataset, a checkpoint) gets ten minutes whatever [`Timeouts`] says: a
/// dataset may be large and the link slow.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// A client of one coordinator. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::blocking::Client,
    /// `<url>/v1`, without a trailing slash.
    base: String,
    token: Option<String>,
    timeouts: Timeouts,
    /// How long [`Client::post_retrying`] keeps trying.
    patience: Duration,
}

impl Client {
    /// A client of `url` (http:// or https://) with `access`'s token and CA and the agent's
    /// [`Timeouts`]. A coordinator given no token on loopback is found through its runtime
    /// token file ([`ClientArgs::token_for`]).
    pub fn connect(url: &str, access: &ClientArgs) -> Result<Client, ConnectError> {
        Self::connect_with(url, access, Timeouts::AGENT)
    }

    /// [`Client::connect`] with other timeouts.
    pub fn connect_with(url: &str, access: &ClientArgs, timeouts: Timeouts) -> Result<Client, ConnectError> {
        check_url(url)?;
        let token = access.token_for(url)?;
        let builder = reqwest::blocking::Client::builder().timeout(None);
        let builder = match timeouts.connect {
            Some(connect) => builder.connect_timeout(connect),
            None => builder,
        };
        let http = access.build(builder)?;
        Ok(Client {
            http,
            base: format!("{}/v1", url.trim_end_matches('/')),
            token,
            timeouts,
            patience: REPORT_PATIENCE,
        })
    }

    /// A client of `url` with exactly this token (none: no `Authorization` header), trusting
    /// only the built-in roots: for tests, and programs that hold the token already.
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ConnectError> {
        let client = Self::connect_with(url, &ClientArgs::default(), Timeouts::AGENT)?;
        Ok(Client { token, ..client })
    }

    /// The same client, giving up [`Client::post_retrying`] after `patience` instead of
    /// [`REPORT_PATIENCE`].
    pub fn with_patience(self, patience: Duration) -> Client {
        Client { patience, ..self }
    }

    /// `<url>/v1`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The coordinator's URL, as given (without `/v1`).
    pub fn root(&self) -> &str {
        self.base.trim_end_matches("/v1")
    }

    /// A request to `<base>/<path>` with the token and the request timeout.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}/{path}", self.base)).timeout(self.timeouts.request);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn send(req: RequestBuilder) -> Result<Response, ApiCallError> {
        Self::check(req.send().map_err(ApiCallError::Transport)?)
    }

    /// The response when it is 2xx, else its status and message as an error.
    fn check(response: Response) -> Result<Response, ApiCallError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().unwrap_or_default();
        Err(ApiCallError::from_answer(status.as_u16(), &body))
    }

    fn json<R: DeserializeOwned>(response: Response) -> Result<R, ApiCallError> {
        response.json().map_err(ApiCallError::Decode)
    }

    /// `GET path`, its JSON answer.
    pub fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ApiCallError> {
        Self::json(Self::send(self.request(Method::GET, path))?)
    }

    /// `POST path` with a JSON body, its JSON answer. One try.
    pub fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, ApiCallError> {
        Self::json(Self::send(self.request(Method::POST, path).json(body))?)
    }

    /// Reports an outcome, retrying what [`ApiCallError::is_retryable`] allows (the coordinator
    /// may be restarting, cut off, or out of disk) with the waits of [`Backoff`], for up to the
    /// client's patience ([`REPORT_PATIENCE`]); outcome calls are idempotent, so a repeat is
    /// harmless. A 409 (someone else has the trial) and other 4xx end it at once.
    pub fn post_retrying<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ApiCallError> {
        let started = Instant::now();
        let mut backoff = Backoff::new();
        loop {
            match self.post::<_, serde_json::Value>(path, body) {
                Ok(_) => return Ok(()),
                Err(e) if !e.is_retryable() || started.elapsed() >= self.patience => return Err(e),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "retrying");
                    std::thread::sleep(backoff.next_wait());
                }
            }
        }
    }

    /// `POST /v1/lease`: a trial, or `None` when none came within `request.wait_ms` (the
    /// coordinator holds the request that long: a long poll).
    pub fn lease(&self, request: &LeaseRequest) -> Result<Option<Lease>, ApiCallError> {
        let timeout = self.timeouts.request + Duration::from_millis(request.wait_ms);
        let response = Self::send(self.request(Method::POST, "lease").json(request).timeout(timeout))?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Self::json(response).map(Some)
    }

    /// `POST /v1/lease` from a packing worker (`request.pack` set): the trials to train
    /// together, each on its own lease; empty when none came within `request.wait_ms`. An older
    /// coordinator ignores `pack` and answers one [`Lease`], read here as a pack of one.
    pub fn lease_pack(&self, request: &LeaseRequest) -> Result<Vec<Lease>, ApiCallError> {
        /// The two answers a lease request can get, told apart by their fields.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Answer {
            Pack(LeasePack),
            One(Box<Lease>),
        }
        let timeout = self.timeouts.request + Duration::from_millis(request.wait_ms);
        let response = Self::send(self.request(Method::POST, "lease").json(request).timeout(timeout))?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        Ok(match Self::json(response)? {
            Answer::Pack(pack) => pack.leases,
            Answer::One(lease) => vec![*lease],
        })
    }

    /// `PUT path` with `body` (a checkpoint), given [`TRANSFER_TIMEOUT`].
    pub fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<(), ApiCallError> {
        Self::send(self.request(Method::PUT, path).body(body).timeout(TRANSFER_TIMEOUT))?;
        Ok(())
    }

    /// `PUT path` with `body` (a file, streamed) as `application/octet-stream`, allowed
    /// `timeout`; its JSON answer.
    pub fn put_body<R: DeserializeOwned>(
        &self,
        path: &str,
        body: reqwest::blocking::Body,
        timeout: Duration,
    ) -> Result<R, ApiCallError> {
        let req = self
            .request(Method::PUT, path)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(timeout)
            .body(body);
        Self::json(Self::send(req)?)
    }

    /// `GET path` as a stream to read (a dataset, a checkpoint), given [`TRANSFER_TIMEOUT`].
    pub fn get_raw(&self, path: &str) -> Result<Response, ApiCallError> {
        Self::send(self.request(Method::GET, path).timeout(TRANSFER_TIMEOUT))
    }

    /// `GET path`'s whole body, given [`TRANSFER_TIMEOUT`].
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ApiCallError> {
        let response = self.get_raw(path)?;
        Ok(response.bytes().map_err(ApiCallError::Transport)?.to_vec())
    }

    /// Whether `GET path` would answer 2xx (a `HEAD` request); `false` on 404.
    pub fn exists(&self, path: &str) -> Result<bool, ApiCallError> {
        let response = self.request(Method::HEAD, path).send().map_err(ApiCallError::Transport)?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            // A HEAD answer has no body to read the server's words from.
            s => Err(ApiCallError::from_answer(s.as_u16(), s.canonical_reason().unwrap_or_default())),
        }
    }

    /// `GET /metrics` (beside `/v1`, behind the token like it): the Prometheus text.
    pub fn metrics(&self) -> Result<String, ApiCallError> {
        let req = self.http.get(format!("{}/metrics", self.root())).timeout(self.timeouts.request);
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        Self::send(req)?.text().map_err(ApiCallError::Decode)
    }

    /// `GET /healthz` (beside `/v1`, no token): liveness and the state of the coordinator's disk.
    pub fn health(&self) -> Result<serde_json::Value, ApiCallError> {
        let response = self
            .http
            .get(format!("{}/healthz", self.root()))
            .timeout(self.timeouts.request)
            .send()
            .map_err(ApiCallError::Transport)?;
        Self::json(Self::check(response)?)
    }
}

/// Refuses a coordinator URL no request can be made to, before any is tried: one without
/// `http://` or `https://` (`127.0.0.1:8320` would otherwise fail every call with "relative URL
/// without a base", `localhost:8320` would read as a scheme) or without a host. The message
/// names the URL and, where a scheme is all it lacks, the URL to give instead.
pub fn check_url(url: &str) -> Result<(), ConnectError> {
    let bad = |problem: &str| ConnectError::BadUrl { reason: format!("the coordinator URL `{url}` {problem}") };
    let with_scheme = || format!("has no http:// or https:// scheme; did you mean http://{url}?");
    match reqwest::Url::parse(url) {
        Err(url::ParseError::RelativeUrlWithoutBase) => Err(bad(&with_scheme())),
        Err(e) => Err(bad(&format!("is not a URL ({e}); expected e.g. http://HOST:8320"))),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
            // `localhost:8320` parses as scheme `localhost` with path `8320`.
            if parsed.path().bytes().all(|b| b.is_ascii_digit()) && !parsed.path().is_empty() {
                Err(bad(&with_scheme()))
            } else {
                Err(bad(&format!(
                    "has the scheme `{}:`; a coordinator is reached over http:// or https://",
                    parsed.scheme()
                )))
            }
        }
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => {
            Err(bad("names no host; expected e.g. http://HOST:8320"))
        }
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;

    /// A coordinator stand-in on loopback: answers each request with the next of `answers`
    /// (status, JSON body) and sends `METHOD path` and the `Authorization` header of every
    /// request to the returned channel.
    pub(crate) fn fake(answers: Vec<(u16, &'static str)>) -> (String, mpsc::Receiver<(String, Option<String>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let (mut length, mut auth) = (0, None);
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => auth = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                let request: Vec<&str> = line.split_whitespace().take(2).collect();
                let _ = seen.send((request.join(" "), auth));
                let mut out = stream;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                out.write_all(reply.as_bytes()).unwrap();
            }
        });
        (url, requests)
    }

    #[test]
    fn outcomes_are_retried_through_5xx_and_carry_the_token() {
        let (url, seen) = fake(vec![(503, r#"{"error": "storage full"}"#), (502, "Bad Gateway"), (200, "{}")]);
        let client = Client::new(&url, Some("s3cret".into())).unwrap();
        client.post_retrying("leases/l1/complete", &serde_json::json!({ "metrics": {} })).unwrap();
        let calls: Vec<_> = seen.try_iter().collect();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(calls
            .iter()
            .all(|(line, auth)| line == "POST /v1/leases/l1/complete" && auth.as_deref() == Some("Bearer s3cret")));
    }

    #[test]
    fn a_4xx_ends_an_outcome_at_once_with_the_servers_words() {
        let (url, seen) =
            fake(vec![(409, r#"{"error": "the lease was replaced"}"#), (422, r#"{"error": "bad metrics"}"#)]);
        let client = Client::new(&url, None).unwrap();
        let conflict = client.post_retrying("leases/l1/complete", &serde_json::json!({})).unwrap_err();
        assert!(conflict.is_conflict(), "{conflict}");
        assert_eq!(conflict.message(), Some("the lease was replaced"));
        let refused = client.post_retrying("leases/l1/fail", &serde_json::json!({})).unwrap_err();
        assert_eq!((refused.status(), refused.message()), (Some(422), Some("bad metrics")));
        assert_eq!(seen.try_iter().count(), 2, "one try each");
        assert_eq!(seen.try_iter().next(), None);
    }

    #[test]
    fn patience_runs_out_on_an_unreachable_coordinator() {
        // Nothing listens on a port just given back.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap().with_patience(Duration::ZERO);
        let e = client.post_retrying("leases/l1/complete", &serde_json::json!({})).unwrap_err();
        assert!(matches!(e, ApiCallError::Transport(_)) && e.is_retryable(), "{e}");
    }

    #[test]
    fn urls_without_a_scheme_or_host_are_refused_with_the_fix() {
        for (url, expected) in [
            ("127.0.0.1:8320", "did you mean http://127.0.0.1:8320?"),
            ("localhost:8320", "did you mean http://localhost:8320?"),
            ("coordinator", "did you mean http://coordinator?"),
            ("ftp://host:8320", "the scheme `ftp:`"),
            ("http://", "is not a URL"),
        ] {
            let err = Client::new(url, None).unwrap_err();
            assert!(matches!(err, ConnectError::BadUrl { .. }), "{url}: {err}");
            let text = err.to_string();
            assert!(text.contains(&format!("`{url}`")) && text.contains(expected), "{url}: {text}");
        }
        for url in ["http://127.0.0.1:8320", "https://sweeps.example.org/", "http://[::1]:8320"] {
            assert!(Client::new(url, None).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_lease_is_none_on_204() {
        let (url, seen) = fake(vec![(204, "")]);
        let client = Client::new(&url, None).unwrap();
        let request = LeaseRequest { worker: "w".into(), wait_ms: 10, agent: None, pack: None };
        assert_eq!(client.lease(&request).unwrap(), None);
        assert_eq!(seen.recv().unwrap().0, "POST /v1/lease");
    }

    /// A pack answer and an older coordinator's single lease both read as the trials to train.
    #[test]
    fn a_pack_answer_or_a_single_lease_reads_as_a_pack() {
        const LEASE: &str = r#"{"lease_id":"l1","trial_id":1,"study":"s","job":{"kind":"command","argv":["x"],"env":{},"workdir":null},"seed":0,"attempt":1,"dataset":null,"ttl_ms":1000}"#;
        const PACK: &str = r#"{"leases":[
            {"lease_id":"l1","trial_id":1,"study":"s","job":{"kind":"model","pipeline":"dec","params":{}},"seed":0,"attempt":1,"dataset":null,"ttl_ms":1000,"pack_id":"p"},
            {"lease_id":"l2","trial_id":2,"study":"s","job":{"kind":"model","pipeline":"dec","params":{}},"seed":1,"attempt":1,"dataset":null,"ttl_ms":1000,"pack_id":"p"}]}"#;
        let (url, _seen) = fake(vec![(200, PACK), (200, LEASE), (204, "")]);
        let client = Client::new(&url, None).unwrap();
        let request = LeaseRequest {
            worker: "w".into(),
            wait_ms: 10,
            agent: None,
            pack: Some(decsweep_api::wire::PackAsk { max: Some(2) }),
        };
        let ids = |leases: Vec<Lease>| leases.into_iter().map(|l| l.lease_id).collect::<Vec<_>>();
        assert_eq!(ids(client.lease_pack(&request).unwrap()), ["l1", "l2"]);
        assert_eq!(ids(client.lease_pack(&request).unwrap()), ["l1"], "an older coordinator's answer");
        assert!(client.lease_pack(&request).unwrap().is_empty());
    }
}
