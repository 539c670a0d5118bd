//! The agent's client of the coordinator's `/v1` API over blocking HTTP, with its timeouts and
//! its retry policy for outcomes.
//!
//! It knows requests, answers and retrying; it does not know what a lease, a trial or a slot
//! is for (that is the lease loop's, crate::agent).

use std::thread;
use std::time::Duration;

use anyhow::bail;
use decsweep_api::wire::{Lease, LeaseRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Failure;

/// The longest wait between two tries of a request that failed for want of a coordinator
/// (unreachable, restarting, or its disk full: 5xx). Waits double up to this, so a cut-off or
/// storage-less coordinator sees a few requests a minute per slot, not a storm.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long an outcome (complete, prune, fail, return) is retried before it is given up. The
/// work behind it is done, so the worker waits out a long outage rather than lose it; a trial
/// whose outcome is given up is leased again once its lease expires.
const REPORT_PATIENCE: Duration = Duration::from_secs(30 * 60);

/// A request that is not a long poll must be answered within this (connecting included); a
/// partitioned link otherwise holds the request until TCP gives up, minutes later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// `wait` scaled by a factor in [0.5, 1), so workers cut off together do not retry in step.
pub(crate) fn jittered(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    // A cheap spread from the clock's low bits and the thread: no randomness quality is needed.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(nanos, thread::current().id()), &mut h);
    let fraction = (std::hash::Hasher::finish(&h) % 1000) as f64 / 2000.0;
    wait.mul_f64(0.5 + fraction)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiCallError {
    #[error("the coordinator answered 409: {0}")]
    Conflict(String),
    #[error("the coordinator answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("request to the coordinator failed: {0}")]
    Transport(#[from] reqwest::Error),
}

/// The coordinator's `/v1` API over blocking HTTP.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    #[cfg(test)]
    pub(crate) fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let client = Self::connect(url, &decsweep_connect::ClientArgs::default())
            .map_err(|_| anyhow::anyhow!("cannot build an HTTP client"))?;
        Ok(Client { token, ..client })
    }

    /// A client of `url` (http:// or https://) with `access`'s token and CA; an unreadable
    /// token or CA file is bad input (exit 2).
    pub(crate) fn connect(url: &str, access: &decsweep_connect::ClientArgs) -> Result<Self, Failure> {
        let token = access.token_for(url).map_err(|e| Failure::BadInput(e.into()))?;
        let builder =
            reqwest::blocking::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(REQUEST_TIMEOUT);
        let http = access.build(builder).map_err(|e| Failure::BadInput(e.into()))?;
        Ok(Client { http, base: format!("{}/v1", url.trim_end_matches('/')), token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let req = self.http.request(method, format!("{}/{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn check(response: reqwest::blocking::Response) -> Result<reqwest::blocking::Response, ApiCallError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT {
            Err(ApiCallError::Conflict(body))
        } else {
            Err(ApiCallError::Status { status: status.as_u16(), body })
        }
    }

    pub(crate) fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, ApiCallError> {
        let response = Self::check(self.request(reqwest::Method::POST, path).json(body).send()?)?;
        Ok(response.json()?)
    }

    /// Reports an outcome, retrying transport errors and 5xx (the coordinator may be restarting,
    /// cut off, or out of disk) with doubling waits for up to [`REPORT_PATIENCE`]; outcome calls
    /// are idempotent, so a repeat is harmless. A 409 (someone else has the trial) and other 4xx
    /// end it at once.
    pub(crate) fn post_retrying<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            match self.post::<_, serde_json::Value>(path, body) {
                Ok(_) => return Ok(()),
                Err(e @ ApiCallError::Conflict(_)) => return Err(e.into()),
                Err(ApiCallError::Status { status, body }) if status < 500 => bail!("{status}: {body}"),
                Err(e) if started.elapsed() >= REPORT_PATIENCE => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "retrying");
                    thread::sleep(jittered(wait));
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    pub(crate) fn lease(&self, request: &LeaseRequest) -> anyhow::Result<Option<Lease>> {
        // The coordinator holds a long poll for up to `wait_ms`.
        let timeout = REQUEST_TIMEOUT + Duration::from_millis(request.wait_ms);
        let response =
            Self::check(self.request(reqwest::Method::POST, "lease").json(request).timeout(timeout).send()?)?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(response.json()?))
    }

    /// PUTs `body` (a checkpoint), with the same ten minutes as a download.
    pub(crate) fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<(), ApiCallError> {
        let upload = Duration::from_secs(600);
        Self::check(self.request(reqwest::Method::PUT, path).body(body).timeout(upload).send()?)?;
        Ok(())
    }

    pub(crate) fn get_raw(&self, path: &str) -> anyhow::Result<reqwest::blocking::Response> {
        // A dataset may be large and the link slow: the whole download gets ten minutes.
        let download = Duration::from_secs(600);
        Ok(Self::check(self.request(reqwest::Method::GET, path).timeout(download).send()?)?)
    }
}
