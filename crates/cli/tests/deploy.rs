//! The Kubernetes manifests and compose files in `deploy/`, checked offline by
//! `tests/deploy/check_deploy.py`: against the Kubernetes schemas (kubernetes-validate, strict)
//! and the Compose Specification schema (check-jsonschema's vendored compose-spec), and for
//! references between them that no schema sees (Secrets, ConfigMaps, claims, volumes, `$(VAR)`,
//! Services, env files, named volumes, build targets, `${VAR}`).
//!
//! The validators are pinned in the Makefile and installed into `.venv` by `make venv` (make test
//! does it); the Python is `$DECSWEEP_PYTHON`, which the Makefile exports, else `.venv/bin/python`.
//! The tests below the first two feed the checker broken files, so a checker that passes
//! everything fails them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python =
        std::env::var_os("DECSWEEP_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(python.exists(), "{} is missing: run `make venv` (it installs the deploy validators)", python.display());
    python
}

/// `check_deploy.py KIND DIR`: (exit code, stdout + stderr).
fn check(kind: &str, dir: &Path) -> (i32, String) {
    let Output { status, stdout, stderr } =
        Command::new(python()).arg(repo().join("tests/deploy/check_deploy.py")).arg(kind).arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert_ne!(status.code(), Some(2), "the checker could not run (validators not installed? run `make venv`): {text}");
    (status.code().unwrap_or(-1), text)
}

fn files_in(dir: &Path, extensions: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| extensions.iter().any(|x| n.ends_with(x)))
        .collect();
    names.sort();
    names
}

#[test]
fn every_kubernetes_manifest_passes_the_schemas_and_its_references_resolve() {
    let dir = repo().join("deploy/kubernetes");
    let (code, out) = check("kubernetes", &dir);
    assert_eq!(code, 0, "{out}");
    // Every file was read and each of its resources checked, not skipped.
    for file in files_in(&dir, &[".yaml", ".yml"]) {
        assert!(out.contains(&format!("({file})")), "{file} was checked: {out}");
    }
    assert!(!out.contains("WARN"), "no resource went unchecked: {out}");
}

#[test]
fn every_compose_file_passes_the_compose_schema_and_its_references_resolve() {
    let dir = repo().join("deploy/compose");
    let (code, out) = check("compose", &dir);
    assert_eq!(code, 0, "{out}");
    for file in files_in(&dir, &[".yml", ".yaml"]) {
        assert!(out.contains(&format!("ok {file} against the Compose Specification")), "{file} was validated: {out}");
        assert!(out.contains(&format!("ok {file}: services")), "{file}'s references were checked: {out}");
    }
}

/// A small but complete set: a Secret, a ConfigMap, a claim, a Deployment using all three and a
/// Service in front of it. Each broken variant below changes one line of it.
const GOOD_MANIFESTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: { name: token }
stringData: { token: "x" }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings }
data: { level: info }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: db }
spec:
  accessModes: ["ReadWriteOnce"]
  resources: { requests: { storage: 1Gi } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  selector: { matchLabels: { app: app } }
  template:
    metadata: { labels: { app: app } }
    spec:
      containers:
        - name: app
          image: app:1
          args: ["serve", "--db", "/var/lib/app/db", "--name", "$(POD_NAME)", "--peer", "http://app:8320"]
          env:
            - name: TOKEN
              valueFrom: { secretKeyRef: { name: token, key: token } }
            - name: LEVEL
              valueFrom: { configMapKeyRef: { name: settings, key: level } }
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
          ports: [{ name: http, containerPort: 8320 }]
          readinessProbe: { httpGet: { path: /healthz, port: http } }
          volumeMounts: [{ name: data, mountPath: /var/lib/app }]
      volumes:
        - name: data
          persistentVolumeClaim: { claimName: db }
---
apiVersion: v1
kind: Service
metadata: { name: app }
spec:
  selector: { app: app }
  ports: [{ name: http, port: 8320, targetPort: http }]
"#;

fn check_manifests(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("all.yaml"), text).unwrap();
    check("kubernetes", dir.path())
}

#[test]
fn the_kubernetes_checker_catches_dangling_references_and_schema_errors() {
    let (code, out) = check_manifests(GOOD_MANIFESTS);
    assert_eq!(code, 0, "the good set passes, so each failure below is its one change: {out}");
    let broken = [
        ("secretKeyRef: { name: token,", "secretKeyRef: { name: tokens,", "Secret `tokens`, which no manifest defines"),
        ("key: token }", "key: secret }", "key `secret` of Secret `token`, which has no such key"),
        ("configMapKeyRef: { name: settings,", "configMapKeyRef: { name: setting,", "ConfigMap `setting`"),
        ("claimName: db }", "claimName: database }", "PersistentVolumeClaim `database`, which no manifest defines"),
        ("[{ name: data, mountPath", "[{ name: date, mountPath", "volumeMount `date` names no volume of the pod"),
        ("$(POD_NAME)", "$(POD)", "uses $(POD), which the container's env does not define"),
        ("http://app:8320", "http://api:8320", "names host `api`, which is no Service"),
        ("port: http } }", "port: web } }", "readinessProbe uses port `web`"),
        ("selector: { app: app }\n", "selector: { app: other }\n", "matches no pod template"),
        ("\"/var/lib/app/db\"", "\"/tmp/db\"", "`--db /tmp/db` is on no mounted volume"),
        // Schema: a misspelt field (strict) and a wrong type.
        ("  selector: { matchLabels", "  selectors: { matchLabels", "does not match Kubernetes"),
        ("containerPort: 8320", "containerPort: \"eighty\"", "does not match Kubernetes"),
    ];
    for (from, to, expected) in broken {
        assert!(GOOD_MANIFESTS.contains(from), "the variant's anchor `{from}` is in the good set");
        let (code, out) = check_manifests(&GOOD_MANIFESTS.replacen(from, to, 1));
        assert_eq!(code, 1, "`{to}` is caught: {out}");
        assert!(out.contains(expected), "`{to}` is reported as `{expected}`: {out}");
        assert!(out.contains("all.yaml"), "the report names the file: {out}");
    }
}

const GOOD_COMPOSE: &str = r#"
services:
  coordinator:
    build: { context: ., dockerfile: Dockerfile, target: coordinator }
    env_file: app.env
    ports: ["${APP_PORT:-8320}:8320"]
    volumes: ["db:/var/lib/app", "./data:/data:ro"]
  worker:
    image: worker:1
    env_file: app.env
    depends_on: { coordinator: { condition: service_started } }
volumes:
  db:
"#;

fn check_compose(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("docker-compose.yml"), text).unwrap();
    fs::write(dir.path().join("app.env.example"), "APP_TOKEN=\n").unwrap();
    fs::write(dir.path().join("Dockerfile"), "FROM debian:12 AS build\nFROM debian:12-slim AS coordinator\n").unwrap();
    fs::create_dir(dir.path().join("data")).unwrap();
    check("compose", dir.path())
}

#[test]
fn the_compose_checker_catches_dangling_references_and_schema_errors() {
    let (code, out) = check_compose(GOOD_COMPOSE);
    assert_eq!(code, 0, "the good file passes, so each failure below is its one change: {out}");
    let broken = [
        ("\"db:/var/lib/app\"", "\"dbs:/var/lib/app\"", "volume `dbs` is not declared"),
        ("env_file: app.env\n    ports", "env_file: other.env\n    ports", "env_file `other.env` exists neither"),
        ("${APP_PORT:-8320}", "${APP_PORT}", "${APP_PORT} has no default"),
        ("depends_on: { coordinator:", "depends_on: { coordinater:", "depends_on `coordinater`"),
        ("target: coordinator", "target: coord", "build target `coord` is not a stage"),
        ("./data:/data", "./dataset:/data", "bind mount source `./dataset` does not exist"),
        // Schema: an unknown key and a wrong type.
        ("    image: worker:1", "    imag: worker:1", "docker-compose.yml::$.services.worker"),
        ("    image: worker:1", "    image: [worker]", "docker-compose.yml::$.services.worker.image"),
    ];
    for (from, to, expected) in broken {
        assert!(GOOD_COMPOSE.contains(from), "the variant's anchor `{from}` is in the good file");
        let (code, out) = check_compose(&GOOD_COMPOSE.replacen(from, to, 1));
        assert_eq!(code, 1, "`{to}` is caught: {out}");
        assert!(out.contains(expected), "`{to}` is reported as `{expected}`: {out}");
    }
}

/// Every YAML document of `file` (relative to the repository), as JSON, read by the validators'
/// Python (PyYAML comes with them).
fn yaml_documents(file: &str) -> Vec<serde_json::Value> {
    let script = "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new(python()).arg("-c").arg(script).arg(repo().join(file)).output().unwrap();
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A worker exits 2 when waiting cannot help (a refused token, a bad URL, an incompatible
/// coordinator: crates/connect's error.rs); every way deploy/ runs workers must leave such a
/// worker stopped and visibly failed instead of restarting it forever, while other failures are
/// still restarted.
#[test]
fn every_deploy_file_stops_restarting_a_worker_that_exits_2() {
    // systemd: restart on failure, except status 2.
    let unit = fs::read_to_string(repo().join("deploy/systemd/decsweep-worker@.service")).unwrap();
    let settings: Vec<&str> = unit.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    assert!(settings.contains(&"Restart=on-failure"), "{unit}");
    assert!(settings.contains(&"RestartPreventExitStatus=2"), "{unit}");

    // Kubernetes: the workers' Job fails at once on exit 2 (podFailurePolicy, which needs
    // restartPolicy Never) and retries other failures.
    let job = yaml_documents("deploy/kubernetes/workers-job.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .expect("workers-job.yaml holds a Job");
    let spec = &job["spec"];
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never", "podFailurePolicy needs it");
    let containers = spec["template"]["spec"]["containers"].as_array().unwrap();
    let rules = spec["podFailurePolicy"]["rules"].as_array().expect("a podFailurePolicy");
    let fails_on_2 = rules.iter().any(|r| {
        let codes = &r["onExitCodes"];
        r["action"] == "FailJob"
            && codes["operator"] == "In"
            && codes["values"].as_array().is_some_and(|v| v.contains(&serde_json::json!(2)))
            && containers.iter().any(|c| c["name"] == codes["containerName"])
    });
    assert!(fails_on_2, "a FailJob rule for exit 2 of the worker container: {rules:?}");
    assert!(spec["backoffLimit"].as_u64().is_some_and(|n| n > 0), "other failures are retried");

    // Compose cannot exempt a status, so every service that runs a worker restarts a bounded
    // number of times: `on-failure:N`, never `always` or `unless-stopped`.
    for file in ["deploy/compose/docker-compose.yml", "deploy/compose/docker-compose.gpu.yml"] {
        let compose = &yaml_documents(file)[0];
        for (name, service) in compose["services"].as_object().unwrap() {
            let runs_worker = name.contains("worker") || service.to_string().contains("decsweep-worker");
            let Some(restart) = service["restart"].as_str() else { continue };
            if runs_worker {
                let bounded = restart.strip_prefix("on-failure:").and_then(|n| n.parse::<u32>().ok());
                assert!(bounded.is_some_and(|n| n > 0), "{file}: service {name} has `restart: {restart}`");
            }
        }
    }

    let base = &yaml_documents("deploy/compose/docker-compose.yml")[0];
    assert!(base["services"]["worker"]["restart"].is_string(), "the worker service says how it restarts");

    // SLURM: the array task ends with the worker's own status (no requeue that would hide it).
    let sbatch = fs::read_to_string(repo().join("deploy/slurm/worker-array.sbatch")).unwrap();
    assert!(sbatch.trim_end().ends_with("exit \"$status\""), "the task exits with the worker's status");
    assert!(!sbatch.contains("#SBATCH --requeue"), "a failed worker is not requeued");
}
