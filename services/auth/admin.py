"""`python -m services.auth.admin`: what an operator does to accounts — plans (limits), disabling, a look.

    python -m services.auth.admin show ada@example.com
    python -m services.auth.admin set-limits ada@example.com --analyses 1000 --video-seconds 360000 --rate 600
    python -m services.auth.admin set-limits ada@example.com --default-analyses   (back to the default)
    python -m services.auth.admin disable ada@example.com      (keys and sessions stop working within 5 s)

It talks to PostgreSQL (EA_DATABASE_URL) directly: there is deliberately no HTTP route for it.
"""

import argparse
import asyncio
import sys
from typing import Any

from pydantic import BaseModel
from sqlalchemy import update
from sqlmodel import col

from shared.db.account_models import UserAccount
from shared.db.session import create_engine, session_factory

from .repository import find_user_by_email
from .settings import Settings

LIMIT_FIELDS = {
    "analyses": "monthly_analyses",
    "video_seconds": "monthly_video_seconds",
    "rate": "rate_limit_per_minute",
}


class AccountView(BaseModel):
    id: str
    email: str
    disabled: bool
    monthly_analyses: int | None
    monthly_video_seconds: int | None
    rate_limit_per_minute: int | None


async def _apply(settings: Settings, email: str, values: dict[str, Any]) -> AccountView | None:
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            user = await find_user_by_email(session=session, email=email)
            if user is None:
                return None
            if values:
                await session.exec(update(UserAccount).where(col(UserAccount.id) == user.id).values(**values))
                await session.commit()
                user = await find_user_by_email(session=session, email=email)
                assert user is not None
            return AccountView(
                id=str(user.id),
                email=user.email,
                disabled=user.disabled,
                monthly_analyses=user.monthly_analyses,
                monthly_video_seconds=user.monthly_video_seconds,
                rate_limit_per_minute=user.rate_limit_per_minute,
            )
    finally:
        await engine.dispose()


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.auth.admin", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="print the account and its own limits (null: the default)").add_argument(
        "email"
    )
    limits = commands.add_parser("set-limits", help="give the account its own limits")
    limits.add_argument("email")
    limits.add_argument("--analyses", type=_non_negative, help="analyses per month")
    limits.add_argument("--video-seconds", type=_non_negative, help="seconds of media per month")
    limits.add_argument("--rate", type=_positive, help="requests per minute per key")
    for name in LIMIT_FIELDS:
        flag = name.replace("_", "-")
        limits.add_argument(f"--default-{flag}", action="store_true", help=f"{flag}: back to the default")
    commands.add_parser("disable", help="refuse the account's keys, sessions and logins").add_argument(
        "email"
    )
    commands.add_parser("enable", help="undo disable").add_argument("email")
    return parser.parse_args(argv)


def changes_of(args: argparse.Namespace) -> dict[str, Any]:
    if args.command in ("disable", "enable"):
        return {"disabled": args.command == "disable"}
    if args.command != "set-limits":
        return {}
    values: dict[str, Any] = {}
    for name, column in LIMIT_FIELDS.items():
        if getattr(args, f"default_{name}"):
            values[column] = None
        elif getattr(args, name) is not None:
            values[column] = getattr(args, name)
    return values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    changes = changes_of(args)
    if args.command == "set-limits" and not changes:
        print(
            "nothing to change: give --analyses, --video-seconds, --rate or a --default-… flag",
            file=sys.stderr,
        )
        return 2
    account = asyncio.run(_apply(Settings(), args.email, changes))
    if account is None:
        print(f"no account has the email {args.email!r}", file=sys.stderr)
        return 1
    print(account.model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
