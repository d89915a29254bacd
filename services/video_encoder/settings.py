from shared.settings import EncoderSettings


class Settings(EncoderSettings):
    service_name: str = "video_encoder"
