"""What two services or more use: event contracts, settings, storage, the tables, media and model code.

Only the modality services, the in-process analyzer (`analyzer`) and training import the torch-backed
modules (`shared.model`, `shared.stages`); the gateway and auth import none of them.
"""
