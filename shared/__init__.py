"""The project's common library: event contracts, settings, storage, database, media and model code.

Modules that need torch (``shared.model``, ``shared.stages``, ``shared.media``) are imported only by the
modality services and the in-process command; the gateway and auth import none of them.
"""
