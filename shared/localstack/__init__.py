"""The local stack: a Kafka-protocol broker (Tansu), an S3 server (rclone), PostgreSQL and the services,
started as processes on one machine, for `make up`/`make down` and for the tests' fixtures.

`python -m shared.localstack up|down|status|env` drives it from a shell.
"""

from shared.localstack.accounts import SignedUp, sign_up
from shared.localstack.config import PostgresMode, ServiceName, ServiceSpec, StackConfig
from shared.localstack.stack import LocalStack, StackAlreadyRunningError, StackStartError, stop_recorded
from shared.localstack.state import StackState

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
