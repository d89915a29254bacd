"""Media files: `container` (first bytes and header: light, what the gateway reads), `decode` (every packet,
the audio's samples) and `frames` (pictures for the video and face encoders)."""
