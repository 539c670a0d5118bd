//! The OpenAPI 3 document of the HTTP API, written by hand from the types in
//! `decsweep_api::wire`. A test checks it names every route the router serves.

use decsweep_api::wire::TrialStatus;
use serde_json::{json, Map, Value};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(schema: Value) -> Value {
    json!({ "content": { "application/json": { "schema": schema } } })
}

fn reply(description: &str, schema: Option<Value>) -> Value {
    let mut r = json!({ "description": description });
    if let Some(s) = schema {
        r["content"] = json!({ "application/json": { "schema": s } });
    }
    r
}

fn error(description: &str) -> Value {
    reply(description, Some(schema_ref("ApiError")))
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema, "description": description })
}

struct Op {
    summary: &'static str,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&'static str, Value)>,
    public: bool,
    writes: bool,
}

impl Op {
    fn new(summary: &'static str) -> Self {
        Op { summary, params: Vec::new(), body: None, responses: Vec::new(), public: false, writes: false }
    }
    fn param(mut self, p: Value) -> Self {
        self.params.push(p);
        self
    }
    fn body(mut self, schema: &str) -> Self {
        self.body = Some(schema_ref(schema));
        self
    }
    fn answer(mut self, code: &'static str, r: Value) -> Self {
        self.responses.push((code, r));
        self
    }
    fn public(mut self) -> Self {
        self.public = true;
        self
    }
    /// The call writes to the database, so a disk that refuses writes answers it 503.
    fn writes(mut self) -> Self {
        self.writes = true;
        self
    }
    fn build(self) -> Value {
        let mut responses = Map::new();
        for (code, r) in self.responses {
            responses.insert(code.into(), r);
        }
        if self.writes {
            let why = "The coordinator's disk refused the write (`storage full: …`, read-only or I/O error); \
                       nothing changed, retry later. Reads keep working.";
            responses.insert("503".into(), error(why));
        }
        if !self.public {
            responses.insert("401".into(), error("Missing or wrong bearer token (when the server has one)."));
        }
        let mut op = json!({ "summary": self.summary, "responses": responses });
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(schema) = self.body {
            op["requestBody"] = json_body(schema);
            op["requestBody"]["required"] = json!(true);
        }
        if self.public {
            op["security"] = json!([]);
        }
        op
    }
}

fn lease_id() -> Value {
    path_param("lease_id", json!({ "type": "string" }), "The `lease_id` of a `Lease`.")
}

fn lease_call(summary: &'static str, body: Option<&str>, ok: Value) -> Value {
    let mut op = Op::new(summary).param(lease_id()).writes();
    if let Some(b) = body {
        op = op.body(b).answer("400", error("Malformed body.")).answer("422", error("Body does not match the schema."));
    }
    op.answer("200", ok)
        .answer("404", error("Unknown lease."))
        .answer("409", error("The lease was replaced by a newer one or already ended otherwise; nothing changed."))
        .build()
}

fn recorded() -> Value {
    reply(
        "`recorded: true` if this call changed the trial, `false` if this lease already did (idempotent).",
        Some(schema_ref("Recorded")),
    )
}

/// The document served at `GET /v1/openapi.json`.
pub fn document() -> Value {
    let name = path_param("name", json!({ "type": "string" }), "Study name.");
    let trial_id = path_param("id", json!({ "type": "integer", "format": "int64" }), "Trial id.");
    let paths = json!({
        "/healthz": { "get": Op::new("Liveness check (no auth). `storage` is \"ok\" or what is wrong with the database's disk (full, read-only, I/O error; in fixed words, naming no file); meanwhile requests that write answer 503 `storage …: …`.").public()
            .answer("200", reply("The coordinator is up.", Some(json!({ "type": "object" })))).build() },
        "/metrics": { "get": Op::new("Prometheus text exposition (the read token is enough): trials by study and status (recounted at most every 5 s), lease/completion/expiry/failure counters, HTTP requests by method (`other` beyond the standard ones), route (`unmatched` beyond the API's) and status.")
            .answer("200", json!({ "description": "Prometheus text format 0.0.4.", "content": { "text/plain": { "schema": { "type": "string" } } } })).build() },
        "/v1/openapi.json": { "get": Op::new("This document.")
            .answer("200", reply("OpenAPI 3 document.", Some(json!({ "type": "object" })))).build() },
        "/v1/studies": {
            "post": Op::new("Create a study from a sweep spec, or return the existing study of that name and spec.")
                .body("CreateStudy")
                .answer("201", reply("Created.", Some(schema_ref("StudyInfo"))))
                .answer("200", reply("A study of this name already exists with the same spec text.", Some(schema_ref("StudyInfo"))))
                .answer("400", error("The spec does not validate; `details` lists every problem as `path:line:col: message`."))
                .answer("409", error("A study of this name exists with a different spec."))
                .answer("413", error("Over the body limit of 4 MiB."))
                .answer("422", error("The spec's dataset file was not uploaded (`dataset_sha256`) and is not below `serve --data-root`, or the file is not a decsweep dataset."))
                .writes().build(),
            "get": Op::new("List studies, oldest first.")
                .answer("200", reply("Studies.", Some(json!({ "type": "array", "items": schema_ref("StudyInfo") })))).build()
        },
        "/v1/studies/{name}": { "get": Op::new("One study with trial counts by status.").param(name.clone())
            .answer("200", reply("The study.", Some(schema_ref("StudyInfo"))))
            .answer("404", error("No such study.")).build() },
        "/v1/studies/{name}/trials": { "get": Op::new("A study's trials in id order.").param(name.clone())
            .param(json!({ "name": "status", "in": "query", "required": false, "schema": schema_ref("TrialStatus"), "description": "Only trials in this status." }))
            .answer("200", reply("Trials.", Some(json!({ "type": "array", "items": schema_ref("TrialInfo") }))))
            .answer("404", error("No such study.")).build() },
        "/v1/studies/{name}/export": { "get": Op::new("A page of the study's trials in id order, each with the curve points of its latest attempt (the one whose result is stored), in the order recorded: what a report needs, in a few requests. Follow `next_after` until it is null.").param(name.clone())
            .param(json!({ "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "format": "int64", "default": 0 }, "description": "Only trials with a larger id: the previous page's `next_after`." }))
            .param(json!({ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 500 }, "description": "The most trials in the page (0 is taken as 1, more than 1000 as 1000)." }))
            .answer("200", reply("One page.", Some(schema_ref("StudyExport"))))
            .answer("400", error("`after` or `limit` is not a number."))
            .answer("404", error("No such study.")).build() },
        "/v1/trials/{id}": { "get": Op::new("One trial.").param(trial_id.clone())
            .answer("200", reply("The trial.", Some(schema_ref("TrialInfo"))))
            .answer("404", error("No such trial.")).build() },
        "/v1/studies/{name}/cancel": { "post": Op::new("Cancel a study: pending trials become `cancelled` at once; running ones become `cancelled` and their workers are answered `stop` at their next heartbeat or progress report (their later complete/fail/prune calls get 409). An adaptive study proposes no more points. Repeating it answers zeros. The body is `{}` and may be left out.")
            .param(name.clone())
            .answer("200", reply("How many trials were cancelled.", Some(schema_ref("CancelOutcome"))))
            .answer("404", error("No such study.")).writes().build() },
        "/v1/studies/{name}/resume": { "post": Op::new("Resume a cancelled study, the way back from `cancel`: its cancelled trials become `pending` again (attempts count on, the study's retries count again, the cancelled attempts' leases get 409) and the study is no longer cancelled, so an adaptive study samples again. Completed, failed and pruned trials are left alone. A study that is not cancelled answers `was_cancelled: false` and changes nothing. The body is `{}` and may be left out.")
            .param(name.clone())
            .answer("200", reply("How many trials are pending again.", Some(schema_ref("Resumed"))))
            .answer("404", error("No such study.")).writes().build() },
        "/v1/studies/{name}/retry": { "post": Op::new("Put the study's failed trials (or only `trial_id`) back in the queue; each gets the study's retries again.")
            .param(name.clone()).body("RetryTrials")
            .answer("200", reply("How many trials are pending again.", Some(schema_ref("Retried"))))
            .answer("400", error("Malformed body."))
            .answer("404", error("No such study, or `trial_id` is not one of its trials."))
            .answer("409", error("`trial_id` names a trial that has not failed (a cancelled one: resume the study instead), or the study is cancelled (resume it first).")).writes().build() },
        "/v1/studies/{name}/seeds": { "post": Op::new("Add every configuration of the study × each new seed as pending trials (adaptive studies: the configurations proposed so far). Seeds the study already has are skipped and listed.")
            .param(name.clone()).body("AddSeeds")
            .answer("200", reply("Trials added and seeds skipped.", Some(schema_ref("SeedsAdded"))))
            .answer("400", error("Malformed body, or no seed given."))
            .answer("413", error("More than 1,000 seeds in one request."))
            .answer("422", error("The study would hold more than 100,000 trials."))
            .answer("409", error("The study is cancelled: resume it first."))
            .answer("404", error("No such study.")).writes().build() },
        "/v1/trials/{id}/fail": { "post": Op::new("Mark a pending or running trial failed with `reason` (default \"failed by user\"); a running trial's worker is answered `stop`.")
            .param(trial_id.clone()).body("FailByUser")
            .answer("200", reply("`failed: false` when the trial had already failed (nothing changed).", Some(schema_ref("FailedByUser"))))
            .answer("400", error("Malformed body."))
            .answer("404", error("No such trial."))
            .answer("409", error("The trial is completed, pruned or cancelled.")).writes().build() },
        "/v1/trials/{id}/curves": { "get": Op::new("Every epoch a trial's attempts reported, in the order recorded.").param(trial_id)
            .answer("200", reply("Curve points.", Some(json!({ "type": "array", "items": schema_ref("TrialCurvePoint") }))))
            .answer("404", error("No such trial.")).build() },
        "/v1/lease": { "post": Op::new("Lease the oldest pending trial of any study; waits up to `wait_ms` (long polling). With `pack`, also pending trials of its study that share its pack key (pipeline, dataset, every shape and schedule parameter) and resume point, each on its own lease: the answer is a `LeasePack`.")
            .body("LeaseRequest")
            .answer("200", reply("A trial to run (`Lease`), or with `pack` in the request the trials to train together (`LeasePack`).", Some(json!({ "oneOf": [schema_ref("Lease"), schema_ref("LeasePack")] }))))
            .answer("204", json!({ "description": "No trial became available within `wait_ms`." }))
            .answer("400", error("Malformed request, or `pack.max` outside 1..=64."))
            .writes().build() },
        "/v1/workers/goodbye": { "post": Op::new("A worker process exiting cleanly (stop signal, or `--exit-when-idle` finding no work) says so; the dashboard lists it as stopped until a process of that name leases again. One that vanishes without it is listed as idle, then quiet.")
            .body("WorkerGoodbye")
            .answer("200", reply("`recorded: false` when no worker process of that name was ever seen.", Some(schema_ref("Recorded"))))
            .answer("400", error("Malformed body."))
            .answer("422", error("Body does not match the schema."))
            .writes().build() },
        "/v1/leases/{lease_id}/heartbeat": { "post": lease_call("Extend a lease by its TTL. An expired lease whose trial nobody re-leased is revived. A trial the user cancelled or failed answers `action: stop`.", None,
            reply("Extended (or, with `stop`, ended by the user).", Some(schema_ref("HeartbeatReply")))) },
        "/v1/leases/{lease_id}/progress": { "post": lease_call("Report one epoch of one stage; extends the lease like a heartbeat.", Some("EpochProgress"),
            reply("Whether to continue, stop and report `prune`, or `stop` without reporting (the user cancelled or failed the trial; nothing was recorded).", Some(schema_ref("ProgressReply")))) },
        "/v1/leases/{lease_id}/complete": { "post": lease_call("Record the trial's metrics.", Some("CompleteTrial"), recorded()) },
        "/v1/leases/{lease_id}/fail": { "post": lease_call("Record a failed attempt; retried while retryable and retries are left.", Some("FailTrial"), recorded()) },
        "/v1/leases/{lease_id}/prune": { "post": lease_call("Record that the trial stopped early after a `prune` answer.", Some("PruneTrial"), recorded()) },
        "/v1/leases/{lease_id}/return": { "post": lease_call("Give the trial back unfinished (the worker is stopping): pending again, the attempt not counted.", Some("ReturnTrial"), recorded()) },
        "/v1/leases/{lease_id}/checkpoint": {
            "put": Op::new("Store the trial's latest saved state (the body is the file, streamed). It replaces the trial's previous one; the next lease of the trial resumes from it (`Lease.resume`).")
                .param(lease_id())
                .param(json!({ "name": "stage", "in": "query", "required": true, "schema": schema_ref("Stage"), "description": "The stage in progress when the state was saved." }))
                .param(json!({ "name": "epoch", "in": "query", "required": true, "schema": { "type": "integer", "minimum": 0 }, "description": "Epochs of that stage done." }))
                .param(json!({ "name": "sha256", "in": "query", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" }, "description": "SHA-256 of the body; a body that does not match (truncated) is refused." }))
                .answer("200", reply("Stored.", Some(schema_ref("CheckpointInfo"))))
                .answer("400", error("Bad query, or the body's SHA-256 is not the one announced."))
                .answer("404", error("Unknown lease (answered before the body is read)."))
                .answer("409", error("The lease no longer owns the trial, or the user stopped it (answered before the body is read)."))
                .answer("413", error("Over the coordinator's checkpoint size limit (`serve --max-checkpoint-mb`); the trial should go on without one."))
                .writes()
                .build(),
            "get": Op::new("Download the stored state of the lease's trial, to resume it (headers `x-decsweep-stage`, `x-decsweep-epoch`; ETag: its SHA-256).")
                .param(lease_id())
                .answer("200", json!({ "description": "The state file.", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } }))
                .answer("404", error("Unknown lease, or the trial has no checkpoint.")).build()
        },
        "/v1/datasets/{sha256}": {
            "get": Op::new("Download a validated dataset (a study's or an upload) by content hash (streamed, with Content-Length). HEAD tells whether the coordinator has it.")
                .param(path_param("sha256", json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" }), "SHA-256 of the file."))
                .answer("200", json!({ "description": "The dataset file (safetensors).", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } }))
                .answer("400", error("Not a sha256."))
                .answer("404", error("No such dataset."))
                .answer("422", error("The stored file is not a decsweep dataset (stored by an older coordinator); it is not served.")).build(),
            "put": Op::new("Upload a dataset file (the body, streamed) under its SHA-256, for `CreateStudy.dataset_sha256`. It is stored only if its hash is the one named and it is a decsweep dataset (header, tensors, shapes, values). A hash already stored answers 200 at once without reading the body.")
                .param(path_param("sha256", json!({ "type": "string", "pattern": "^[0-9a-f]{64}$" }), "SHA-256 of the body."))
                .answer("201", reply("Stored.", Some(schema_ref("DatasetStored"))))
                .answer("200", reply("Already stored.", Some(schema_ref("DatasetStored"))))
                .answer("400", error("Not a sha256, or the body could not be read."))
                .answer("413", error("Over the coordinator's dataset limit (`CoordinatorOptions::max_dataset_bytes`, 4 GiB by default)."))
                .answer("422", error("The body's SHA-256 is not the one named, or it is not a decsweep dataset; nothing is stored."))
                .writes().build()
        }
    });

    let names: Vec<&str> = TrialStatus::ALL.iter().map(|s| s.name()).collect();
    let status = json!({ "type": "string", "enum": names });
    let stage = json!({ "type": "string", "enum": ["data", "ae", "dec", "finetune"] });
    let metrics = json!({ "type": "object", "additionalProperties": { "type": "number" } });
    let param_value = json!({ "oneOf": [ { "type": "integer" }, { "type": "number" }, { "type": "string" } ] });
    let schemas = json!({
        "ApiError": { "type": "object", "required": ["error"], "properties": {
            "error": { "type": "string" },
            "details": { "type": "array", "items": { "type": "string" } } } },
        "TrialStatus": status,
        "Stage": stage,
        "ParamValue": param_value,
        "CreateStudy": { "type": "object", "required": ["spec", "spec_path"], "properties": {
            "spec": { "type": "string", "description": "The spec's TOML text." },
            "spec_path": { "type": "string", "description": "Where the spec file lies; errors name it. With `serve --data-root`, a dataset path relative to it is read below the root." },
            "dataset_sha256": { "type": "string", "pattern": "^[0-9a-f]{64}$", "description": "The uploaded dataset (`PUT /v1/datasets/{sha256}`) the spec's `dataset` file names. Without it, a dataset file is read only below `serve --data-root`." } } },
        "DatasetStored": { "type": "object", "required": ["sha256", "bytes", "created"], "properties": {
            "sha256": { "type": "string" }, "bytes": { "type": "integer" },
            "created": { "type": "boolean", "description": "`false`: it was already stored." } } },
        "StatusCounts": { "type": "object", "properties": {
            "pending": { "type": "integer" }, "running": { "type": "integer" }, "completed": { "type": "integer" },
            "failed": { "type": "integer" }, "pruned": { "type": "integer" }, "cancelled": { "type": "integer" } } },
        "StudyInfo": { "type": "object", "required": ["name", "created_at", "dataset_sha256", "counts"], "properties": {
            "name": { "type": "string" }, "created_at": { "type": "string", "format": "date-time" },
            "dataset_sha256": { "type": "string" }, "counts": schema_ref("StatusCounts"),
            "created": { "type": "boolean", "description": "Whether this request created the study." },
            "planned": { "type": "integer", "description": "Adaptive (TPE) studies only: the trials the study will have once its sampler has proposed all n_trials points." },
            "adaptive": { "type": "boolean", "description": "Whether an adaptive sampler (TPE) proposes the configurations one by one; false for grid and random studies." } } },
        "TrialInfo": { "type": "object", "properties": {
            "id": { "type": "integer", "format": "int64" }, "study": { "type": "string" },
            "pipeline": { "type": "string", "description": "baseline, dec or command" },
            "params": { "type": "object", "additionalProperties": schema_ref("ParamValue") },
            "seed": { "type": "integer" }, "config_id": { "type": "string" }, "label": { "type": ["string", "null"] },
            "status": schema_ref("TrialStatus"), "attempts": { "type": "integer" },
            "worker": { "type": ["string", "null"] }, "error": { "type": ["string", "null"] }, "metrics": metrics.clone(),
            "resumes": { "type": "integer", "description": "Leases that resumed the trial from a checkpoint." },
            "resumed_from": { "type": ["string", "null"], "description": "Where the last resume started, `stage:epoch`." },
            "manifest": { "type": ["object", "null"], "description": "A completed trial's manifest, with `spec_sha256` added by the coordinator." } } },
        "TrialCurvePoint": { "type": "object", "properties": {
            "attempt": { "type": "integer" }, "stage": schema_ref("Stage"), "epoch": { "type": "integer" }, "epochs": { "type": "integer" },
            "train_loss": { "type": ["number", "null"] }, "val_loss": { "type": ["number", "null"] }, "val_accuracy": { "type": ["number", "null"] } } },
        "StudyExport": { "type": "object", "required": ["trials"], "properties": {
            "trials": { "type": "array", "items": { "type": "object", "required": ["trial", "curve"], "properties": {
                "trial": schema_ref("TrialInfo"),
                "curve": { "type": "array", "items": schema_ref("TrialCurvePoint"), "description": "The points of the trial's latest attempt, in the order recorded." } } } },
            "next_after": { "type": ["integer", "null"], "format": "int64", "description": "The `after` of the next page; null on the last page." } } },
        "LeaseRequest": { "type": "object", "required": ["worker"], "properties": {
            "worker": { "type": "string", "description": "Unique to the worker process (host, pid, slot)." },
            "wait_ms": { "type": "integer", "default": 0, "description": "Long-poll up to this long (capped by the server)." },
            "agent": { "type": "object", "required": ["name"], "description": "The worker process asking, listed by the dashboard's /workers.",
                "properties": { "name": { "type": "string" }, "host": { "type": "string" },
                    "slots": { "type": "integer" }, "device": { "type": "string" } } },
            "pack": { "type": "object", "description": "Sent by a worker that trains packs: the answer is a LeasePack. Older workers leave it out and get one Lease.",
                "properties": { "max": { "type": ["integer", "null"], "minimum": 1, "maximum": 64,
                    "description": "The worker's --pack: the most trials it trains together. Left out: the study's `[resources] pack`, else 1." } } } } },
        "LeasePack": { "type": "object", "required": ["leases"], "properties": {
            "leases": { "type": "array", "minItems": 1, "items": schema_ref("Lease"), "description": "Trials of one study and one pack key, each with its own lease: heartbeat, report and end each one by its own lease_id." } } },
        "TrialJob": { "oneOf": [
            { "type": "object", "required": ["kind", "pipeline", "params"], "properties": {
                "kind": { "const": "model" }, "pipeline": { "type": "string", "enum": ["baseline", "dec"] },
                "params": { "type": "object", "description": "Every pipeline parameter (decsweep_api::Params)." } } },
            { "type": "object", "required": ["kind", "argv", "env"], "properties": {
                "kind": { "const": "command" }, "argv": { "type": "array", "items": { "type": "string" } },
                "env": { "type": "object", "additionalProperties": { "type": "string" } },
                "workdir": { "type": ["string", "null"] },
                "stop_grace_s": { "type": "number", "default": 3, "description": "Seconds from SIGTERM to SIGKILL when the program is stopped." } } } ] },
        "DatasetRef": { "type": "object", "properties": { "sha256": { "type": "string" }, "bytes": { "type": "integer" },
            "source": { "type": "string", "description": "Where the study's dataset came from (`file:PATH`, `upload:SPEC_PATH`, `synthetic:…`), for messages about the worker's copy." } } },
        "Lease": { "type": "object", "properties": {
            "lease_id": { "type": "string" }, "trial_id": { "type": "integer", "format": "int64" }, "study": { "type": "string" },
            "job": schema_ref("TrialJob"), "seed": { "type": "integer" }, "attempt": { "type": "integer" },
            "dataset": { "oneOf": [ schema_ref("DatasetRef"), { "type": "null" } ] },
            "ttl_ms": { "type": "integer", "description": "The lease expires this long after the last heartbeat." },
            "resume": { "oneOf": [ schema_ref("CheckpointInfo"), { "type": "null" } ], "description": "The trial's stored state to resume from (`GET /v1/leases/{lease_id}/checkpoint`), if an earlier lease saved one." },
            "checkpoint_every_s": { "type": "number", "description": "Seconds of training between the states the worker saves and uploads (`[resources] checkpoint_every`)." },
            "pack_id": { "type": "string", "description": "Present when this trial is trained together with others: every lease of one LeasePack of two or more carries it." } } },
        "CheckpointInfo": { "type": "object", "required": ["sha256", "bytes", "stage", "epoch"], "properties": {
            "sha256": { "type": "string" }, "bytes": { "type": "integer" }, "stage": schema_ref("Stage"),
            "epoch": { "type": "integer", "description": "Epochs of `stage` done when the state was saved." } } },
        "ProgressAction": { "type": "string", "enum": ["continue", "prune", "stop"] },
        "HeartbeatReply": { "type": "object", "properties": { "ttl_ms": { "type": "integer" },
            "action": { "allOf": [schema_ref("ProgressAction")], "default": "continue", "description": "`stop`: the user cancelled or failed the trial; stop it and report nothing." } } },
        "EpochProgress": { "type": "object", "required": ["stage", "epoch", "epochs"], "properties": {
            "stage": schema_ref("Stage"), "epoch": { "type": "integer" }, "epochs": { "type": "integer" },
            "train_loss": { "type": ["number", "null"], "description": "Left out or null: not known (a program's report without it)." },
            "val_loss": { "type": ["number", "null"] }, "val_accuracy": { "type": ["number", "null"] } } },
        "ProgressReply": { "type": "object", "properties": { "action": schema_ref("ProgressAction") } },
        "CancelOutcome": { "type": "object", "properties": {
            "cancelled": { "type": "integer", "description": "Pending trials now cancelled." },
            "stopping": { "type": "integer", "description": "Running trials now cancelled whose workers are told to stop." } } },
        "Resumed": { "type": "object", "properties": {
            "resumed": { "type": "integer", "description": "Cancelled trials now pending again." },
            "was_cancelled": { "type": "boolean", "description": "false: the study was not cancelled and nothing changed." } } },
        "RetryTrials": { "type": "object", "properties": {
            "trial_id": { "type": ["integer", "null"], "format": "int64", "description": "Only this failed trial; all failed trials when null or absent." } } },
        "Retried": { "type": "object", "properties": { "retried": { "type": "integer" } } },
        "FailByUser": { "type": "object", "properties": {
            "reason": { "type": ["string", "null"], "description": "Stored as the trial's error; default \"failed by user\"." } } },
        "FailedByUser": { "type": "object", "properties": { "failed": { "type": "boolean" } } },
        "AddSeeds": { "type": "object", "required": ["seeds"], "properties": {
            "seeds": { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 } } },
        "SeedsAdded": { "type": "object", "properties": {
            "added": { "type": "integer" },
            "skipped": { "type": "array", "items": { "type": "integer" }, "description": "Seeds the study already had." } } },
        "CompleteTrial": { "type": "object", "required": ["metrics"], "properties": { "metrics": metrics.clone(),
            "manifest": { "type": ["object", "null"], "description": "What the result was computed with (build, libtorch, device, threads, dataset, parameters, seed, determinism); stored for `decsweep reproduce`." } } },
        "FailTrial": { "type": "object", "required": ["reason", "retryable"], "properties": {
            "reason": { "type": "string" }, "retryable": { "type": "boolean" } } },
        "PruneTrial": { "type": "object", "required": ["stage", "epoch", "metrics"], "properties": {
            "stage": schema_ref("Stage"), "epoch": { "type": "integer" }, "metrics": metrics } },
        "WorkerGoodbye": { "type": "object", "required": ["name"], "properties": {
            "name": { "type": "string", "description": "The process's name, as in its lease requests' `agent.name`." } } },
        "ReturnTrial": { "type": "object", "required": ["reason"], "properties": { "reason": { "type": "string" } } },
        "Recorded": { "type": "object", "properties": { "recorded": { "type": "boolean" } } }
    });

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "decsweep coordinator",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Studies of hyperparameter sweeps, handed out to pulling workers under leases. Every /v1 endpoint needs `Authorization: Bearer <token>` when the server has a token."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [ { "bearer": [] } ]
    })
}

/// Every `(METHOD, path)` the document describes.
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(methods) = item.as_object() {
                for method in methods.keys() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "dangling $ref to {name}");
        }
        assert!(operations(&doc).contains(&("POST".into(), "/v1/lease".into())));
    }

    #[test]
    fn every_call_that_writes_lists_the_full_disk_answer() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let lists_503 = op["responses"].get("503").is_some();
                assert_eq!(lists_503, method != "get", "{} {path}: 503 listed {lists_503}", method.to_uppercase());
            }
        }
    }
}
