from pydantic import Field

from shared.settings import EncoderSettings
from shared.stages import FACE_INTERVAL_S


class Settings(EncoderSettings):
    service_name: str = "video_encoder"
    face_interval_s: float = Field(
        default=FACE_INTERVAL_S, gt=0, le=10, description="Seconds between the pictures the face is read in"
    )
