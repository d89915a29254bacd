"""The local stack: a Kafka-protocol broker (Tansu), an S3 server (rclone), PostgreSQL and the services,
started as processes on one machine, for `make up`/`make down` and for the tests' fixtures.

`python -m devstack up|down|status|env` drives it from a shell.
"""

from devstack.accounts import SignedUp, sign_up
from devstack.config import PostgresMode, ServiceName, ServiceSpec, StackConfig
from devstack.stack import LocalStack, StackAlreadyRunningError, StackStartError, stop_recorded
from devstack.state import StackState

__all__ = [
    "LocalStack",
    "PostgresMode",
    "ServiceName",
    "ServiceSpec",
    "SignedUp",
    "StackAlreadyRunningError",
    "StackConfig",
    "StackStartError",
    "StackState",
    "sign_up",
    "stop_recorded",
]
