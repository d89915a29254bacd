from pydantic import Field

from shared.settings import EncoderSettings


class Settings(EncoderSettings):
    service_name: str = "transcriber"
    whisper_model: str = Field(
        default="base", description="'base', 'tiny.en' or a CTranslate2 model directory"
    )
    whisper_cache_dir: str = "var/cache/whisper"
    whisper_beam_size: int = Field(default=1, ge=1)
