"""The opt-in SPIFFE profile of grants (``GATE_SPIFFE_TRUST_DOMAIN``): grants as JWT-SVIDs.

With a trust domain configured, a grant's ``sub`` is a SPIFFE ID naming the workload it was issued
to: ``spiffe://<trust domain>/repo/<repository id>/run/<run id>/attempt/<attempt>/action/<action>``
(GitHub's numeric ids, never names, as everywhere in the gate; the action is the step's ask). The
grant is otherwise unchanged, and it already is what the JWT-SVID specification asks of a token:
JWS compact serialization, a header of ``alg`` (ES256), ``kid`` and ``typ: JWT`` only, an ``aud``
(one audience) and an ``exp``.

The gate serves its trust domain's SPIFFE bundle (SPIFFE Trust Domain and Bundle, section 4) at
``/.well-known/spiffe-bundle.json``: the grant keys of ``/.well-known/jwks.json`` with ``use:
"jwt-svid"`` (JWT-SVID section 6.1), a ``spiffe_sequence`` that grows whenever the set of keys
changes, and a ``spiffe_refresh_hint``. Attestation keys are not in it: they sign no SVID.
SPIRE federation (the https_web profile), Envoy's JWT filter or Vault's JWT auth can then verify
grants without asking the gate.
"""

from __future__ import annotations

import re
from typing import Any

from app.credentials.keys import SigningKeys

# SPIFFE-ID section 2.1: lowercase letters, digits, dots, dashes and underscores; at most 255 bytes.
TRUST_DOMAIN = r"^[a-z0-9._-]{1,255}$"
# How often a consumer should fetch the bundle again (seconds): grant keys rotate rarely, but a
# removed key should stop verifying soon.
REFRESH_HINT = 300
BUNDLE_PATH = "/.well-known/spiffe-bundle.json"

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def spiffe_id(trust_domain: str, *, repository_id: int, run_id: int, run_attempt: int, action: str) -> str:
    """The SPIFFE ID of a grant's workload. Raises ValueError for an ID the specification forbids."""
    segments = ["repo", str(repository_id), "run", str(run_id), "attempt", str(run_attempt), "action", action]
    if not re.fullmatch(TRUST_DOMAIN, trust_domain) or not all(
        _SEGMENT.fullmatch(s) and s not in {".", ".."} for s in segments
    ):
        raise ValueError(f"not a valid SPIFFE ID in {trust_domain!r}: {segments!r}")
    value = f"spiffe://{trust_domain}/" + "/".join(segments)
    if len(value) > 2048:  # SPIFFE-ID section 2.3
        raise ValueError("a SPIFFE ID is at most 2048 bytes")
    return value


def bundle(keys: SigningKeys) -> dict[str, Any]:
    """The trust domain's SPIFFE bundle: the published grant keys as JWT-SVID authorities."""
    entries = keys.jwks(use="jwt-svid", alg=False)["keys"]  # the bundle spec defines no "alg" member
    return {"spiffe_sequence": keys.changed_at(), "spiffe_refresh_hint": REFRESH_HINT, "keys": entries}
