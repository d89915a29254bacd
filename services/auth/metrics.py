"""The auth service's Prometheus metrics, in a registry of its own (one per app, so tests can build many)."""

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from .passwords import Passwords


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
        self.hashing_refused = Counter(
            "ea_auth_password_checks_refused",
            "Logins and sign-ups refused with 503 because the password-hashing queue was full",
            registry=registry,
        )
        self.hashes_running = Gauge(
            "ea_auth_password_hashes_running", "argon2 hashes being computed now", registry=registry
        )
        self.hashes_waiting = Gauge(
            "ea_auth_password_hashes_waiting", "Password checks waiting for a hashing slot", registry=registry
        )

    def watch_passwords(self, passwords: "Passwords") -> None:
        self.hashes_running.set_function(lambda: passwords.running)
        self.hashes_waiting.set_function(lambda: passwords.waiting)
