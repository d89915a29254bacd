"""What a user signs up and signs in with. Apart from `accounts` because an RFC-correct address check needs
`email-validator` (`pydantic[email]`, the contract's `email` extra), which only the servers install."""

from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(examples=["ada@example.com"])
    password: SecretStr = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
