"""QR codes that set up ODK Collect: an app user's project, or a draft to test."""

from __future__ import annotations

from server.models import Project
from server.settings import Settings
from sync import collect

QR_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def app_user_qr(settings: Settings, project: Project, token: str, *, fmt: str,
                managed: bool = False) -> bytes:
    payload = collect.settings_payload(collect.collect_settings(
        collect.app_user_url(settings.public_url, token, project.id), project.name,
        managed=managed))
    return _render(payload, fmt, collect.APP_USER_QR_ERROR)


def draft_qr(settings: Settings, project: Project, draft_token: str, xml_form_id: str, *,
             fmt: str) -> bytes:
    payload = collect.settings_payload(collect.collect_settings(
        collect.draft_url(settings.public_url, draft_token, project.id, xml_form_id),
        f"[Draft] {xml_form_id}", icon="📝"))
    return _render(payload, fmt, collect.DRAFT_QR_ERROR)


def _render(payload: str, fmt: str, error: str) -> bytes:
    render = collect.qr_png if fmt == "png" else collect.qr_svg
    return render(payload, error=error)
