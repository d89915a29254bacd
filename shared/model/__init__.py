"""The multimodal model: one definition that `training/` and the encoder services share.

Each service loads only its own component of a bundle (see `shared.model.bundle`).
"""
