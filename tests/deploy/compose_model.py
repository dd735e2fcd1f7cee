"""A small model of docker compose: load, interpolate, merge, and ask who
resolves a name. Enough of the Compose specification to check a compose
override against Dify's docker-compose.yaml without a Docker engine.

Merge rules (https://docs.docker.com/reference/compose-file/merge/, and the
reference implementation, compose-go's loader and override packages):

- per file: interpolate ${VAR...} from the project environment, then apply
  the `!reset` / `!override` tags (the tagged paths are deleted from what the
  earlier files built), then merge:
- mappings merge key by key, the later file wins on scalars;
- sequences are appended;
- command, entrypoint and healthcheck.test are replaced;
- services.*.networks and services.*.depends_on merge as mappings (the list
  form is converted first: depends_on entries become
  {condition: service_started, required: true});
- services.*.environment, env_file, labels... are appended as sequences
  (environment: the later KEY=value wins);
- volumes are unique by target, ports by their text.

Name resolution follows Docker's embedded DNS: a container resolves a name
on every network it is attached to; on a network, a service answers to its
service name and to the aliases it declares there. A service without
`networks` is on `default`.
"""

import re

import yaml

RESET, OVERRIDE = "!reset", "!override"


class _Tagged:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class _Loader(yaml.SafeLoader):
    pass


def _tagged(tag):
    def construct(loader, node):
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
            if tag == RESET:
                value = None
        return _Tagged(tag, value)
    return construct


_Loader.add_constructor(RESET, _tagged(RESET))
_Loader.add_constructor(OVERRIDE, _tagged(OVERRIDE))


def load(text):
    """Parse one compose file: (tree, [(tag, path), ...])."""
    tree = yaml.load(text, Loader=_Loader)
    tags = []

    def walk(node, path):
        if isinstance(node, _Tagged):
            tags.append((node.tag, path))
            return walk(node.value, path) if node.tag == OVERRIDE else None
        if isinstance(node, dict):
            return {k: walk(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + (i,)) for i, v in enumerate(node)]
        return node

    return walk(tree, ()), tags


# ---------------------------------------------------------------- interpolation

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate_str(s, env):
    """${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+a}, ${VAR+a},
    $VAR and $$, with nested expansions in the default."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if s.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if s.startswith("${", i):
            value, i = _expand_braced(s, i + 2, env)
            out.append(value)
            continue
        m = _NAME.match(s, i + 1)
        if m:
            out.append(env.get(m.group(0), ""))
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _expand_braced(s, i, env):
    m = _NAME.match(s, i)
    if not m:
        raise ValueError(f"bad substitution in {s!r}")
    name, i = m.group(0), m.end()
    if s[i] == "}":
        return env.get(name, ""), i + 1
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if s.startswith(op, i):
            break
    else:
        raise ValueError(f"bad substitution in {s!r}")
    i += len(op)
    # the word runs to the matching brace; nested ${...} are expanded
    depth, j = 1, i
    while j < len(s):
        if s.startswith("${", j):
            depth += 1
            j += 2
            continue
        if s[j] == "}":
            depth -= 1
            if depth == 0:
                break
        j += 1
    word = interpolate_str(s[i:j], env)
    value = env.get(name)
    empty = value is None or (value == "" and op.startswith(":"))
    if op in (":-", "-"):
        return (word if empty else value), j + 1
    if op in (":+", "+"):
        return ("" if empty else word), j + 1
    if empty:
        raise ValueError(f"required variable {name}: {word}")
    return value, j + 1


def interpolate(node, env):
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return interpolate_str(node, env)
    return node


def parse_dotenv(text, env=None):
    """KEY=VALUE lines as compose reads .env files: comments, `export`,
    quotes; unquoted and double-quoted values are interpolated with what
    came before."""
    result = dict(env or {})
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if value[:1] == "'" and value.endswith("'") and len(value) > 1:
            value = value[1:-1]
        else:
            if value[:1] == '"' and value.endswith('"') and len(value) > 1:
                value = value[1:-1]
            else:
                value = re.sub(r"\s+#.*$", "", value)
            value = interpolate_str(value, result)
        result[key] = value
        out[key] = value
    return out


# ---------------------------------------------------------------- canonical form

def _env_to_dict(value):
    if isinstance(value, dict):
        return {k: ("" if v is None else str(v)) for k, v in value.items()}
    out = {}
    for item in value or []:
        k, sep, v = str(item).partition("=")
        out[k] = v if sep else None
    return out


def _canonical_service(svc):
    svc = dict(svc)
    nets = svc.get("networks")
    if isinstance(nets, list):
        nets = {n: None for n in nets}
    if isinstance(nets, dict):
        svc["networks"] = {n: (cfg or {}) for n, cfg in nets.items()}
    dep = svc.get("depends_on")
    if isinstance(dep, list):
        svc["depends_on"] = {d: {"condition": "service_started", "required": True} for d in dep}
    ef = svc.get("env_file")
    if isinstance(ef, str):
        ef = [ef]
    if isinstance(ef, list):
        svc["env_file"] = [{"path": e, "required": True} if isinstance(e, str)
                           else {"path": e["path"], "required": e.get("required", True)}
                           for e in ef]
    if "environment" in svc:
        svc["environment"] = _env_to_dict(svc["environment"])
    if isinstance(svc.get("volumes"), list):
        seen = {}
        for v in svc["volumes"]:
            target = v.get("target") if isinstance(v, dict) else str(v).split(":")[1]
            seen[target] = v
        svc["volumes"] = list(seen.values())
    if isinstance(svc.get("ports"), list):
        svc["ports"] = list(dict.fromkeys(str(p) for p in svc["ports"]))
    return svc


def canonical(tree):
    tree = dict(tree)
    tree["services"] = {n: _canonical_service(s or {})
                        for n, s in (tree.get("services") or {}).items()}
    return tree


# ---------------------------------------------------------------- merge

_REPLACED = {"command", "entrypoint"}
_AS_MAPPING = {"networks", "depends_on"}
_AS_SEQUENCE = {"env_file", "environment", "labels", "annotations", "dns", "dns_opt",
                "dns_search", "sysctls", "tmpfs", "label_file"}


def _as_sequence(value):
    if isinstance(value, dict):
        return [k if v is None else f"{k}={v}" for k, v in sorted(value.items())]
    if isinstance(value, str):
        return [value]
    return list(value or [])


def _merge(base, over, path):
    if over is None:
        return base
    if len(path) == 3 and path[0] == "services":
        key = path[2]
        if key in _REPLACED:
            return over
        if key in _AS_MAPPING:
            b = _canonical_service({key: base})[key]
            o = _canonical_service({key: over})[key]
            return _merge_mappings(dict(b), o, path)
        if key in _AS_SEQUENCE:
            return _as_sequence(base) + _as_sequence(over)
    if len(path) == 4 and path[0] == "services" and path[2:] == ("healthcheck", "test"):
        return over
    if isinstance(base, dict):
        if not isinstance(over, dict):
            raise ValueError(f"cannot override {'.'.join(map(str, path))}")
        return _merge_mappings(dict(base), over, path)
    if isinstance(base, list):
        if not isinstance(over, list):
            raise ValueError(f"cannot override {'.'.join(map(str, path))}")
        return base + over
    return over


def _merge_mappings(base, over, path):
    for k, v in over.items():
        base[k] = _merge(base[k], v, path + (k,)) if k in base else v
    return base


def _delete(tree, path):
    node = tree
    for k in path[:-1]:
        if not isinstance(node, dict) or k not in node:
            return
        node = node[k]
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _keeps_null(path):
    """`networks: {foo:}` and `volumes: {foo:}` declare with defaults."""
    return (len(path) == 2 and path[0] in ("networks", "volumes")) or \
        (len(path) == 4 and path[0] == "services" and path[2] == "networks")


def _omit_none(node, path=()):
    if isinstance(node, dict):
        return {k: _omit_none(v, path + (k,)) for k, v in node.items()
                if v is not None or _keeps_null(path + (k,))}
    if isinstance(node, list):
        return [_omit_none(v, path + (i,)) for i, v in enumerate(node)]
    return node


def merge_files(texts, env):
    """Load, interpolate and merge compose files in order, as
    `docker compose -f a -f b config` would; returns the canonical model."""
    import copy
    model = None
    for text in texts:
        tree, tags = load(text)
        tree = interpolate(tree, env)
        if model is None:
            model = canonical(_omit_none(tree))
            continue
        model = copy.deepcopy(model)
        for _tag, path in tags:
            _delete(model, path)
        model = _merge_mappings(model, tree, ())
        model = canonical(_omit_none(model))
    return model


# ---------------------------------------------------------------- questions

def active(model, profiles):
    """Services that `docker compose up` starts with these profiles."""
    return {n: s for n, s in model["services"].items()
            if not s.get("profiles") or set(s["profiles"]) & set(profiles)}


def networks_of(svc):
    nets = svc.get("networks")
    if nets is None:
        return {"default": None}
    return nets


def names_on(name, svc, net):
    cfg = networks_of(svc).get(net) or {}
    return {name, *(cfg.get("aliases") or [])}


def resolve(model, client, host, profiles):
    """The services whose address `host` may resolve to, seen from `client`."""
    services = active(model, profiles)
    mine = networks_of(services[client])
    found = set()
    for name, svc in services.items():
        for net in networks_of(svc):
            if net in mine and host in names_on(name, svc, net):
                found.add(name)
    return found


def share_network(model, a, b):
    return set(networks_of(model["services"][a])) & set(networks_of(model["services"][b]))


def env_file_paths(svc):
    return [e["path"] for e in svc.get("env_file") or []]


def effective_env(svc, files):
    """What the container's environment holds for each variable: env_file
    entries in order (later files win), then `environment` (wins over all).
    `files` maps a path to the text of that file; missing optional files are
    skipped."""
    env = {}
    for e in svc.get("env_file") or []:
        text = files.get(e["path"])
        if text is None:
            if e["required"]:
                raise FileNotFoundError(e["path"])
            continue
        env.update(parse_dotenv(text))
    env.update({k: v for k, v in (svc.get("environment") or {}).items() if v is not None})
    return env
