"""What two services or more use: settings, storage, claim checks, the service kit, the tables, media and
model code. The contract (events, REST bodies, labels) is the `emotion_contract` package, which the client
shares.

Only the modality services, the in-process analyzer (`analyzer`) and training import the torch-backed
modules (`shared.model`, `shared.stages`); the gateway and auth import none of them.
"""
