//! The axum router: thin handlers over the core's verbs ([`Coordinator`]), JSON errors, bearer
//! auth and request counting. Its state is the [`Server`]; handlers that need only the core take
//! `State<Coordinator>` (through [`FromRef`]).

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};
use decsweep_api::pack::MAX_PACK;
use decsweep_api::wire::{
    AddSeeds, CheckpointInfo, CheckpointUpload, CompleteTrial, CreateStudy, EpochProgress, FailByUser, FailTrial,
    FailedByUser, LeasePack, LeaseRequest, PruneTrial, Retried, RetryTrials, ReturnTrial, TrialStatus, WorkerGoodbye,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use axum::extract::FromRef;
use decsweep_coordinator::{Coordinator, Error};

use crate::error::HttpError;
use crate::limits::body_limit;
use crate::sessions::{same_origin, Access, Role};
use crate::{openapi, Server};

impl FromRef<Server> for Coordinator {
    fn from_ref(server: &Server) -> Coordinator {
        server.coordinator().clone()
    }
}

type Answer<T> = Result<T, HttpError>;

/// `Json` whose rejections are [`ApiError`] bodies.
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                let rejection: JsonRejection = rejection;
                let status = rejection.status();
                let message = match limit {
                    Some(limit) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                        format!("the request body is over this route's limit of {limit} bytes")
                    }
                    _ => rejection.body_text(),
                };
                Err(HttpError::new(status, message))
            }
        }
    }
}

/// The body limit of a JSON route, so its 413 can name it.
#[derive(Clone, Copy, Debug)]
struct BodyLimit(usize);

/// `handler` accepting JSON bodies of at most `limit` bytes.
fn capped(handler: MethodRouter<Server>, limit: usize) -> MethodRouter<Server> {
    handler
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(limit))
        .layer::<_, std::convert::Infallible>(axum::Extension(BodyLimit(limit)))
}

/// `Path` whose rejections are [`ApiError`] bodies.
pub(crate) struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => {
                let rejection: PathRejection = rejection;
                Err(HttpError::new(rejection.status(), rejection.body_text()))
            }
        }
    }
}

/// `Query` whose rejections are [`ApiError`] bodies.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => {
                let rejection: QueryRejection = rejection;
                Err(HttpError::new(rejection.status(), rejection.body_text()))
            }
        }
    }
}

/// Builds a router while recording every `(method, path)` it serves.
struct Routes {
    router: Router<Server>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Routes { router: Router::new(), list: Vec::new() }
    }

    fn add(mut self, method: &'static str, path: &'static str, handler: MethodRouter<Server>) -> Self {
        self.list.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

/// The API and the list of its routes.
pub(crate) fn router(server: Server) -> (Router, Vec<(&'static str, &'static str)>) {
    let public = Routes::new().add("GET", "/healthz", get(healthz));
    // `/metrics` sits behind the token like `/v1` (the read token is enough).
    // Every JSON body has a stated bound (crate::limits::body_limit); uploads stream to disk
    // under their own byte limits, so axum's buffering limit is off for them.
    let (small, result) = (body_limit::SMALL, body_limit::RESULT);
    let v1 = Routes::new()
        .add("GET", "/metrics", get(metrics))
        .add("GET", "/v1/openapi.json", get(openapi_json))
        .add("POST", "/v1/studies", capped(post(create_study), body_limit::CREATE_STUDY))
        .add("GET", "/v1/studies", get(list_studies))
        .add("GET", "/v1/studies/{name}", get(get_study))
        .add("GET", "/v1/studies/{name}/trials", get(study_trials))
        .add("GET", "/v1/studies/{name}/export", get(study_export))
        .add("GET", "/v1/trials/{id}", get(get_trial))
        .add("GET", "/v1/trials/{id}/curves", get(trial_curves))
        .add("POST", "/v1/studies/{name}/cancel", capped(post(cancel_study), small))
        .add("POST", "/v1/studies/{name}/resume", capped(post(resume_study), small))
        .add("POST", "/v1/studies/{name}/retry", capped(post(retry_trials), small))
        .add("POST", "/v1/studies/{name}/seeds", capped(post(add_seeds), small))
        .add("POST", "/v1/trials/{id}/fail", capped(post(fail_trial), small))
        .add("POST", "/v1/lease", capped(post(lease), small))
        .add("POST", "/v1/workers/goodbye", capped(post(goodbye), small))
        .add("POST", "/v1/leases/{lease_id}/heartbeat", capped(post(heartbeat), small))
        .add("POST", "/v1/leases/{lease_id}/progress", capped(post(progress), body_limit::PROGRESS))
        .add("POST", "/v1/leases/{lease_id}/complete", capped(post(complete), result))
        .add("POST", "/v1/leases/{lease_id}/fail", capped(post(fail), result))
        .add("POST", "/v1/leases/{lease_id}/prune", capped(post(prune), result))
        .add("POST", "/v1/leases/{lease_id}/return", capped(post(give_back), small))
        .add(
            "PUT",
            "/v1/leases/{lease_id}/checkpoint",
            // The body limit is the coordinator's own (413 from `checkpoints::receive`).
            put(put_checkpoint).layer(DefaultBodyLimit::disable()),
        )
        .add("GET", "/v1/leases/{lease_id}/checkpoint", get(get_checkpoint))
        .add("GET", "/v1/datasets/{sha256}", get(dataset))
        .add(
            "PUT",
            "/v1/datasets/{sha256}",
            // The body limit is the coordinator's own (413 from `Coordinator::upload_dataset`).
            put(put_dataset).layer(DefaultBodyLimit::disable()),
        );
    let mut list = public.list;
    list.extend(v1.list);
    let authed = v1.router.route_layer(middleware::from_fn_with_state(server.clone(), require_token));
    let router = public
        .router
        .merge(authed)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Counted { c: server.coordinator().clone(), paths: list.iter().map(|r| r.1).collect() },
            count_requests,
        ))
        .with_state(server);
    (router, list)
}

/// Bearer token or dashboard session (see [`crate::sessions`]): a read token or a view-only
/// session may only read. A request that changes something and names an `Origin` must come from
/// this server's own origin, whatever its credentials (a browser names the page that sent it;
/// the `Host` it is compared with has passed the `Host` rule, `src/host.rs`); one authenticated
/// by its cookie must name its origin (`Origin`, else `Referer`) and that must be this server.
async fn require_token(State(server): State<Server>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let cross_site = !same_origin(req.method(), req.headers());
    let foreign_origin = cross_site && req.headers().contains_key(header::ORIGIN);
    let refused = match server.sessions().access(req.headers()) {
        Access::Denied => {
            let mut response = HttpError::unauthorized().into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        _ if foreign_origin => Some(HttpError::forbidden("cross-site request refused: its Origin is not this server")),
        Access::Open | Access::Bearer(Role::Full) => None,
        Access::Bearer(Role::ReadOnly) | Access::Session(Role::ReadOnly) if !safe => {
            Some(HttpError::forbidden("this login is view-only"))
        }
        Access::Session(_) if cross_site => {
            Some(HttpError::forbidden("cross-site request refused: its Origin (or Referer) is not this server"))
        }
        Access::Bearer(Role::ReadOnly) | Access::Session(_) => None,
    };
    match refused {
        Some(refusal) => refusal.into_response(),
        None => next.run(req).await,
    }
}

/// What [`count_requests`] needs: the counters, and the router's paths (the only route labels).
#[derive(Clone)]
struct Counted {
    c: Coordinator,
    paths: std::sync::Arc<[&'static str]>,
}

async fn count_requests(State(counted): State<Counted>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let matched = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let route = matched.and_then(|m| counted.paths.iter().copied().find(|p| *p == m));
    let response = next.run(req).await;
    counted.c.metrics().record_request(method.as_str(), route, response.status().as_u16());
    response
}

async fn not_found(method: Method, uri: axum::http::Uri) -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> HttpError {
    HttpError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

/// Liveness, and the disk's state in words: `storage` is `"ok"` or the fault without file names
/// (writes answer 503 meanwhile). Always 200: a restart would not give the disk space back.
async fn healthz(State(c): State<Coordinator>) -> Json<serde_json::Value> {
    let api = decsweep_api::wire::API_PREFIX;
    Json(match c.storage_fault() {
        None => serde_json::json!({ "status": "ok", "api": api, "storage": "ok" }),
        Some(fault) => serde_json::json!({ "status": "degraded", "api": api, "storage": fault.public() }),
    })
}

async fn metrics(State(c): State<Coordinator>) -> Answer<Response> {
    let text = c.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// A client's study: its dataset is an upload or a file below `--data-root` (see
/// `decsweep_coordinator`'s intake), never a path of the coordinator's machine it names.
async fn create_study(State(c): State<Coordinator>, ApiJson(req): ApiJson<CreateStudy>) -> Answer<Response> {
    let info = c.create_study_remote(req).await?;
    let status = if info.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(info)).into_response())
}

async fn list_studies(State(c): State<Coordinator>) -> Answer<Response> {
    Ok(Json(c.studies().await?).into_response())
}

async fn get_study(State(c): State<Coordinator>, ApiPath(name): ApiPath<String>) -> Answer<Response> {
    Ok(Json(c.study(&name).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct TrialsQuery {
    status: Option<TrialStatus>,
}

async fn study_trials(
    State(c): State<Coordinator>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<TrialsQuery>,
) -> Answer<Response> {
    Ok(Json(c.trials(&name, q.status).await?).into_response())
}

/// `after` and `limit` of `GET /v1/studies/{name}/export`.
#[derive(Debug, Deserialize)]
struct ExportQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_export_limit")]
    limit: u32,
}

fn default_export_limit() -> u32 {
    500
}

/// A page of the study's trials with their curves (see [`Coordinator::export_page`]).
async fn study_export(
    State(c): State<Coordinator>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Answer<Response> {
    Ok(Json(c.export_page(&name, q.after, q.limit).await?).into_response())
}

async fn get_trial(State(c): State<Coordinator>, ApiPath(id): ApiPath<i64>) -> Answer<Response> {
    Ok(Json(c.trial(id).await?).into_response())
}

async fn trial_curves(State(c): State<Coordinator>, ApiPath(id): ApiPath<i64>) -> Answer<Response> {
    Ok(Json(c.curves(id).await?).into_response())
}

/// The body (`{}`) carries nothing, so none is required.
async fn cancel_study(State(c): State<Coordinator>, ApiPath(name): ApiPath<String>) -> Answer<Response> {
    Ok(Json(c.cancel_study(&name).await?).into_response())
}

/// The body (`{}`) carries nothing, so none is required.
async fn resume_study(State(c): State<Coordinator>, ApiPath(name): ApiPath<String>) -> Answer<Response> {
    Ok(Json(c.resume_study(&name).await?).into_response())
}

async fn retry_trials(
    State(c): State<Coordinator>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RetryTrials>,
) -> Answer<Response> {
    let retried = c.retry_trials(&name, body.trial_id).await?;
    Ok(Json(Retried { retried }).into_response())
}

async fn add_seeds(
    State(c): State<Coordinator>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AddSeeds>,
) -> Answer<Response> {
    Ok(Json(c.add_seeds_detailed(&name, body.seeds).await?).into_response())
}

async fn fail_trial(
    State(c): State<Coordinator>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<FailByUser>,
) -> Answer<Response> {
    let failed = c.fail_trial(id, body.reason).await?;
    Ok(Json(FailedByUser { failed }).into_response())
}

async fn lease(State(c): State<Coordinator>, ApiJson(req): ApiJson<LeaseRequest>) -> Answer<Response> {
    if req.worker.trim().is_empty() {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "`worker` must name the worker"));
    }
    if let Some(ask) = req.pack {
        if let Some(max) = ask.max.filter(|k| !(1..=MAX_PACK).contains(k)) {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("`pack.max` must be between 1 and {MAX_PACK} (trials trained together), got {max}"),
            ));
        }
        let leases = c.lease_pack(&req, ask).await?;
        return Ok(if leases.is_empty() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            Json(LeasePack { leases }).into_response()
        });
    }
    Ok(match c.lease(&req).await? {
        Some(lease) => Json(lease).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn goodbye(State(c): State<Coordinator>, ApiJson(body): ApiJson<WorkerGoodbye>) -> Answer<Response> {
    Ok(Json(c.goodbye(body).await?).into_response())
}

async fn heartbeat(State(c): State<Coordinator>, ApiPath(lease_id): ApiPath<String>) -> Answer<Response> {
    Ok(Json(c.heartbeat(&lease_id).await?).into_response())
}

async fn progress(
    State(c): State<Coordinator>,
    ApiPath(lease_id): ApiPath<String>,
    ApiJson(body): ApiJson<EpochProgress>,
) -> Answer<Response> {
    Ok(Json(c.progress(&lease_id, body).await?).into_response())
}

async fn complete(
    State(c): State<Coordinator>,
    ApiPath(lease_id): ApiPath<String>,
    ApiJson(body): ApiJson<CompleteTrial>,
) -> Answer<Response> {
    Ok(Json(c.complete(&lease_id, body).await?).into_response())
}

async fn fail(
    State(c): State<Coordinator>,
    ApiPath(lease_id): ApiPath<String>,
    ApiJson(body): ApiJson<FailTrial>,
) -> Answer<Response> {
    Ok(Json(c.fail(&lease_id, body).await?).into_response())
}

async fn give_back(
    State(c): State<Coordinator>,
    ApiPath(lease_id): ApiPath<String>,
    ApiJson(body): ApiJson<ReturnTrial>,
) -> Answer<Response> {
    Ok(Json(c.give_back(&lease_id, body).await?).into_response())
}

async fn prune(
    State(c): State<Coordinator>,
    ApiPath(lease_id): ApiPath<String>,
    ApiJson(body): ApiJson<PruneTrial>,
) -> Answer<Response> {
    Ok(Json(c.prune(&lease_id, body).await?).into_response())
}

async fn put_checkpoint(
    State(c): State<Coordinator>,
    ApiPath(lease_id): ApiPath<String>,
    ApiQuery(upload): ApiQuery<CheckpointUpload>,
    body: Body,
) -> Answer<Json<CheckpointInfo>> {
    Ok(Json(c.save_checkpoint(&lease_id, upload, body.into_data_stream()).await?))
}

/// The checkpoint file, with its stage and epoch in `x-decsweep-stage` / `x-decsweep-epoch` and
/// its hash as the ETag.
async fn get_checkpoint(State(c): State<Coordinator>, ApiPath(lease_id): ApiPath<String>) -> Answer<Response> {
    let (info, path) = c.checkpoint(&lease_id).await?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| match e.kind() {
        // Deleted under us (the trial just ended): as if there were none.
        std::io::ErrorKind::NotFound => Error::CheckpointNotFound(0),
        _ => Error::io(&path, e),
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.bytes));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(stage) = HeaderValue::from_str(info.stage.name()) {
        headers.insert("x-decsweep-stage", stage);
    }
    headers.insert("x-decsweep-epoch", HeaderValue::from(info.epoch));
    Ok(response)
}

/// Stores an uploaded dataset (see [`Coordinator::upload_dataset`]): 201 when stored, 200 when
/// it already was.
async fn put_dataset(State(c): State<Coordinator>, ApiPath(sha256): ApiPath<String>, body: Body) -> Answer<Response> {
    let stored = c.upload_dataset(&sha256, body.into_data_stream()).await?;
    let status = if stored.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored)).into_response())
}

async fn dataset(State(c): State<Coordinator>, ApiPath(sha256): ApiPath<String>) -> Answer<Response> {
    let (path, bytes) = c.dataset_path(&sha256).await?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| Error::io(&path, e))?;
    let len = file.metadata().await.map_err(|e| Error::io(&path, e))?.len();
    if len != bytes {
        return Err(Error::Corrupt(format!("{} holds {len} bytes, the database says {bytes}", path.display())).into());
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        use crate::sessions::same_secret;
        assert!(same_secret(b"abc", b"abc"));
        assert!(same_secret(b"", b""));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"xbc"), "a difference in the first byte counts as much as in the last");
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"a"));
    }
}
