"""The project's common library: event contracts, settings, storage, database, media and model code.

Only the modality services, the in-process command and training import the torch-backed modules
(`shared.model`, `shared.stages`, `shared.pipeline`); the gateway and auth import none of them.
"""
