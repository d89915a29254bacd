from shared.settings import DatabaseSettings, ModelSettings, PipelineSettings


class Settings(PipelineSettings, DatabaseSettings, ModelSettings):
    service_name: str = "fusion"
