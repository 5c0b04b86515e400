#!/usr/bin/env python3
"""Checks Dockerfile, .dockerignore, docker-compose.yml and compose.redis-cluster.yml
without a Docker engine.

    scripts/check-containers.py [--bin DIR] [--json] [--env NAME=VALUE ...]

--bin DIR is where the built `producer` and `listener` are (default: the release build,
then the debug build). Exits 1 and lists what is wrong; with --json prints one object
{"failures": [...], "passed": [...], "services": {...}, "cluster": {...}} and exits 0 (the
test reads it). "services" has each compose service with its interpolated environment,
command, ports and the program it runs, so a test can start the real binaries with exactly
that environment; "cluster" the same for the Redis Cluster override merged onto the base.

What it checks:
  compose   a schema check of the parts of the Compose spec this file uses (unknown keys,
            types, duration and port syntax, restart values, depends_on conditions, named
            volumes), variable interpolation like Compose (${VAR:-default}, $$), the
            services and their wiring: every app service's environment names are settings
            of the program it runs (the contract's list and the program's own --help),
            published container ports equal the port settings, host ports are the
            documented ones, URLs point at the right service and port, the database URL's
            user/password/database are the postgres service's, depends_on is
            service_healthy on services that have healthchecks, instance ids are distinct,
            the scalable service has neither an INSTANCE_ID nor a fixed host port.
  cluster   compose.redis-cluster.yml merged onto docker-compose.yml as Compose merges files
            (mappings key by key, command and healthcheck.test replaced, environment and
            depends_on merged, volumes unique by target), then the same schema and wiring
            checks, with Redis being cluster nodes: every redis:7 server runs --cluster-enabled
            yes with --requirepass and --masterauth from REDIS_PASSWORD (REDISCLI_AUTH for
            redis-cli), appendonly, a redis-cli ping healthcheck, a /data volume of its own and
            no published port; one init one-shot (restart "no") depends on every node
            service_healthy and runs a valid sh script that resolves each node with getent
            hosts, runs `redis-cli --cluster create ... --cluster-yes` and checks
            cluster_state:ok; every listener's REDIS_URL lists exactly the nodes on their ports
            with their password variable, and each listener depends on the init
            (service_completed_successfully).
  Dockerfile multi-stage (swift:*-bookworm -> debian:bookworm-slim), the build stage's -dev
            packages and release build of both products, the runtime stage's packages
            against `ldd` of the binaries (every library a binary or a copied Swift runtime
            library needs directly is `dpkg -S`-mapped to its Debian package, which must be
            on the runtime apt-get install line; every library loaded indirectly must come
            with those packages' dependencies), the Swift runtime copied from the build
            stage (or a static stdlib), a non-root USER, a HEALTHCHECK on /health.
  .dockerignore keeps .build/ and .build-*/ out, and keeps what Package.swift needs in.
  monitoring the `monitoring` profile: prometheus and grafana services on pinned release tags
            of prom/prometheus and grafana/grafana, only in that profile; the config, rule
            files and Grafana provisioning mounted from monitoring/ where the programs read
            them; every producer and listener service scraped through Docker's DNS (type A,
            its service name) on its own port setting, every DNS name a service; the data
            source URL is the prometheus service's port; the dashboard provider's path is
            the mounted dashboards folder and every panel uses a provisioned data source uid.
"""
import copy
import fnmatch
import functools
import json
import os
import re
import shlex
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("check-containers: PyYAML is missing (apt-get install python3-yaml, or pip install pyyaml)", file=sys.stderr)
    sys.exit(2)

# The repository: this script's parent folder (or --root, e.g. when run with `python3 -c`).
ROOT = (os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        if "__file__" in globals() else os.getcwd())

# The programs' settings (docs/interface.md and the README's settings tables).
SETTINGS = {
    "producer": ["HTTP_PORT", "WS_PORT", "HOST", "REPLAY_CAPACITY", "MAX_BODY_BYTES", "THREADS",
                 "SLOW_CLIENT_TIMEOUT_MS", "LOG_LEVEL", "DATA_DIR", "RETENTION_BYTES", "AUTH_TOKEN",
                 "MAX_CONNECTIONS"],
    "listener": ["INSTANCE_ID", "PORT", "PRODUCER_URL", "REDIS_URL", "DATABASE_URL", "LOCK_TTL_MS",
                 "DEDUP_WINDOW_MS", "PROCESS_DELAY_MS", "LOG_LEVEL", "HOST", "MAX_IN_FLIGHT_BYTES",
                 "SHUTDOWN_TIMEOUT_MS", "PRODUCER_TOKEN", "API_TOKEN", "PRODUCER_SILENCE_TIMEOUT_MS"],
    "flood": [],
}
DEFAULT_PORTS = {"HTTP_PORT": 3005, "WS_PORT": 8080, "PORT": 3000}
# Host ports the README promises.
EXPECTED_HOST_PORTS = {"producer": [3005, 8080], "listener-a": [3000], "listener-b": [3001]}
# The monitoring profile's services and their images (Docker Hub repositories).
MONITORING_IMAGES = {"prometheus": "prom/prometheus", "grafana": "grafana/grafana"}
# A released version: prom/prometheus tags are vX.Y.Z, grafana/grafana tags X.Y.Z.
MONITORING_TAGS = {"prometheus": r"^v(\d+)\.(\d+)\.(\d+)$", "grafana": r"^(\d+)\.(\d+)\.(\d+)$"}
# The Redis Cluster override (used as `docker compose -f docker-compose.yml -f ...`).
CLUSTER_OVERRIDE = "compose.redis-cluster.yml"
POSTGRES_IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_HOST_AUTH_METHOD",
                      "POSTGRES_INITDB_ARGS", "POSTGRES_INITDB_WALDIR", "PGDATA"}

failures = []
passed = []


def fail(message):
    failures.append(message)


def ok(message):
    passed.append(message)


def check(condition, message):
    (ok if condition else fail)(message)
    return condition


# ------------------------------------------------------------------ interpolation

INTERPOLATION = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)|(\{[^}]*\}?))")


def interpolate(value, env, where):
    """Compose's variable substitution on one string."""
    def replace(m):
        escaped, name, op, arg, bare, bad = m.groups()
        if escaped:
            return "$"
        if bad is not None:
            fail(f"{where}: invalid interpolation '{m.group(0)}'")
            return ""
        name = name or bare
        present = name in env
        val = env.get(name, "")
        if op in (":-", "-"):
            use_default = (not present) or (op == ":-" and val == "")
            return arg if use_default else val
        if op in (":?", "?"):
            if (not present) or (op == ":?" and val == ""):
                fail(f"{where}: ${{{name}}} is required ({arg})")
            return val
        if op in (":+", "+"):
            return arg if present and (op == "+" or val != "") else ""
        if not present:
            fail(f"{where}: ${name} is not set and has no default (Compose would use an empty string)")
        return val
    return INTERPOLATION.sub(replace, value)


def interpolate_tree(node, env, where):
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, list):
        return [interpolate_tree(v, env, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env, f"{where}.{k}") for k, v in node.items()}
    return node


# ------------------------------------------------------------------ merging override files

def env_map(env):
    """An environment (mapping, or list of NAME=value) as a mapping, values as written."""
    if isinstance(env, list):
        return {str(i).partition("=")[0]: (str(i).partition("=")[2] if "=" in str(i) else None) for i in env}
    return dict(env or {})


def volume_target(volume):
    if isinstance(volume, dict):
        return volume.get("target")
    parts = str(volume).split(":")
    return parts[1] if len(parts) >= 2 else parts[0]


def merge_tree(base, over):
    """Mappings merged key by key, sequences appended, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge_tree(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(over, list):
        return copy.deepcopy(base) + copy.deepcopy(over)
    return copy.deepcopy(over)


def merge_service(base, over):
    """One service of an override file merged onto the base's, by the Compose spec's merge
    rules: command, entrypoint and healthcheck.test replaced; environment and depends_on
    merged as mappings (list forms normalised); volumes unique by target, ports by their
    whole spec; other mappings merged, other sequences appended."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in out or key in ("command", "entrypoint"):
            out[key] = copy.deepcopy(value)
        elif key == "environment":
            out[key] = {**env_map(out[key]), **env_map(value)}
        elif key == "depends_on":
            as_map = lambda d: {n: {"condition": "service_started"} for n in d} if isinstance(d, list) else (d or {})
            out[key] = merge_tree(as_map(out[key]), as_map(value))
        elif key == "healthcheck" and isinstance(value, dict):
            out[key] = merge_tree(out[key], {k: v for k, v in value.items() if k != "test"})
            if "test" in value:
                out[key]["test"] = copy.deepcopy(value["test"])
        elif key in ("volumes", "ports") and isinstance(value, list):
            unique = volume_target if key == "volumes" else (lambda p: json.dumps(p, sort_keys=True) if isinstance(p, dict) else str(p))
            merged = list(out[key] or [])
            for item in value:
                same = [i for i, old in enumerate(merged) if unique(old) == unique(item)]
                if same:
                    merged[same[0]] = copy.deepcopy(item)
                else:
                    merged.append(copy.deepcopy(item))
            out[key] = merged
        else:
            out[key] = merge_tree(out[key], value)
    return out


def merge_compose(base, override):
    """An override file merged onto the base, as `docker compose -f base -f override` does."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if key == "services" and isinstance(value, dict) and isinstance(out.get("services"), dict):
            for name, svc in value.items():
                out["services"][name] = merge_service(out["services"].get(name) or {}, svc or {})
        else:
            out[key] = merge_tree(out.get(key), value) if key in out else copy.deepcopy(value)
    return out


# ------------------------------------------------------------------ compose schema

DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
SERVICE_KEYS = {
    "image": str, "build": (str, dict), "command": (str, list), "entrypoint": (str, list),
    "environment": (dict, list), "env_file": (str, list), "ports": list, "expose": list,
    "volumes": list, "healthcheck": dict, "depends_on": (dict, list), "restart": str,
    "profiles": list, "ulimits": dict, "stop_grace_period": str, "stop_signal": str,
    "init": bool, "user": str, "working_dir": str, "hostname": str, "container_name": str,
    "networks": (list, dict), "logging": dict, "deploy": dict, "labels": (dict, list),
    "read_only": bool, "tmpfs": (str, list), "shm_size": (str, int), "cap_drop": list,
    "security_opt": list, "pull_policy": str, "mem_limit": (str, int), "cpus": (str, int, float),
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
TOP_KEYS = {"version", "name", "services", "volumes", "networks", "configs", "secrets"}


def schema_check(doc, label="compose"):
    if not check(isinstance(doc, dict), f"{label}: the file is a mapping"):
        return
    for key in doc:
        if not (key in TOP_KEYS or str(key).startswith("x-")):
            fail(f"{label}: unknown top-level key '{key}'")
    services = doc.get("services")
    if not check(isinstance(services, dict) and services, f"{label}: has services"):
        return
    named_volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        where = f"{label}: services.{name}"
        if not isinstance(svc, dict):
            fail(f"{where} is not a mapping")
            continue
        if not re.match(r"^[a-zA-Z0-9._-]+$", name):
            fail(f"{where}: invalid service name")
        for key, value in svc.items():
            if key not in SERVICE_KEYS:
                fail(f"{where}: unknown key '{key}'")
            elif not isinstance(value, SERVICE_KEYS[key]):
                fail(f"{where}.{key}: wrong type {type(value).__name__}")
        if "image" not in svc and "build" not in svc:
            fail(f"{where}: neither image nor build")
        for key in ("stop_grace_period",):
            if key in svc and not DURATION.match(str(svc[key])):
                fail(f"{where}.{key}: bad duration '{svc[key]}'")
        if "restart" in svc and not RESTART.match(str(svc["restart"])):
            fail(f"{where}.restart: bad value '{svc['restart']}'")
        env = svc.get("environment")
        if isinstance(env, dict):
            for k, v in env.items():
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(k)):
                    fail(f"{where}.environment: bad name '{k}'")
                if not (v is None or isinstance(v, (str, int, float))) or isinstance(v, bool):
                    fail(f"{where}.environment.{k}: give a string (got {type(v).__name__})")
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                if "target" not in port:
                    fail(f"{where}.ports: long syntax without target")
            elif not re.match(r"^((\d{1,3}(\.\d{1,3}){3}:)?(\d+(-\d+)?)?:)?\d+(-\d+)?(/(tcp|udp))?$", str(port)):
                fail(f"{where}.ports: bad port '{port}'")
        for vol in svc.get("volumes") or []:
            if isinstance(vol, str):
                source = vol.split(":")[0]
                if ":" in vol and not source.startswith((".", "/", "~")) and source not in named_volumes:
                    fail(f"{where}.volumes: '{source}' is not a declared named volume")
        hc = svc.get("healthcheck")
        if isinstance(hc, dict):
            for key in hc:
                if key not in HEALTHCHECK_KEYS:
                    fail(f"{where}.healthcheck: unknown key '{key}'")
            for key in ("interval", "timeout", "start_period", "start_interval"):
                if key in hc and not DURATION.match(str(hc[key])):
                    fail(f"{where}.healthcheck.{key}: bad duration '{hc[key]}'")
            test = hc.get("test")
            if not hc.get("disable"):
                if isinstance(test, list):
                    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
                        fail(f"{where}.healthcheck.test: a list must start with CMD, CMD-SHELL or NONE")
                elif not isinstance(test, str):
                    fail(f"{where}.healthcheck.test: missing")
        deps = svc.get("depends_on")
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                if dep not in services:
                    fail(f"{where}.depends_on: unknown service '{dep}'")
                if not isinstance(spec, dict) or spec.get("condition") not in DEPENDS_CONDITIONS:
                    fail(f"{where}.depends_on.{dep}: condition must be one of {sorted(DEPENDS_CONDITIONS)}")
        elif isinstance(deps, list):
            for dep in deps:
                if dep not in services:
                    fail(f"{where}.depends_on: unknown service '{dep}'")
    ok(f"{label}: schema (keys, types, durations, ports, restart, depends_on, volumes)")


# ------------------------------------------------------------------ compose semantics

def as_list(command):
    if command is None:
        return None
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def env_dict(env):
    if env is None:
        return {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def program_of(command):
    if not command:
        return None
    prog = os.path.basename(command[0])
    if prog == "producer" and len(command) > 1 and command[1] == "flood":
        return "flood"
    if prog == "producer" and len(command) > 1 and command[1] == "serve":
        return "producer"
    return prog if prog in ("producer", "listener") else None


def parse_ports(ports):
    """[(host or None, container)] from short or long syntax."""
    out = []
    for p in ports or []:
        if isinstance(p, dict):
            out.append((int(p["published"]) if p.get("published") else None, int(p["target"])))
            continue
        spec = str(p).split("/")[0]
        parts = spec.split(":")
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        out.append((host, container))
    return out


def parse_url(url):
    m = re.match(r"^(?P<scheme>[a-z]+)://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?(?P<host>[^:/?]+)(?::(?P<port>\d+))?(?P<path>/[^?]*)?", url)
    return m.groupdict() if m else None


@functools.lru_cache(maxsize=None)
def parse_seeds(url):
    """[(host, port, password)] of a REDIS_URL: one URL, or a Redis Cluster's comma-separated
    seed nodes, whose later entries may leave out redis:// and the password. None if malformed."""
    seeds = []
    for i, entry in enumerate(str(url).split(",")):
        entry = entry.strip()
        if "://" not in entry and i > 0:
            entry = "redis://" + entry
        u = parse_url(entry)
        if u is None or u["scheme"] != "redis":
            return None
        seeds.append((u["host"], int(u["port"] or 6379), u["password"]))
    return seeds


def redis_port(svc):
    return int(flag_value(as_list(svc.get("command")), "--port") or 6379)


def redis_roles(services):
    """(servers, cluster nodes, tools) among the redis:7 services: those that run redis-server
    (the image's default command), those of them with --cluster-enabled yes, and the rest
    (one-shots that run redis-cli, like the cluster's init)."""
    redis = [n for n, s in services.items() if re.match(r"^redis:7", str(s.get("image", "")))]
    servers = [n for n in redis if os.path.basename((as_list(services[n].get("command")) or ["redis-server"])[0]) == "redis-server"]
    nodes = [n for n in servers if flag_value(as_list(services[n].get("command")), "--cluster-enabled") == "yes"]
    return servers, nodes, [n for n in redis if n not in servers]


@functools.lru_cache(maxsize=None)
def help_env_names(binary, args):
    try:
        out = subprocess.run([binary] + list(args), capture_output=True, text=True, timeout=30).stdout
    except OSError as e:
        fail(f"{label}: cannot run {binary} {' '.join(args)}: {e}")
        return None
    return set(re.findall(r"\[env\s+([A-Z_][A-Z0-9_]*)\]", out))


def semantic_check(services, bindir, label="compose"):
    images = {n: str(s.get("image", "")) for n, s in services.items()}
    # Redis: one server named redis, or (compose.redis-cluster.yml) cluster nodes and the
    # one-shot that joins them (tools: redis:7 services that run no redis-server).
    servers, nodes, tools = redis_roles(services)
    postgres = [n for n, i in images.items() if re.match(r"^postgres:15", i)]
    if nodes:
        check(servers == nodes and len(nodes) >= 3,
              f"{label}: every redis:7 server is a Redis Cluster node, three or more (servers {servers}, nodes {nodes})")
    else:
        check(servers + tools == ["redis"], f"{label}: one redis:7 service named redis (found {servers + tools})")
    check(postgres == ["postgres"], f"{label}: one postgres:15 service named postgres (found {postgres})")
    for name in ("producer", "listener-a", "listener-b"):
        check(name in services, f"{label}: service {name} exists")

    # The backing services.
    for rname in servers:
        r = services[rname]
        cmd = as_list(r.get("command")) or []
        check("--appendonly" in cmd and cmd[cmd.index("--appendonly") + 1:][:1] == ["yes"],
              f"{label}: {rname} runs with --appendonly yes")
        check(any(str(v).endswith(":/data") for v in r.get("volumes") or []), f"{label}: {rname} keeps /data on a named volume")
        test = (r.get("healthcheck") or {}).get("test") or []
        check("redis-cli" in " ".join(as_list(test) or []) and "ping" in " ".join(as_list(test) or []),
              f"{label}: {rname} healthcheck is redis-cli ping")
    if "producer" in services:
        pr = services["producer"]
        data_dir = env_dict(pr.get("environment")).get("DATA_DIR")
        check(bool(data_dir) and any(str(v).split(":")[1:2] == [data_dir] and not str(v).startswith((".", "/", "~"))
                                     for v in pr.get("volumes") or []),
              f"{label}: the producer keeps DATA_DIR (its event log) on a named volume")
    pg_env = {}
    if "postgres" in services:
        p = services["postgres"]
        pg_env = env_dict(p.get("environment"))
        unknown = set(pg_env) - POSTGRES_IMAGE_ENV
        check(not unknown, f"{label}: postgres environment names are the image's ({sorted(unknown)} unknown)")
        check(bool(pg_env.get("POSTGRES_PASSWORD")) or pg_env.get("POSTGRES_HOST_AUTH_METHOD") == "trust",
              f"{label}: postgres has a password or trust auth (the image refuses to start otherwise)")
        check(any(str(v).endswith(":/var/lib/postgresql/data") for v in p.get("volumes") or []),
              f"{label}: postgres keeps its data directory on a named volume")
        test = " ".join(as_list((p.get("healthcheck") or {}).get("test")) or [])
        check("pg_isready" in test, f"{label}: postgres healthcheck is pg_isready")

    help_names = {}
    for program, args in (("producer", ["serve", "--help"]), ("listener", ["--help"])):
        binary = os.path.join(bindir, program)
        names = help_env_names(binary, tuple(args)) if os.access(binary, os.X_OK) else None
        if names is None:
            fail(f"{label}: no {program} binary in {bindir} to read its settings from")
        else:
            missing = set(SETTINGS[program]) - names
            check(not missing, f"{label}: {program} --help lists every contract setting ({sorted(missing)} missing)")
        help_names[program] = names or set()

    producers = {}
    instance_ids = {}
    out = {}
    for name, svc in services.items():
        command = as_list(svc.get("command"))
        program = program_of(command)
        env = env_dict(svc.get("environment"))
        ports = parse_ports(svc.get("ports"))
        out[name] = {"program": program, "command": command, "environment": env,
                     "ports": [[h, c] for h, c in ports], "profiles": svc.get("profiles") or []}
        if name in servers or name == "postgres":
            pass
        elif name in tools:
            continue  # the cluster's init: cluster_check
        elif image_repo(svc.get("image")) in MONITORING_IMAGES.values():
            continue  # Prometheus and Grafana: monitoring_check
        elif program is None:
            fail(f"{label}: {name}: command {command} runs neither producer nor listener")
            continue
        else:
            if svc.get("image") != services.get("producer", {}).get("image") or svc.get("build") != services.get("producer", {}).get("build"):
                fail(f"{label}: {name} does not use the one dedup image the producer uses")
            allowed = set(SETTINGS[program])
            unknown = set(env) - allowed
            check(not unknown, f"{label}: {name} ({program}) environment names are contract settings ({sorted(unknown)} are not)")
            if program != "flood":
                ignored = set(env) - help_names.get(program, set())
                check(not ignored, f"{label}: {name}: {program} --help knows every environment name ({sorted(ignored)} unknown to it)")

        if program == "producer":
            http = int(env.get("HTTP_PORT", DEFAULT_PORTS["HTTP_PORT"]))
            ws = int(env.get("WS_PORT", DEFAULT_PORTS["WS_PORT"]))
            producers[name] = (http, ws)
            check(sorted(c for _, c in ports) == sorted([http, ws]),
                  f"{label}: {name} publishes exactly HTTP_PORT {http} and WS_PORT {ws} (container side: {[c for _, c in ports]})")
            health_port = http
        elif program == "listener":
            port = int(env.get("PORT", DEFAULT_PORTS["PORT"]))
            check([c for _, c in ports] == [port], f"{label}: {name} publishes its PORT {port} (container side: {[c for _, c in ports]})")
            health_port = port
            if "INSTANCE_ID" in env:
                if env["INSTANCE_ID"] in instance_ids:
                    fail(f"{label}: {name} and {instance_ids[env['INSTANCE_ID']]} share INSTANCE_ID {env['INSTANCE_ID']}")
                instance_ids[env["INSTANCE_ID"]] = name
            else:
                # Scaled replicas: the default id (host name + pid) is unique per container.
                check(all(h is None for h, _ in ports) and "container_name" not in svc and "hostname" not in svc,
                      f"{label}: {name} has no INSTANCE_ID, so it must be scalable: no fixed host port, container_name or hostname")
        else:
            health_port = None
        if name in EXPECTED_HOST_PORTS:
            check(sorted(h for h, _ in ports) == sorted(EXPECTED_HOST_PORTS[name]),
                  f"{label}: {name} host ports are {EXPECTED_HOST_PORTS[name]} (found {[h for h, _ in ports]})")
        hc = svc.get("healthcheck") or {}
        if program == "flood":
            pass
        elif name in servers or name == "postgres" or program in ("producer", "listener"):
            check(bool(hc.get("test")) and not hc.get("disable"), f"{label}: {name} has a healthcheck")
            if health_port is not None:
                test = " ".join(as_list(hc.get("test")) or [])
                check(f"127.0.0.1:{health_port}/health" in test or f"localhost:{health_port}/health" in test,
                      f"{label}: {name} healthcheck GETs /health on its own port {health_port}")
        check(bool(svc.get("restart")) if program != "flood" else str(svc.get("restart")) == "no",
              f"{label}: {name} has a restart policy" + (" ('no': one-shot)" if program == "flood" else ""))

    # Wiring: depends_on, URLs.
    for name, info in out.items():
        svc = services[name]
        program = info["program"]
        env = info["environment"]
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            fail(f"{label}: {name}: depends_on must use the long form with condition: service_healthy")
            deps = {}
        for dep, spec in deps.items():
            if dep in tools:
                check(spec.get("condition") == "service_completed_successfully",
                      f"{label}: {name} depends on {dep} (one-shot) with condition service_completed_successfully")
                continue
            check(spec.get("condition") == "service_healthy", f"{label}: {name} depends on {dep} with condition service_healthy")
            dep_hc = (services.get(dep) or {}).get("healthcheck") or {}
            check(bool(dep_hc.get("test")) and not dep_hc.get("disable"), f"{label}: {dep} (a dependency of {name}) has a healthcheck")
        if program == "listener":
            backing = ["postgres", "producer"] + (tools if nodes else ["redis"])
            check(set(backing) <= set(deps), f"{label}: {name} depends on {', '.join(backing)}")
            for key in ("INSTANCE_ID", "REDIS_URL", "DATABASE_URL", "PRODUCER_URL") if name in ("listener-a", "listener-b") else ("REDIS_URL", "DATABASE_URL", "PRODUCER_URL"):
                check(key in env, f"{label}: {name} sets {key}")
            u = parse_url(env.get("PRODUCER_URL", "ws://127.0.0.1:8080/"))
            check(u is not None and u["scheme"] == "ws" and u["host"] in producers and u["port"] is not None
                  and int(u["port"]) == producers[u["host"]][1],
                  f"{label}: {name} PRODUCER_URL points at a producer service's WS_PORT ({env.get('PRODUCER_URL')})")
            seeds = parse_seeds(env.get("REDIS_URL", ""))
            if nodes:
                # The seed list: every node once, on its port, with the nodes' password.
                want = sorted((n, redis_port(services[n])) for n in nodes)
                password = flag_value(as_list(services[nodes[0]].get("command")), "--requirepass")
                check(seeds is not None and sorted((h, p) for h, p, _ in seeds) == want
                      and seeds[0][2] == password and all(pw in (None, password) for _, _, pw in seeds[1:]),
                      f"{label}: {name} REDIS_URL lists exactly the cluster nodes {[f'{h}:{p}' for h, p in want]} with their password ({env.get('REDIS_URL')})")
            else:
                check(seeds is not None and len(seeds) == 1 and seeds[0][0] == "redis" and seeds[0][1] == 6379,
                      f"{label}: {name} REDIS_URL is the redis service on 6379 ({env.get('REDIS_URL')})")
            u = parse_url(env.get("DATABASE_URL", ""))
            good = (u is not None and u["scheme"] in ("postgres", "postgresql") and u["host"] in postgres and u["port"] == "5432")
            check(good, f"{label}: {name} DATABASE_URL is the postgres service on 5432")
            if good:
                user = pg_env.get("POSTGRES_USER") or "postgres"
                db = pg_env.get("POSTGRES_DB") or user
                check(u["user"] == user and (u["path"] or "/").lstrip("/") == db,
                      f"{label}: {name} DATABASE_URL user and database are the postgres service's ({user}/{db})")
                if pg_env.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
                    check(u["password"] == pg_env.get("POSTGRES_PASSWORD"),
                          f"{label}: {name} DATABASE_URL password is the postgres service's POSTGRES_PASSWORD")
        if program == "flood":
            cmd = info["command"]
            url = cmd[cmd.index("--url") + 1] if "--url" in cmd and cmd.index("--url") + 1 < len(cmd) else ""
            u = parse_url(url)
            check(u is not None and u["host"] in producers and u["port"] is not None and int(u["port"]) == producers[u["host"]][0],
                  f"{label}: {name} --url is a producer service's HTTP_PORT ({url})")
            check(bool(info["profiles"]), f"{label}: {name} only runs when its profile is asked for")
            check("producer" in deps, f"{label}: {name} depends on the producer")
    ok(f"{label}: services and wiring checked")
    return out


# ------------------------------------------------------------------ Redis Cluster

def cluster_check(raw, services, label="cluster"):
    """compose.redis-cluster.yml merged onto the base (semantic_check did the wiring common
    to both: nodes' appendonly and healthchecks, every listener's seed list and depends_on):
    the nodes' cluster flags, password and volumes, no host ports, and the init one-shot.
    `raw` is the merged file before interpolation (to see which variable a password is)."""
    servers, nodes, tools = redis_roles(services)
    if not check(len(nodes) >= 3, f"{label}: three or more Redis Cluster nodes (redis-server --cluster-enabled yes): {nodes}"):
        return
    passwords = set()
    volumes = {}
    for name in nodes:
        svc = services[name]
        cmd = as_list(svc.get("command"))
        password, masterauth = flag_value(cmd, "--requirepass"), flag_value(cmd, "--masterauth")
        variable = flag_value(as_list(raw[name].get("command")), "--requirepass")
        passwords.add(variable)
        check(bool(password) and masterauth == password,
              f"{label}: {name} runs with --cluster-enabled yes, --requirepass and the same --masterauth (replicas authenticate with it)")
        check("${REDIS_PASSWORD" in str(variable), f"{label}: {name}'s password is the REDIS_PASSWORD variable ({variable})")
        check(env_dict(svc.get("environment")).get("REDISCLI_AUTH") == password,
              f"{label}: {name} gives redis-cli (its healthcheck) the password as REDISCLI_AUTH")
        check(not svc.get("ports"), f"{label}: {name} publishes no port to the host ({svc.get('ports')})")
        for vol in svc.get("volumes") or []:
            if volume_target(vol) == "/data":
                volumes.setdefault(str(vol).split(":")[0], []).append(name)
    check(len(passwords) == 1, f"{label}: every node has the same password ({sorted(map(str, passwords))})")
    check(len(volumes) == len(nodes) and all(len(v) == 1 for v in volumes.values()),
          f"{label}: every node keeps /data (its nodes.conf) on a volume of its own ({volumes})")

    # The init: a one-shot that creates the cluster once every node is healthy.
    if not check(len(tools) == 1, f"{label}: one init service (redis:7 running no redis-server) ({tools})"):
        return
    init = tools[0]
    svc = services[init]
    password = flag_value(as_list(services[nodes[0]].get("command")), "--requirepass")
    check(str(svc.get("restart")) == "no", f"{label}: {init} is a one-shot (restart 'no')")
    check(not svc.get("ports"), f"{label}: {init} publishes no port")
    deps = svc.get("depends_on") or {}
    check(isinstance(deps, dict) and sorted(deps) == sorted(nodes)
          and all((deps[n] or {}).get("condition") == "service_healthy" for n in nodes),
          f"{label}: {init} depends on every node ({nodes}) with condition service_healthy ({deps})")
    cmd = as_list(svc.get("command")) or []
    script = cmd[-1] if len(cmd) >= 3 and os.path.basename(cmd[0]) in ("sh", "bash") and "c" in cmd[-2].lstrip("-") else ""
    if not check(bool(script), f"{label}: {init} runs a shell script (sh -c): {cmd[:2]}"):
        return
    r = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    check(r.returncode == 0, f"{label}: {init}'s script is valid sh" + (f" ({r.stderr.strip()})" if r.returncode else ""))
    named = [n for n in nodes if re.search(r"(?<![\w.-])" + re.escape(n) + r"(?![\w.-])", script)]
    check(named == nodes and "getent hosts" in script,
          f"{label}: {init} resolves every node's service name with getent hosts ({named} of {nodes})")
    ports = sorted({redis_port(services[n]) for n in nodes})
    check(re.search(r"--cluster\s+create\b", script) is not None and "--cluster-yes" in script
          and all(f":{p}" in script for p in ports),
          f"{label}: {init} creates the cluster (redis-cli --cluster create <address>:{ports} ... --cluster-yes)")
    check("cluster_state" in script and "ok" in script, f"{label}: {init} checks cluster_state:ok (a second run changes nothing)")
    check(env_dict(svc.get("environment")).get("REDISCLI_AUTH") == password or re.search(r"(^|\s)-a\s", script) is not None,
          f"{label}: {init} authenticates (REDISCLI_AUTH is the nodes' password, or -a)")

    # Every listener: the seed list's password is the nodes' variable, not a copy of its value.
    listeners = [n for n, s in services.items() if program_of(as_list(s.get("command"))) == "listener"]
    check(set(listeners) >= {"listener-a", "listener-b", "listener"}, f"{label}: every listener service is there ({listeners})")
    for name in listeners:
        url = str(env_map(raw[name].get("environment")).get("REDIS_URL", ""))
        check(url.partition("://")[2].partition("@")[0] == ":" + str(variable),
              f"{label}: {name} REDIS_URL's password is the nodes' {variable} ({url})")
    ok(f"{label}: override checked")


# ------------------------------------------------------------------ monitoring

def image_repo(image):
    """'prom/prometheus' of 'prom/prometheus:v2.53.3' (a docker.io/ prefix dropped)."""
    image = str(image or "")
    image = re.sub(r"^(docker\.io/|index\.docker\.io/)", "", image).split("@")[0]
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":")[0]


def image_tag(image):
    last = str(image or "").split("@")[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def bind_mounts(svc):
    """{container path: repository path} of the service's ./ bind mounts."""
    out = {}
    for vol in svc.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if len(parts) >= 2 and parts[0].startswith("./"):
                out[parts[1].rstrip("/")] = os.path.normpath(os.path.join(ROOT, parts[0]))
    return out


def resolve_mount(mounts, path):
    """The repository file or folder a container path is, through the bind mounts."""
    path = os.path.normpath(path)
    for target, source in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if path == target:
            return source
        if path.startswith(target + "/"):
            return os.path.join(source, path[len(target) + 1:])
    return None


def flag_value(command, flag):
    for i, word in enumerate(command or []):
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
        if word == flag and i + 1 < len(command):
            return command[i + 1]
    return None


def load_yaml(path, what):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        fail(f"monitoring: {what} {path} cannot be read: {e}")
        return None


def debian_prometheus_version():
    """(major, minor) of Debian's promtool, which the tests run; None when not installed."""
    try:
        out = subprocess.run(["promtool", "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    m = re.search(r"version (\d+)\.(\d+)\.", out.stdout + out.stderr)
    return (int(m.group(1)), int(m.group(2))) if m else None


def monitoring_check(services, dedup):
    """The `monitoring` profile: Prometheus and Grafana, wired to the dedup services."""
    found = {role: [n for n, s in services.items() if image_repo(s.get("image")) == repo]
             for role, repo in MONITORING_IMAGES.items()}
    for role, names in found.items():
        check(names == [role], f"monitoring: one {MONITORING_IMAGES[role]} service named {role} (found {names})")
    if found["prometheus"] != ["prometheus"] or found["grafana"] != ["grafana"]:
        return
    prom, graf = services["prometheus"], services["grafana"]
    for role, svc in (("prometheus", prom), ("grafana", graf)):
        check((svc.get("profiles") or []) == ["monitoring"], f"monitoring: {role} runs only in the monitoring profile")
        tag = image_tag(svc.get("image"))
        m = re.match(MONITORING_TAGS[role], tag or "")
        check(m is not None, f"monitoring: {role} image is a pinned release tag of {MONITORING_IMAGES[role]} ({svc.get('image')})")
        if role == "prometheus" and m is not None:
            debian = debian_prometheus_version()
            if debian is not None:
                check((int(m.group(1)), int(m.group(2))) >= debian and int(m.group(1)) == debian[0],
                      f"monitoring: the prometheus image ({tag}) is the major version the tests run (Debian's {debian[0]}.{debian[1]}) or a later minor")
        check(bool((svc.get("healthcheck") or {}).get("test")), f"monitoring: {role} has a healthcheck")
        check(bool(svc.get("restart")), f"monitoring: {role} has a restart policy")
    for name, info in dedup.items():
        if info.get("program") in ("producer", "listener"):
            check("monitoring" not in info.get("profiles", []), f"monitoring: {name} does not need the monitoring profile")

    # Host ports: no two services publish the same one (Grafana's own 3000 is a listener's).
    seen = {}
    for name, svc in services.items():
        for host, _ in parse_ports(svc.get("ports")):
            if host is not None:
                check(host not in seen, f"monitoring: host port {host} is published by one service only ({name}" + (f" and {seen[host]})" if host in seen else ")"))
                seen[host] = name

    # Prometheus: config and rules mounted where it reads them; its port.
    command = as_list(prom.get("command")) or []
    mounts = bind_mounts(prom)
    config_path = flag_value(command, "--config.file") or "/etc/prometheus/prometheus.yml"
    config_file = resolve_mount(mounts, config_path)
    if not check(config_file is not None and os.path.isfile(config_file),
                 f"monitoring: prometheus --config.file {config_path} is a mounted repository file ({config_file})"):
        return
    check(os.path.relpath(config_file, ROOT) == "monitoring/prometheus.yml",
          f"monitoring: prometheus reads monitoring/prometheus.yml ({os.path.relpath(config_file, ROOT)})")
    listen = flag_value(command, "--web.listen-address") or ":9090"
    prom_port = int(listen.rsplit(":", 1)[1])
    check(prom_port in [c for _, c in parse_ports(prom.get("ports"))],
          f"monitoring: prometheus publishes its --web.listen-address port {prom_port}")
    check(f"127.0.0.1:{prom_port}/" in " ".join(as_list((prom.get("healthcheck") or {}).get("test")) or []),
          f"monitoring: prometheus healthcheck asks its own port {prom_port}")
    config = load_yaml(config_file, "Prometheus config")
    if not isinstance(config, dict):
        fail("monitoring: monitoring/prometheus.yml is not a mapping")
        return
    rule_files = config.get("rule_files") or []
    check(bool(rule_files), "monitoring: prometheus.yml loads rule files")
    for rule in rule_files:
        in_container = rule if rule.startswith("/") else os.path.join(os.path.dirname(config_path), rule)
        host_file = resolve_mount(mounts, in_container)
        check(host_file is not None and os.path.isfile(host_file),
              f"monitoring: rule file {rule} ({in_container} in the container) is mounted from the repository ({host_file})")

    # Scrape jobs: every producer and listener service through Docker DNS on its port.
    expected = {}
    for name, info in dedup.items():
        env = info.get("environment") or {}
        if info.get("program") == "producer":
            expected[name] = int(env.get("HTTP_PORT", DEFAULT_PORTS["HTTP_PORT"]))
        elif info.get("program") == "listener":
            expected[name] = int(env.get("PORT", DEFAULT_PORTS["PORT"]))
    scraped = {}
    for job in config.get("scrape_configs") or []:
        jname = job.get("job_name")
        check(job.get("metrics_path", "/metrics") == "/metrics", f"monitoring: job {jname} scrapes /metrics")
        check(not job.get("static_configs"), f"monitoring: job {jname} finds its targets through Docker's DNS, not static addresses")
        for sd in job.get("dns_sd_configs") or []:
            check(sd.get("type") == "A", f"monitoring: job {jname} dns_sd_configs type A (Docker's DNS answers A records per container)")
            for dns_name in sd.get("names") or []:
                if not check(dns_name in expected, f"monitoring: job {jname} DNS name {dns_name} is a producer or listener service"):
                    continue
                check(sd.get("port") == expected[dns_name],
                      f"monitoring: job {jname} scrapes {dns_name} on its port setting {expected[dns_name]} (config: {sd.get('port')})")
                scraped.setdefault(dns_name, []).append(jname)
                if dedup[dns_name].get("program") == "listener":
                    check(job.get("honor_labels") is True,
                          f"monitoring: job {jname} keeps the listener's own instance label (honor_labels: true)")
    for name in expected:
        check(len(scraped.get(name, [])) == 1, f"monitoring: service {name} is scraped by exactly one job ({scraped.get(name, [])})")

    # Grafana: provisioning mounted; the data source is the prometheus service; dashboards.
    gmounts = bind_mounts(graf)
    prov = resolve_mount(gmounts, "/etc/grafana/provisioning")
    if not check(prov is not None and os.path.isdir(prov),
                 f"monitoring: grafana gets /etc/grafana/provisioning from the repository ({prov})"):
        return
    uids = set()
    ds_dir = os.path.join(prov, "datasources")
    ds_files = sorted(f for f in os.listdir(ds_dir) if f.endswith((".yml", ".yaml"))) if os.path.isdir(ds_dir) else []
    check(bool(ds_files), "monitoring: grafana provisioning has a data source file")
    for f in ds_files:
        doc = load_yaml(os.path.join(ds_dir, f), "Grafana data source")
        for ds in (doc or {}).get("datasources") or []:
            uids.add(ds.get("uid"))
            check(ds.get("type") == "prometheus" and ds.get("access", "proxy") == "proxy" and bool(ds.get("uid")),
                  f"monitoring: data source {ds.get('name')} is a Prometheus one with a uid, queried by Grafana's server (access proxy)")
            u = parse_url(str(ds.get("url", "")))
            check(u is not None and u["host"] == "prometheus" and u["port"] is not None and int(u["port"]) == prom_port,
                  f"monitoring: data source {ds.get('name')} URL is the prometheus service on {prom_port} ({ds.get('url')})")
            interval = (ds.get("jsonData") or {}).get("timeInterval")
            check(interval == config.get("global", {}).get("scrape_interval"),
                  f"monitoring: data source timeInterval {interval} is prometheus.yml's scrape_interval")
    db_dir = os.path.join(prov, "dashboards")
    db_files = sorted(f for f in os.listdir(db_dir) if f.endswith((".yml", ".yaml"))) if os.path.isdir(db_dir) else []
    check(bool(db_files), "monitoring: grafana provisioning has a dashboard provider file")
    dashboards = []
    for f in db_files:
        doc = load_yaml(os.path.join(db_dir, f), "Grafana dashboard provider")
        for provider in (doc or {}).get("providers") or []:
            path = (provider.get("options") or {}).get("path", "")
            folder = resolve_mount(gmounts, path)
            jsons = sorted(j for j in os.listdir(folder) if j.endswith(".json")) if folder and os.path.isdir(folder) else []
            check(bool(jsons), f"monitoring: dashboard provider {provider.get('name')} path {path} is a mounted folder with dashboards ({folder})")
            dashboards += [os.path.join(folder, j) for j in jsons]
    home = dedup.get("grafana", {}).get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        check(resolve_mount(gmounts, home) in dashboards, f"monitoring: the home dashboard {home} is a provisioned dashboard")
    for path in dashboards:
        try:
            dash = json.load(open(path))
        except (OSError, ValueError) as e:
            fail(f"monitoring: dashboard {path} is not valid JSON: {e}")
            continue
        bad = []
        for panel in dash.get("panels") or []:
            for p in [panel] + list(panel.get("panels") or []):
                if p.get("type") == "row":
                    continue
                for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets") or []]:
                    if not isinstance(ds, dict) or ds.get("uid") not in uids:
                        bad.append(f"{p.get('title')}: {ds}")
        check(not bad, f"monitoring: every panel of {os.path.basename(path)} uses a provisioned data source uid {sorted(uids)} ({bad})")
    ok("monitoring: profile checked")


# ------------------------------------------------------------------ Dockerfile

def dockerfile_instructions(text):
    """[(INSTRUCTION, argument)] with line continuations joined and comments dropped."""
    out = []
    current = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("#"):
            continue  # comments, also inside continued instructions (Docker drops them too)
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            parts = current.strip().split(None, 1)
            out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        current = ""
    if current.strip():
        parts = current.strip().split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return out


def expand_args(text, args):
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def apt_packages(run):
    pkgs = []
    for m in re.finditer(r"apt-get\s+(?:-\S+\s+)*install\s+((?:[^&|;]|\|(?!\|))*)", run):
        for word in m.group(1).split():
            if not word.startswith("-"):
                pkgs.append(word)
    return pkgs


def parse_dockerfile(path):
    text = open(path).read()
    args = {}
    stages = []
    for instr, arg in dockerfile_instructions(text):
        if instr == "ARG" and not stages:
            name, _, default = arg.partition("=")
            args[name.strip()] = default.strip().strip('"')
            continue
        if instr == "FROM":
            words = expand_args(arg, args).split()
            words = [w for w in words if not w.startswith("--platform")]
            stage = {"image": words[0], "name": words[2] if len(words) >= 3 and words[1].lower() == "as" else None,
                     "instructions": []}
            stages.append(stage)
            continue
        if stages:
            stages[-1]["instructions"].append((instr, arg))
    return stages


@functools.lru_cache(maxsize=None)
def dpkg_package(path):
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/"):
            candidates.append(p[4:])
        else:
            candidates.append("/usr" + p)
    for p in candidates:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.split(":", 1)[0].strip()
    return None


def ldd(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    libs = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)\s+\(", line)
        if m:
            libs[m.group(1)] = m.group(2)
        else:
            m = re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs[os.path.basename(m.group(1))] = m.group(1)
    return libs


@functools.lru_cache(maxsize=None)
def needed(path):
    r = subprocess.run(["readelf", "-d", path], capture_output=True, text=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


def depends_closure(packages):
    """Every package the given ones pull in (per this Debian 12 machine's dpkg database)."""
    seen = set()
    todo = list(packages)
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pkg], capture_output=True, text=True)
        if r.returncode != 0:
            continue
        for dep in re.split(r"[,|]", r.stdout):
            dep = re.sub(r"\(.*?\)|:any|:\w+$", "", dep).strip()
            if dep:
                todo.append(dep)
    return seen


def is_swift_lib(path):
    return "/lib/swift/linux/" in path


def dockerfile_check(bindir):
    path = os.path.join(ROOT, "Dockerfile")
    if not check(os.path.exists(path), "Dockerfile: exists"):
        return
    stages = parse_dockerfile(path)
    if not check(len(stages) >= 2, f"Dockerfile: multi-stage ({len(stages)} stages)"):
        return
    build = stages[0]
    runtime = stages[-1]
    check(re.match(r"^(docker\.io/(library/)?)?swift:[0-9.]+-bookworm$", build["image"]) is not None,
          f"Dockerfile: builds on the official Swift image for Debian 12 ({build['image']})")
    check(runtime["image"] in ("debian:bookworm-slim", "debian:12-slim"),
          f"Dockerfile: runs on debian:bookworm-slim ({runtime['image']})")
    build_runs = " ".join(a for i, a in build["instructions"] if i == "RUN")
    build_pkgs = set(apt_packages(build_runs))
    check({"libhiredis-dev", "libpq-dev", "libssl-dev"} <= build_pkgs,
          f"Dockerfile: the build stage installs libhiredis-dev libpq-dev libssl-dev ({sorted(build_pkgs)})")
    static = "--static-swift-stdlib" in build_runs
    for product in ("producer", "listener"):
        check(re.search(r"swift build[^&;]*-c release[^&;]*--product " + product, build_runs) is not None
              or re.search(r"swift build[^&;]*--product " + product + r"[^&;]*-c release", build_runs) is not None,
              f"Dockerfile: the build stage builds {product} in release")

    rt = runtime["instructions"]
    rt_runs = " ".join(a for i, a in rt if i == "RUN")
    rt_pkgs = set(apt_packages(rt_runs))
    check(bool(rt_pkgs), f"Dockerfile: runtime apt-get install line: {' '.join(sorted(rt_pkgs))}")
    dev = sorted(p for p in rt_pkgs if p.endswith("-dev") or p.startswith("swift") or p in ("gcc", "clang", "build-essential"))
    check(not dev, f"Dockerfile: the runtime stage installs no build packages ({dev})")
    check("--no-install-recommends" in rt_runs and "rm -rf /var/lib/apt/lists" in rt_runs,
          "Dockerfile: runtime apt-get uses --no-install-recommends and cleans its lists")
    build_names = {build["name"], "0"} - {None}
    copies = [a for i, a in rt if i == "COPY"]
    from_build = [c for c in copies if any(f"--from={n}" in c for n in build_names)]
    check(any("producer" in c for c in from_build) and any("listener" in c for c in from_build),
          "Dockerfile: the runtime stage copies both binaries from the build stage (one image)")
    swift_copy = any("lib/swift/linux" in c for c in from_build)
    check(swift_copy or static, "Dockerfile: Swift runtime libraries copied from the build stage (lib/swift/linux) or a static stdlib")
    users = [a.strip() for i, a in rt if i == "USER"]
    check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile: runs as a non-root user ({users[-1] if users else 'none'})")
    hcs = [a for i, a in rt if i == "HEALTHCHECK"]
    check(bool(hcs) and "/health" in hcs[-1] and "HTTP_PORT" in hcs[-1] and "PORT" in hcs[-1].replace("HTTP_PORT", ""),
          "Dockerfile: HEALTHCHECK GETs /health on HTTP_PORT (producer) or PORT (listener)")
    check("curl" in rt_pkgs or not any("curl" in h for h in hcs), "Dockerfile: curl (the healthcheck's client) is installed")
    check(any(i in ("CMD", "ENTRYPOINT") for i, _ in rt), "Dockerfile: has a CMD or ENTRYPOINT")

    # Libraries: ldd of the binaries vs the runtime packages.
    closure = depends_closure(rt_pkgs)
    for program in ("producer", "listener"):
        binary = os.path.join(bindir, program)
        if not check(os.access(binary, os.X_OK), f"Dockerfile: {binary} is built (for ldd)"):
            continue
        libs = ldd(binary)
        if not check(bool(libs), f"Dockerfile: ldd {program} lists its libraries"):
            continue
        direct = set(needed(binary))
        swift_libs = [p for p in libs.values() if is_swift_lib(p)]
        if swift_libs and static:
            fail(f"Dockerfile: static stdlib, yet the local {program} links the Swift runtime dynamically")
        for lib in swift_libs:
            direct |= set(needed(lib))  # copied, not apt-installed: their own deps must be explicit
        problems = []
        mapped = []
        for soname, lpath in sorted(libs.items()):
            if is_swift_lib(lpath) or soname.startswith("linux-vdso"):
                continue
            pkg = dpkg_package(lpath)
            if pkg is None:
                problems.append(f"{soname} ({lpath}) belongs to no Debian package")
                continue
            if pkg == "libc6":
                continue
            mapped.append(f"{soname}->{pkg}")
            if soname in direct:
                if pkg not in rt_pkgs:
                    problems.append(f"{soname} is needed directly and comes from {pkg}, which the runtime stage does not install")
            elif pkg not in closure:
                problems.append(f"{soname} (loaded indirectly) comes from {pkg}, which no runtime package depends on")
        check(not problems, f"Dockerfile: runtime packages cover ldd {program}: " + ("; ".join(problems) if problems else ", ".join(mapped)))


def dockerignore_check():
    path = os.path.join(ROOT, ".dockerignore")
    if not check(os.path.exists(path), ".dockerignore: exists"):
        return
    patterns = []
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)

    def ignored(name):
        result = False
        for p in patterns:
            negate = p.startswith("!")
            p = p.lstrip("!").strip("/")
            if p.startswith("**/"):
                p2 = p[3:]
                hit = fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p2)
            else:
                hit = fnmatch.fnmatchcase(name, p) or name.startswith(p + "/")
            if hit:
                result = not negate
        return result

    for name in (".build", ".build-docker", ".build-bench-rel", ".build/debug/producer"):
        check(ignored(name), f".dockerignore: keeps {name} out")
    for name in ("Package.swift", "Sources", "Sources/Producer/main.swift", "Tests", "Tests/TestSupport/TestServers.swift", "Benchmarks"):
        check(not ignored(name), f".dockerignore: keeps {name} in (Package.swift needs it)")


def main():
    argv = sys.argv[1:]
    bindir = None
    as_json = False
    env = {}
    while argv:
        a = argv.pop(0)
        if a == "--bin":
            bindir = argv.pop(0)
        elif a == "--json":
            as_json = True
        elif a == "--env":
            k, _, v = argv.pop(0).partition("=")
            env[k] = v
        elif a == "--root":
            global ROOT
            ROOT = os.path.abspath(argv.pop(0))
        else:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    if bindir is None:
        for candidate in (".build/release", ".build/debug"):
            if os.access(os.path.join(ROOT, candidate, "listener"), os.X_OK):
                bindir = os.path.join(ROOT, candidate)
                break
        else:
            bindir = os.path.join(ROOT, ".build/release")

    services = {}
    cluster = {}
    compose_path = os.path.join(ROOT, "docker-compose.yml")
    if check(os.path.exists(compose_path), "compose: docker-compose.yml exists"):
        try:
            raw = yaml.safe_load(open(compose_path))
        except yaml.YAMLError as e:
            fail(f"compose: not valid YAML: {e}")
            raw = None
        if raw is not None:
            schema_check(raw)
            doc = interpolate_tree(raw, env, "compose")
            if isinstance(doc, dict) and isinstance(doc.get("services"), dict):
                services = semantic_check(doc["services"], bindir)
                monitoring_check(doc["services"], services)
            # compose.redis-cluster.yml, merged onto the base file as Compose merges them.
            cluster_path = os.path.join(ROOT, CLUSTER_OVERRIDE)
            if check(os.path.exists(cluster_path), f"cluster: {CLUSTER_OVERRIDE} exists"):
                try:
                    override = yaml.safe_load(open(cluster_path))
                except yaml.YAMLError as e:
                    fail(f"cluster: not valid YAML: {e}")
                    override = None
                if check(isinstance(override, dict) and isinstance(override.get("services"), dict)
                         and isinstance(raw, dict) and isinstance(raw.get("services"), dict),
                         f"cluster: {CLUSTER_OVERRIDE} and the base file have services to merge"):
                    merged = merge_compose(raw, override)
                    schema_check(merged, "cluster")
                    doc = interpolate_tree(merged, env, "cluster")
                    cluster = semantic_check(doc["services"], bindir, "cluster")
                    cluster_check(merged["services"], doc["services"])
    dockerfile_check(bindir)
    dockerignore_check()

    if as_json:
        print(json.dumps({"failures": failures, "passed": passed, "services": services, "cluster": cluster, "bin": bindir}, indent=1))
        return
    for line in passed:
        print("ok    " + line)
    for line in failures:
        print("FAIL  " + line)
    print(f"check-containers: {len(passed)} ok, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
