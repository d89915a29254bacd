from fastapi import APIRouter, status

from emotion_contract.analyses import UploadUrl

from ...db.upload_grants import TooManyUploadUrls
from ...errors import ApiError, authenticated_responses, error_responses
from ...intake import upload_url
from ...media_types import ACCEPTED_CONTENT_TYPES
from ...schemas import UploadUrlRequest
from ..deps import CurrentOwner, GatewayDep

router = APIRouter(tags=["uploads"], responses=authenticated_responses())


@router.post(
    "/upload-url",
    responses=error_responses(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
)
async def create_upload_url(body: UploadUrlRequest, owner: CurrentOwner, gateway: GatewayDep) -> UploadUrl:
    """Get a presigned URL to PUT a video or audio file to, and the key to analyse it by."""
    if body.content_type is not None and not body.content_type.lower().startswith(ACCEPTED_CONTENT_TYPES):
        raise ApiError(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"content type {body.content_type!r} is neither video nor audio",
        )
    try:
        return await upload_url(gateway, owner, body.filename)
    except TooManyUploadUrls as exc:
        gateway.metrics.quota_rejections.labels("upload_urls").inc()
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS, "too_many_upload_urls", str(exc), headers={"Retry-After": "60"}
        ) from exc
