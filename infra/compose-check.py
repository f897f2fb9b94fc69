#!/usr/bin/env python3
# Checks infra/compose.yaml where no Docker engine exists (a stand-in for `docker compose config`, which is better):
#   python3 infra/compose-check.py infra/compose.yaml src/ServiceDefaults/PrefTuneOptions.cs
# Needs PyYAML. Exit 0 and "compose ok: ..." when it finds nothing wrong.
"""A stand-in for `docker compose config` where no Docker exists: parse infra/compose.yaml and check its structure."""
import re, sys, yaml, urllib.parse
path, options_cs = sys.argv[1], sys.argv[2]
text = open(path).read()
doc = yaml.safe_load(text)  # resolves anchors and << merges
problems = []
allowed_top = {"name", "services", "volumes", "networks", "secrets", "configs", "include"}
for k in doc:
    if k not in allowed_top and not k.startswith("x-"): problems.append(f"top-level key {k}")
service_keys = {"image","build","platform","environment","depends_on","restart","command","entrypoint","ports","volumes",
                "healthcheck","hostname","profiles","user","working_dir","env_file","networks","labels","deploy"}
services = doc["services"]
for name, s in services.items():
    for k in s:
        if k not in service_keys: problems.append(f"{name}: unknown key {k}")
    if "image" not in s and "build" not in s: problems.append(f"{name}: neither image nor build")
    for dep, cond in (s.get("depends_on") or {}).items():
        if dep not in services: problems.append(f"{name}: depends on unknown {dep}")
        c = cond.get("condition")
        if c not in ("service_started", "service_healthy", "service_completed_successfully"): problems.append(f"{name}: bad condition {c}")
        if c == "service_healthy" and "healthcheck" not in services[dep]: problems.append(f"{name}: waits for {dep} to be healthy, which has no healthcheck")
    for p in s.get("ports", []):
        host = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(p)).split(":")
        if len(host) != 3 or host[0] != "127.0.0.1": problems.append(f"{name}: port {p} not published on loopback by default")
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if not src.startswith((".", "/")) and src not in (doc.get("volumes") or {}): problems.append(f"{name}: undeclared volume {src}")
    if isinstance(s.get("build"), dict):
        if s["build"].get("dockerfile") != "infra/Dockerfile" or s["build"].get("context") != "..": problems.append(f"{name}: build {s['build']}")
    if s.get("restart") not in (None, "no", "always", "on-failure", "unless-stopped"): problems.append(f"{name}: restart {s.get('restart')}")
for var in re.findall(r"\$\{([^}]*)\}", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))):
    if ":-" not in var: problems.append(f"${{{var}}} has no default")
# interpolate with the defaults, as compose would without a .env
def interpolate(v): return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", v)
env = {k: interpolate(str(v)) for k, v in services["sampler"]["environment"].items()}
props = set(re.findall(r"public\s+\S+\s+(\w+)\s*\{\s*get;", open(options_cs).read()))
for k in env:
    if k.removeprefix("PREFTUNE_").lower() not in {p.lower() for p in props}: problems.append(f"{k} is no PrefTuneOptions property")
broker = urllib.parse.urlparse(env["PREFTUNE_BROKER"])
if (broker.scheme, broker.hostname, broker.port) != ("amqp", "rabbitmq", 5672): problems.append(f"broker {env['PREFTUNE_BROKER']}")
db = dict(kv.split("=", 1) for kv in env["PREFTUNE_DATABASE"].split(";"))
if db.get("Host") != "postgres" or db.get("Username") != services["postgres"]["environment"]["POSTGRES_USER"].split(":-")[-1].rstrip("}"): problems.append(f"database {db}")
for role in ("sampler", "scorer", "learner"):
    if services[role]["command"] != ["serve", role]: problems.append(f"{role}: command {services[role]['command']}")
o = services["orchestrator"]
if "--external-services" not in o["command"] or o["command"][0] != "run": problems.append(f"orchestrator: command {o['command']}")
if o.get("profiles") != ["run"] or o.get("restart") != "no": problems.append("orchestrator: not a one-shot")
print("\n".join(problems) if problems else f"compose ok: {len(services)} services {sorted(services)}; broker {broker.scheme}://{broker.hostname}:{broker.port}; database Host={db['Host']}")
sys.exit(1 if problems else 0)
