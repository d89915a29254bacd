from pydantic import Field, SecretStr

from shared.settings import DEV_API_KEY, ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auth"
    http_port: int = Field(default=8001, ge=1, le=65535)
    api_key: SecretStr = SecretStr(DEV_API_KEY)
    static_owner: str = Field(default="static", description="Owner id the static key stands for")

    def _secrets(self) -> dict[str, str]:
        return {**super()._secrets(), "api_key": self.api_key.get_secret_value()}
