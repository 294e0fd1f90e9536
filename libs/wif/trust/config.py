"""The whole trust configuration, checked as one, and its etcd layout.

A configuration is turned into one document per key under
:data:`TRUST_PREFIX` and back; :mod:`wif.trust.stored` writes those
documents to etcd as one version and reads the version in force. Both
directions validate everything: a configuration that fails a check is never
written, and a service that reads one keeps its last good configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from wif import spiffe
from wif.errors import ConfigError
from wif.trust.cedar import CompiledPolicies, compile_policies
from wif.trust.fields import Fields
from wif.trust.model import (
    Audience,
    PolicyDocument,
    Pool,
    Provider,
    Workload,
    _check_url,
    parse_audience,
    parse_policy,
    parse_pool,
    parse_provider,
    parse_workload,
)
from wif.trust.source import expand_variables, parse_yaml

#: The etcd prefix under which the trust configuration lives.
TRUST_PREFIX = "/wif/trust/"

_MESH_KEY = TRUST_PREFIX + "mesh"
_KINDS = ("pools", "providers", "audiences", "workloads", "policies", "shadow_policies")

T = TypeVar("T")


class _Source(NamedTuple):
    """One stored document as read: a digest of its bytes, the document
    decoded, and parsed (None for the mesh document, always read again)."""

    digest: bytes
    doc: Any
    parsed: Any


def _digest(data: bytes) -> bytes:
    # Finding two documents with one 128-bit BLAKE2b digest is infeasible,
    # so the digest tells them apart like their bytes, in a fraction of the
    # memory (16 bytes against a few hundred).
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True)
class TrustConfig:
    """A validated trust configuration, indexed for the request path."""

    trust_domain: str
    issuer: str
    pools: Mapping[str, Pool]
    providers: Mapping[str, Provider]
    audiences: Mapping[str, Audience]
    workloads: Mapping[tuple[str, str], Workload]
    policies: Sequence[PolicyDocument]
    compiled: CompiledPolicies
    documents: Mapping[str, Any]
    revision: int = 0
    shadow_policies: Sequence[PolicyDocument] = ()
    shadow: CompiledPolicies | None = None
    _by_issuer: dict[str, Provider] = field(default_factory=dict, repr=False)
    _by_resource: dict[str, Audience] = field(default_factory=dict, repr=False)
    _sources: dict[str, _Source] = field(
        default_factory=dict, repr=False, compare=False
    )

    def provider_for_issuer(self, issuer: str) -> Provider | None:
        """The provider whose issuer is exactly ``issuer``, if any."""
        return self._by_issuer.get(issuer)

    def audience_for_resource(self, resource: str) -> Audience | None:
        """The audience that lists ``resource`` among its resource URIs."""
        return self._by_resource.get(resource)

    def pool_ancestry(self, pool_id: str) -> list[str]:
        """``pool_id`` followed by its ancestors, nearest first."""
        chain = [pool_id]
        while (parent := self.pools[chain[-1]].parent) is not None:
            chain.append(parent)
        return chain


def _unique(items: Iterable[T], key: Callable[[T], Any], what: str) -> dict[Any, T]:
    indexed: dict[Any, T] = {}
    for item in items:
        k = key(item)
        if k in indexed:
            raise ConfigError(f"{what}: {k!r} is defined twice")
        indexed[k] = item
    return indexed


def _check_tree(nodes: Mapping[str, Any], what: str) -> None:
    for node_id, node in nodes.items():
        seen = {node_id}
        parent = node.parent
        while parent is not None:
            if parent not in nodes:
                raise ConfigError(f"{what}.{node_id}: parent {parent!r} is not defined")
            if parent in seen:
                raise ConfigError(f"{what}.{node_id}: parents form a cycle")
            seen.add(parent)
            parent = nodes[parent].parent


def _check_references(
    pools: Mapping[str, Pool],
    providers: Mapping[str, Provider],
    workloads: Iterable[Workload],
) -> None:
    for provider in providers.values():
        if provider.pool not in pools:
            raise ConfigError(
                f"providers.{provider.id}: pool {provider.pool!r} unknown"
            )
    for workload in workloads:
        if workload.pool not in pools:
            raise ConfigError(
                f"workloads.{workload.path}: pool {workload.pool!r} unknown"
            )
        if not spiffe.is_workload_path(workload.path):
            raise ConfigError(f"workloads.{workload.path}: not a valid SPIFFE ID path")


def _read_mesh(doc: Any) -> tuple[str, str]:
    fields = Fields(doc, "mesh")
    trust_domain = fields.string("trust_domain")
    if not spiffe.is_trust_domain(trust_domain):
        raise ConfigError("mesh.trust_domain: not a valid SPIFFE trust domain")
    issuer = fields.string("issuer")
    _check_url(issuer, "mesh.issuer", allow_http_loopback=True)
    fields.done()
    return trust_domain, issuer.rstrip("/")


def _documents(raw: Mapping[str, Any], kind: str) -> list[Any]:
    docs = raw.get(kind) or []
    if not isinstance(docs, list):
        raise ConfigError(f"{kind}: must be a list")
    return docs


def build_config(raw: Mapping[str, Any], revision: int = 0) -> TrustConfig:
    """Validates a whole configuration document and indexes it.

    Raises ``ConfigError`` naming the first field that fails a check.
    """
    return _build(raw, revision, {})


def _build(
    raw: Mapping[str, Any],
    revision: int,
    known: Mapping[str, Sequence[Any | None]],
) -> TrustConfig:
    """:func:`build_config`, taking a document's parsed form from ``known``
    (by kind, at the document's position) where it is not None."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the configuration must be a mapping")
    unknown = sorted(set(raw) - {"mesh", *_KINDS})
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r}")
    trust_domain, issuer = _read_mesh(raw.get("mesh"))

    def parsed(kind: str, parse: Callable[[Any, str], T]) -> list[T]:
        given = known.get(kind, ())
        result: list[T] = []
        for i, doc in enumerate(_documents(raw, kind)):
            reused = given[i] if i < len(given) else None
            result.append(parse(doc, f"{kind}[{i}]") if reused is None else reused)
        return result

    pools = _unique(parsed("pools", parse_pool), lambda p: p.id, "pools")
    providers = _unique(
        parsed("providers", parse_provider), lambda p: p.id, "providers"
    )
    audiences = _unique(
        parsed("audiences", parse_audience), lambda a: a.id, "audiences"
    )
    workloads = _unique(
        parsed("workloads", parse_workload), lambda w: (w.pool, w.path), "workloads"
    )
    policies = parsed("policies", parse_policy)
    _unique(policies, lambda p: p.id, "policies")
    shadow_policies = parsed("shadow_policies", parse_policy)
    _unique(shadow_policies, lambda p: p.id, "shadow_policies")

    _check_tree(pools, "pools")
    _check_tree(audiences, "audiences")
    _check_references(pools, providers, workloads.values())

    by_issuer = _unique(providers.values(), lambda p: p.issuer, "providers issuer")
    resources = [(r, a) for a in audiences.values() for r in a.resources]
    by_resource = dict(
        _unique(resources, lambda pair: pair[0], "audiences resource").values()
    )

    return TrustConfig(
        trust_domain=trust_domain,
        issuer=issuer,
        pools=pools,
        providers=providers,
        audiences=audiences,
        workloads=workloads,
        policies=policies,
        compiled=compile_policies(policies),
        documents=raw,
        revision=revision,
        shadow_policies=shadow_policies,
        shadow=(
            compile_policies(shadow_policies, "shadow_policies")
            if shadow_policies
            else None
        ),
        _by_issuer=by_issuer,
        _by_resource=by_resource,
    )


def load_file(path: Path, environ: Mapping[str, str] | None = None) -> TrustConfig:
    """Reads, expands and validates a YAML trust configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raw = parse_yaml(text, str(path))
    return build_config(
        expand_variables(raw, os.environ if environ is None else environ)
    )


def _key_of(kind: str, doc: Mapping[str, Any]) -> str:
    name = f"{doc['pool']}/{doc['path']}" if kind == "workloads" else doc["id"]
    return f"{TRUST_PREFIX}{kind}/{name}"


def to_etcd_items(config: TrustConfig) -> dict[str, bytes]:
    """The key-value documents of ``config``, named under TRUST_PREFIX."""
    raw = config.documents
    items = {_MESH_KEY: json.dumps(raw["mesh"], sort_keys=True).encode()}
    for kind in _KINDS:
        for doc in _documents(raw, kind):
            items[_key_of(kind, doc)] = json.dumps(doc, sort_keys=True).encode()
    return items


def _decode(key: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{key}: not valid JSON") from exc


def _parsed_in_order(config: TrustConfig, kind: str) -> list[Any]:
    """The parsed documents of ``kind``, in the order they were given."""
    sections: dict[str, Iterable[Any]] = {
        "pools": config.pools.values(),
        "providers": config.providers.values(),
        "audiences": config.audiences.values(),
        "workloads": config.workloads.values(),
        "policies": config.policies,
        "shadow_policies": config.shadow_policies,
    }
    return list(sections[kind])


def from_etcd_items(
    items: Mapping[str, bytes], revision: int, previous: TrustConfig | None = None
) -> TrustConfig:
    """Rebuilds and revalidates a configuration from its etcd documents.

    ``previous``, the configuration these items replace, saves work: a
    document whose bytes it also held (told by a 128-bit BLAKE2b digest) is
    neither decoded nor parsed again (parsing a document depends on nothing
    else), while every check across documents runs again, so the result is
    the same as without it. Raises ``ConfigError`` as :func:`build_config`.
    """
    known = previous._sources if previous is not None else {}
    raw: dict[str, Any] = {kind: [] for kind in _KINDS}
    keys: dict[str, list[str]] = {kind: [] for kind in _KINDS}
    parsed: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
    unchanged: dict[str, _Source] = {}
    digests: dict[str, bytes] = {}
    for key in sorted(items):
        digest = digests[key] = _digest(items[key])
        source = known.get(key)
        if source is not None and source.digest == digest:
            unchanged[key] = source
            doc, model = source.doc, source.parsed
        else:
            doc, model = _decode(key, items[key]), None
        if key == _MESH_KEY:
            raw["mesh"] = doc
            continue
        kind = key[len(TRUST_PREFIX) :].split("/", 1)[0]
        if kind not in keys:
            raise ConfigError(f"{key}: unknown kind of document")
        raw[kind].append(doc)
        parsed[kind].append(model)
        keys[kind].append(key)
    if "mesh" not in raw:
        raise ConfigError("no trust configuration has been applied")

    config = _build(raw, revision, parsed)
    # Each source is made once: replacing many objects by as many new ones
    # leaves the collector's youngest generation long without collecting it.
    sources = {_MESH_KEY: _Source(digests[_MESH_KEY], raw["mesh"], None)}
    for kind in _KINDS:
        models = _parsed_in_order(config, kind)
        for key, doc, model in zip(keys[kind], raw[kind], models, strict=True):
            source = unchanged.get(key)
            if source is None or source.parsed is not model:
                source = _Source(digests[key], doc, model)
            sources[key] = source
    return dataclasses.replace(config, _sources=sources)


def gradual_release(config: TrustConfig) -> Callable[[], None]:
    """A function that frees the documents ``config`` was read from, one at
    a time; it holds them until then.

    Freeing a configuration of a hundred thousand documents at once holds
    the interpreter lock for about a quarter of a second, wherever its last
    reference goes. While the function is held, letting go of ``config``
    frees only its indexes, quickly; calling it afterwards in a worker
    thread frees the documents with the event loop running in between.
    Nothing but :func:`from_etcd_items` reads what it empties, so calling
    it while ``config`` is still in use elsewhere is safe, merely slower to
    free.
    """
    sources = config._sources

    def release() -> None:
        while sources:
            sources.popitem()

    return release
