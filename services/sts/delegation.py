"""Delegation (RFC 8693 sections 4.1 and 4.4): the ``act`` and ``may_act`` claims.

- The issued token's ``act`` names the authenticated actor; when the
  subject token is one the mesh issued, its own ``act`` chain is nested
  inside, so the chain lists every earlier actor, newest outermost. A
  foreign subject token's ``act`` is not carried: its members are another
  issuer's names, which this mesh cannot vouch for.
- The chain is at most :data:`MAX_ACTOR_DEPTH` deep; the policy can set a
  lower limit with ``context.actor_depth``.
- A subject token's ``may_act`` restricts who may act for it. Its ``sub`` is
  compared exactly, never normalised: a ``spiffe://`` value is compared with
  the actor's mesh identity (its mapped SPIFFE ID); any other value is an
  issuer's local name, and matches only when ``may_act`` also names that
  issuer in ``iss`` and the actor token carries the same ``iss`` and
  ``sub``. A ``may_act`` that is not an object with a string ``sub`` lets
  nobody act.
- A token the mesh issued is exchanged again only with an actor token:
  passing it on is delegation, never impersonation. The actor token itself
  must be a foreign one (see :mod:`services.sts.subject`).
"""

from __future__ import annotations

from typing import Any

from services.sts.subject import MAX_ACTOR_DEPTH, Principal
from wif.errors import InvalidGrant, InvalidRequest

__all__ = ["MAX_ACTOR_DEPTH", "actor_chain", "actor_claim", "check_delegation"]


def actor_claim(actor: Principal | None, subject: Principal) -> dict[str, Any] | None:
    """The ``act`` claim of the token to issue, or None without any actor."""
    earlier = subject.claims.get("act") if subject.mesh_issued else None
    if not isinstance(earlier, dict):
        earlier = None
    if actor is None:
        return earlier
    claim: dict[str, Any] = {"sub": actor.subject}
    if earlier is not None:
        claim["act"] = earlier
    return claim


def actor_chain(act: dict[str, Any] | None) -> list[str]:
    """The subjects of an ``act`` claim, newest actor first."""
    chain: list[str] = []
    while isinstance(act, dict) and isinstance(act.get("sub"), str):
        chain.append(act["sub"])
        act = act.get("act")
    return chain


def _may_act_matches(may_act: Any, actor: Principal) -> bool:
    if not isinstance(may_act, dict) or not isinstance(may_act.get("sub"), str):
        return False
    wanted: str = may_act["sub"]
    if wanted.startswith("spiffe://"):
        return wanted == actor.subject
    issuer = may_act.get("iss")
    return bool(
        isinstance(issuer, str)
        and issuer == actor.claims.get("iss")
        and wanted == actor.claims.get("sub")
    )


def check_delegation(subject: Principal, actor: Principal | None) -> list[str]:
    """Checks the module's rules; returns the issued token's actor chain.

    Raises:
        InvalidRequest: ACTOR_REQUIRED for a mesh token without an actor.
        InvalidGrant: ACTOR_NOT_ALLOWED when ``may_act`` does not name the
            actor, ACTOR_CHAIN_TOO_DEEP past the hard limit.
    """
    if subject.mesh_issued and actor is None:
        raise InvalidRequest(
            "a token of this mesh is exchanged again only with an actor token",
            reason="ACTOR_REQUIRED",
        )
    may_act = subject.claims.get("may_act")
    if (
        actor is not None
        and "may_act" in subject.claims
        and not _may_act_matches(may_act, actor)
    ):
        raise InvalidGrant(
            "the subject token's may_act does not name the actor",
            reason="ACTOR_NOT_ALLOWED",
        )
    chain = actor_chain(actor_claim(actor, subject))
    if len(chain) > MAX_ACTOR_DEPTH:
        raise InvalidGrant(
            f"an actor chain is at most {MAX_ACTOR_DEPTH} deep",
            reason="ACTOR_CHAIN_TOO_DEEP",
        )
    return chain
