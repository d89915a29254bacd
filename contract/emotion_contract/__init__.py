"""The Multimodal Emotion Analyzer's contract: what its REST API, its webhooks and its Kafka topics carry.

One home for every body that crosses a process boundary, imported by the gateway and auth (which serve the
REST bodies), the pipeline services (which publish and consume the events) and the Python client (which
reads the REST bodies). It depends on pydantic alone, so installing the client pulls in nothing of the
server. `emotion_contract.credentials` is the one module that needs more (`pydantic[email]`, the
`email` extra): only the servers read a password.

- `labels`: the emotion, sentiment and modality label sets, in the order the model heads emit them;
- `results`: the analysis result (per-utterance distributions);
- `events`: the Kafka events, their topics and the pipeline's stages;
- `analyses`: the analyses, uploads and usage bodies of the REST API;
- `webhooks`: the webhook subscriptions and deliveries bodies;
- `accounts`, `credentials`: the account, API-key and session bodies;
- `errors`: the one error body every HTTP answer uses, and the codes a failed analysis carries.
"""
