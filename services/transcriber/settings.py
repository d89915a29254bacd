from pydantic import Field

from shared.settings import EncoderSettings
from shared.transcription import MIN_LANGUAGE_PROBABILITY


class Settings(EncoderSettings):
    service_name: str = "transcriber"
    whisper_model: str = Field(
        default="base", description="'base', 'tiny.en' or a CTranslate2 model directory"
    )
    whisper_cache_dir: str = "var/cache/whisper"
    whisper_beam_size: int = Field(default=1, ge=1)
    translate_words: bool = Field(
        default=True,
        description="Read Whisper's English translation of speech that is not English (a second decoding "
        "pass); false lists such words as missing",
    )
    diarize: bool = Field(
        default=True,
        description="Tell speakers apart (Resemblyzer's voice embeddings, clustered): each utterance gets "
        "its `speaker`; false leaves them unlabelled",
    )
    voice_inputs: bool = Field(
        default=True,
        description="Send the voice head's inputs per utterance with the transcript, pooled from this "
        "transcription's Whisper encoder states: the audio encoder then reads the voice without running "
        "that encoder again (where its voice reads the same Whisper)",
    )
    min_language_probability: float = Field(
        default=MIN_LANGUAGE_PROBABILITY,
        ge=0.0,
        le=1.0,
        description="Below it the language is too uncertain to read the words",
    )
