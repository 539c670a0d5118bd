"""Offline checks of decsweep's deploy files; crates/cli/tests/deploy.rs runs them.

    python check_deploy.py kubernetes DIR   # every manifest in DIR
    python check_deploy.py compose DIR      # every compose file in DIR

Two kinds of check, both offline:

- Schema. Kubernetes manifests against the Kubernetes OpenAPI schemas bundled with
  kubernetes-validate (strict: unknown fields are errors), for the oldest and the newest
  Kubernetes version the pinned package knows. Compose files against the Compose Specification
  schema vendored in check-jsonschema (`--builtin-schema vendor.compose-spec`).
- References, which no schema sees: every Secret, ConfigMap, PersistentVolumeClaim, volume,
  container port, Service and `$(VAR)` a manifest names is defined in DIR; in compose, every
  service, named volume, env_file, build context/Dockerfile/target and `${VAR}` is defined or
  has a default.

Prints one line per resource or file checked ("ok ...") and one per problem ("FILE: what"), then
exits 0 when there is no problem, 1 when there is one, 2 on bad usage or a missing validator.
"""

import importlib
import re
import subprocess
import sys
from pathlib import Path


def require(module):
    """Imports a validator's module, or exits 2 saying how to install it (the venv rule does)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        print(f"check_deploy.py: {e}; install the pinned validators into this Python with `make venv`", file=sys.stderr)
        sys.exit(2)


yaml = require("yaml")
# Imported by check_kubernetes only: the compose checks need not pay for loading it.
kv = None

# Oldest and newest schema sets in the pinned kubernetes-validate.
KUBERNETES_VERSIONS = ("1.25", "1.37")
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Flags of decsweep and decsweep-worker whose value is a file or folder the container must have
# on a mounted volume (a path only in the image would be lost with the pod, or not exist).
PATH_FLAGS = {"--db", "--work-dir", "--token-file", "--tls-cert", "--tls-key", "--ca-cert"}
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
SERVICE_URL = re.compile(r"^https?://([a-z0-9]([-a-z0-9]*[a-z0-9])?):(\d+)(/|$)")
COMPOSE_VAR = re.compile(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, what):
        self.lines.append(f"{where}: {what}")


def load_documents(path, problems):
    """The non-empty YAML documents of a file, or [] after reporting why it cannot be read."""
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        problems.add(path, f"not readable YAML: {e}")
        return []


def resource_name(doc):
    meta = doc.get("metadata") or {}
    if meta.get("name"):
        return meta["name"]
    return meta["generateName"] + "*" if meta.get("generateName") else "(unnamed)"


# --- Kubernetes ------------------------------------------------------------------------------


def check_kubernetes(directory, problems):
    global kv
    kv = require("kubernetes_validate.utils")
    print(f"kubernetes-validate {require('kubernetes_validate.version').__version__}")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        problems.add(directory, "no .yaml manifests")
    resources = []  # (file, doc)
    for path in files:
        for doc in load_documents(path, problems):
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                problems.add(path, "a document without `apiVersion` and `kind`")
                continue
            resources.append((path, doc))

    for path, doc in resources:
        label = f"{doc['kind']}/{resource_name(doc)}"
        if doc["kind"] == "Kustomization":
            # No schema for it offline; check what it lists instead.
            for entry in doc.get("resources") or []:
                if not (directory / entry).exists():
                    problems.add(path, f"{label} lists resource `{entry}`, which is not in {directory}")
            print(f"ok {label} ({path.name}): its resources exist (no Kustomization schema offline)")
            continue
        failed = False
        for version in KUBERNETES_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                at = ".".join(str(p) for p in e.path) or "(top)"
                problems.add(path, f"{label} does not match Kubernetes {version}'s schema at {at}: {e.message}")
                failed = True
            except kv.SchemaNotFoundError as e:
                problems.add(path, f"{label}: {e.message}")
                failed = True
        if not failed:
            print(f"ok {label} ({path.name}) against Kubernetes {' and '.join(KUBERNETES_VERSIONS)}, strict")

    check_kubernetes_references(resources, problems)


def pod_templates(doc):
    """(pod spec, pod labels) of a workload, or None."""
    kind, spec = doc["kind"], doc.get("spec") or {}
    if kind == "Pod":
        return spec, (doc.get("metadata") or {}).get("labels") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    elif kind not in POD_TEMPLATE_KINDS:
        return None
    template = spec.get("template") or {}
    return template.get("spec") or {}, (template.get("metadata") or {}).get("labels") or {}


def check_kubernetes_references(resources, problems):
    secrets, config_maps, claims, services = {}, {}, set(), {}
    for path, doc in resources:
        name, kind = resource_name(doc), doc["kind"]
        if kind == "Secret":
            secrets[name] = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
        elif kind == "ConfigMap":
            config_maps[name] = set(doc.get("data") or {}) | set(doc.get("binaryData") or {})
        elif kind == "PersistentVolumeClaim":
            claims.add(name)
        elif kind == "Service":
            services[name] = dict(doc.get("spec") or {}, file=path)

    def key_ref(where, what, ref, defined):
        """A {name, key} reference to a Secret or ConfigMap; `optional: true` may dangle."""
        if ref.get("optional"):
            return
        name, key = ref.get("name"), ref.get("key")
        if name not in defined:
            problems.add(where, f"{what} names {kind_of(defined)} `{name}`, which no manifest defines")
        elif key is not None and key not in defined[name]:
            problems.add(where, f"{what} names key `{key}` of {kind_of(defined)} `{name}`, which has no such key")

    def kind_of(defined):
        return "Secret" if defined is secrets else "ConfigMap"

    pods = []  # (where, pod spec, labels)
    for path, doc in resources:
        found = pod_templates(doc)
        if found is None:
            continue
        pod, labels = found
        where = f"{path} ({doc['kind']}/{resource_name(doc)})"
        pods.append((where, pod, labels))

        volumes = {}
        for volume in pod.get("volumes") or []:
            vname = volume.get("name")
            if vname in volumes:
                problems.add(where, f"volume `{vname}` is defined twice")
            volumes[vname] = volume
            if "secret" in volume:
                src = volume["secret"]
                ref = {"name": src.get("secretName"), "optional": src.get("optional")}
                key_ref(where, f"volume `{vname}`", ref, secrets)
                for item in src.get("items") or []:
                    key_ref(where, f"volume `{vname}`", dict(ref, key=item.get("key")), secrets)
            if "configMap" in volume:
                src = volume["configMap"]
                ref = {"name": src.get("name"), "optional": src.get("optional")}
                key_ref(where, f"volume `{vname}`", ref, config_maps)
                for item in src.get("items") or []:
                    key_ref(where, f"volume `{vname}`", dict(ref, key=item.get("key")), config_maps)
            for source in (volume.get("projected") or {}).get("sources") or []:
                for field, defined in (("secret", secrets), ("configMap", config_maps)):
                    if field in source:
                        src = source[field]
                        ref = {"name": src.get("name"), "optional": src.get("optional")}
                        key_ref(where, f"projected volume `{vname}`", ref, defined)
                        for item in src.get("items") or []:
                            key_ref(where, f"projected volume `{vname}`", dict(ref, key=item.get("key")), defined)
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"].get("claimName")
                if claim not in claims:
                    problems.add(where, f"volume `{vname}` claims PersistentVolumeClaim `{claim}`, which no manifest defines")

        for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            check_container(where, container, volumes, secrets, config_maps, services, key_ref, problems)

    for name, spec in services.items():
        selector = spec.get("selector") or {}
        matching = [p for p in pods if selector and all(p[2].get(k) == v for k, v in selector.items())]
        if not matching:
            problems.add(f"{spec['file']} (Service/{name})", f"its selector {selector} matches no pod template in these manifests")
            continue
        port_names = {
            port.get("name")
            for _, pod, _ in matching
            for container in pod.get("containers") or []
            for port in container.get("ports") or []
        }
        for port in spec.get("ports") or []:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                problems.add(f"{spec['file']} (Service/{name})", f"targetPort `{target}` is not a named port of the pods it selects")


def check_container(where, container, volumes, secrets, config_maps, services, key_ref, problems):
    cname = container.get("name")
    where = f"{where} container `{cname}`"
    env_names = set()
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for field, defined in (("secretRef", secrets), ("configMapRef", config_maps)):
            if field in source:
                ref = source[field]
                key_ref(where, f"envFrom {field}", {"name": ref.get("name"), "optional": ref.get("optional")}, defined)
                env_names |= {prefix + k for k in defined.get(ref.get("name"), ())}
    for var in container.get("env") or []:
        name = var.get("name")
        value_from = var.get("valueFrom") or {}
        if "secretKeyRef" in value_from:
            key_ref(where, f"env `{name}`", value_from["secretKeyRef"], secrets)
        if "configMapKeyRef" in value_from:
            key_ref(where, f"env `{name}`", value_from["configMapKeyRef"], config_maps)
        # $(VAR) in a value may name only variables defined before it.
        for ref in VAR_REF.findall(str(var.get("value", ""))):
            if ref not in env_names:
                problems.add(where, f"env `{name}` uses $({ref}), which is not defined before it")
        env_names.add(name)

    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    for arg in argv:
        # Kubernetes leaves an undefined $(VAR) as it is: the program would get the literal text.
        for ref in VAR_REF.findall(arg):
            if ref not in env_names:
                problems.add(where, f"argument `{arg}` uses $({ref}), which the container's env does not define")
        url = SERVICE_URL.match(arg)
        if url:
            host, port = url.group(1), int(url.group(3))
            if host not in services:
                problems.add(where, f"argument `{arg}` names host `{host}`, which is no Service in these manifests")
            elif port not in {p.get("port") for p in services[host].get("ports") or []}:
                problems.add(where, f"argument `{arg}`: Service `{host}` has no port {port}")

    mounts = []
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            problems.add(where, f"volumeMount `{mount.get('name')}` names no volume of the pod")
        mounts.append(mount.get("mountPath", ""))
    for flag, value in zip(argv, argv[1:]):
        if flag in PATH_FLAGS and value.startswith("/"):
            if not any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts):
                problems.add(where, f"`{flag} {value}` is on no mounted volume (mounts: {', '.join(mounts) or 'none'})")

    port_names = {p.get("name") for p in container.get("ports") or [] if p.get("name")}
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(probe_name) or {}
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = (probe.get(handler) or {}).get("port")
            if isinstance(port, str) and port not in port_names:
                problems.add(where, f"{probe_name} uses port `{port}`, which the container does not name")


# --- Compose ---------------------------------------------------------------------------------


def check_compose(directory, problems):
    files = sorted(p for p in directory.iterdir() if re.fullmatch(r"(docker-)?compose(\..+)?\.ya?ml", p.name))
    if not files:
        problems.add(directory, "no compose files")
        return
    # Run check-jsonschema as a module of this Python (the venv's), on every file at once.
    schema = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", *map(str, files)],
        capture_output=True,
        text=True,
    )
    if schema.returncode != 0:
        for line in (schema.stdout + schema.stderr).splitlines():
            if line.strip() and "validation errors were encountered" not in line:
                problems.add("compose schema", line.strip())
    else:
        for path in files:
            print(f"ok {path.name} against the Compose Specification (check-jsonschema vendor.compose-spec)")

    docs = {path: (load_documents(path, problems) or [{}])[0] for path in files}
    base_path = next((p for p in files if p.name in ("docker-compose.yml", "compose.yaml", "compose.yml")), files[0])
    base = docs[base_path] or {}
    services = base.get("services") or {}
    dot_env = read_env_file(directory / ".env") if (directory / ".env").exists() else {}
    for path, doc in docs.items():
        if not isinstance(doc, dict):
            continue
        if path != base_path:
            # An override naming a service the base file lacks would add a half-defined service.
            for name in doc.get("services") or {}:
                if name not in services:
                    problems.add(path, f"service `{name}` is not defined in {base_path.name}")
        named_volumes = set((base.get("volumes") or {})) | set((doc.get("volumes") or {}))
        for name, service in (doc.get("services") or {}).items():
            check_compose_service(path, name, service or {}, services, named_volumes, problems)
        for var, has_fallback in compose_variables(path.read_text()):
            if not has_fallback and var not in dot_env:
                problems.add(path, f"${{{var}}} has no default and no .env defines it: it would be empty")
        print(f"ok {path.name}: services, volumes, env files, build targets and variables resolve")


def read_env_file(path):
    """NAME=value lines (comments and blanks skipped), as compose reads an env_file."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value
    return values


def compose_variables(text):
    """(name, has a default or is required) for every ${VAR} / $VAR interpolation in the file."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in COMPOSE_VAR.finditer(line):
            if match.group(0) == "$$":
                continue
            inner = match.group(1) if match.group(1) is not None else match.group(2)
            name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", inner)
            name = name.group(0) if name else inner
            found.append((name, any(op in inner for op in (":-", "-", ":?", "?"))))
    return found


def resolve_default(text):
    """`${VAR:-default}` → `default`; other text unchanged."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)


def check_compose_service(path, name, service, services, named_volumes, problems):
    where = f"{path} service `{name}`"
    directory = path.parent
    env_files = service.get("env_file") or []
    for entry in [env_files] if isinstance(env_files, (str, dict)) else env_files:
        file = entry if isinstance(entry, str) else entry.get("path")
        required = True if isinstance(entry, str) else entry.get("required", True)
        target = directory / file
        # A file users create from a checked-in template (decsweep.env from decsweep.env.example).
        template = target.with_name(target.name + ".example")
        if required and not target.exists() and not template.exists():
            problems.add(where, f"env_file `{file}` exists neither as a file nor as `{template.name}` to copy")
    for dependency in service.get("depends_on") or []:
        if dependency not in services:
            problems.add(where, f"depends_on `{dependency}`, which is no service")
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            # Short syntax: a path (or an anonymous volume) binds, a bare name is a named volume.
            volume = resolve_default(volume)
            source = volume.split(":")[0]
            kind = "bind" if source.startswith((".", "/", "~")) or ":" not in volume else "volume"
        else:
            source, kind = resolve_default(volume.get("source", "")), volume.get("type", "volume")
        if kind == "volume" and source and source not in named_volumes:
            problems.add(where, f"volume `{source}` is not declared under the top-level `volumes:`")
        if kind == "bind" and source.startswith(".") and not (directory / source).exists():
            problems.add(where, f"bind mount source `{source}` does not exist next to {path.name}")
    build = service.get("build")
    if isinstance(build, dict):
        context = directory / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not context.is_dir():
            problems.add(where, f"build context `{build.get('context')}` is not a folder")
        elif not dockerfile.is_file():
            problems.add(where, f"Dockerfile `{build.get('dockerfile')}` is not in the build context")
        elif "target" in build:
            stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text())
            if build["target"] not in stages:
                problems.add(where, f"build target `{build['target']}` is not a stage of {dockerfile.name} ({', '.join(stages)})")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("kubernetes", "compose") or not Path(argv[2]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    problems = Problems()
    directory = Path(argv[2])
    if argv[1] == "kubernetes":
        check_kubernetes(directory, problems)
    else:
        check_compose(directory, problems)
    for line in problems.lines:
        print(line)
    return 1 if problems.lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
