"""Who is asking: OIDC token verification, the JWKS cache, the dev issuer and the workload identity."""
