"""The auth service's Prometheus metrics, in a registry of its own (one per app, so tests can build many)."""

from prometheus_client import CollectorRegistry, Counter


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.registrations = Counter(
            "ea_auth_registrations",
            "Account registrations, by outcome (created, email_taken)",
            ["outcome"],
            registry=registry,
        )
        self.logins = Counter(
            "ea_auth_logins",
            "Logins, by outcome (ok, invalid_credentials, account_disabled)",
            ["outcome"],
            registry=registry,
        )
        self.introspections = Counter(
            "ea_auth_introspections",
            "Credentials checked, by the kind they look like (api_key, session) and whether they were active",
            ["kind", "active"],
            registry=registry,
        )
