from pydantic import Field

from shared.settings import EncoderSettings


class Settings(EncoderSettings):
    service_name: str = "audio_encoder"
    states_cache_mb: int = Field(
        default=0,
        ge=0,
        description="Memory for voice states computed ahead of their transcripts (~100 KB per second of "
        "audio, so 256 MB holds about 40 minutes); 0 computes them only once the transcript is in. Only "
        "where the transcriber's Whisper is not the voice's: otherwise the transcript brings the voice's "
        "inputs from its own encoder pass, and states computed ahead would be a second pass for nothing",
    )
