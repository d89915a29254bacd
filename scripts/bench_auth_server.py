"""The gateway under test for scripts/bench_auth.py: one uvicorn worker, with or without the auth check.

    python scripts/bench_auth_server.py --port 8123 --auth [--cache-ttl 0]
    python scripts/bench_auth_server.py --port 8124 --no-auth --user-id UUID

It builds the real app (`services.gateway.main.create_app`) from the EA_* variables the benchmark passes.
`--no-auth` replaces `get_principal` with a fixed principal owned by `--user-id`, so the same routes, database
reads and serialisation run without the credential check (no introspection, no cache, no rate limit).
Migrations are the benchmark's job, not this runner's.
"""

import argparse
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvicorn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emotion_contract.accounts import CredentialKind, Limits  # noqa: E402
from services.gateway.api.deps import get_principal  # noqa: E402
from services.gateway.credentials import Principal  # noqa: E402
from services.gateway.main import create_app  # noqa: E402
from services.gateway.settings import Settings  # noqa: E402

UNLIMITED = Limits(monthly_analyses=10**9, monthly_video_seconds=10**12, rate_limit_per_minute=10**9)


def fixed_principal(user_id: uuid.UUID) -> Callable[[], Awaitable[Principal]]:
    principal = Principal(
        user_id=user_id, kind=CredentialKind.API_KEY, credential_id=uuid.uuid4(), limits=UNLIMITED
    )

    # async: FastAPI runs a plain `def` dependency in its thread pool, which would tax the baseline.
    async def override() -> Principal:
        return principal

    return override


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--auth", dest="auth", action="store_true", help="the real credential check")
    mode.add_argument("--no-auth", dest="auth", action="store_false", help="a fixed principal instead")
    parser.add_argument("--user-id", type=uuid.UUID, help="owner of the fixed principal (--no-auth)")
    parser.add_argument("--cache-ttl", type=float, default=None, help="auth_cache_ttl_s (default: settings)")
    args = parser.parse_args()
    if not args.auth and args.user_id is None:
        parser.error("--no-auth needs --user-id")

    # The rest comes from the EA_* environment, as for `python -m services.gateway`.
    settings = (
        Settings(http_port=args.port)
        if args.cache_ttl is None
        else Settings(http_port=args.port, auth_cache_ttl_s=args.cache_ttl)
    )
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(settings)
    if not args.auth:
        app.dependency_overrides[get_principal] = fixed_principal(args.user_id)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")


if __name__ == "__main__":
    main()
