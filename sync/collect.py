"""Setting up ODK Collect: the settings a QR code carries, the code itself, the server URLs.

The payload is what Collect's ``CompressionUtils.decompress`` reads
(getodk/collect ``androidshared/.../utils/CompressionUtils.kt``): standard base64 (``+/``,
padded, no line breaks) of a zlib stream (``java.util.zip.Inflater()`` with its default
zlib header and Adler-32 trailer, not raw deflate, not gzip) of UTF-8 JSON. ODK Central's
front end makes the same thing with ``btoa(pako.deflate(JSON.stringify(settings)))``
(central-frontend ``src/components/collect-qr.vue``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import zlib
from typing import Any

import segno

from sync.openrosa import url_component

#: Central's error-correction levels: ``L`` for app-user codes
#: (central-frontend ``field-key/qr-panel.vue``), ``Q`` for draft-testing codes
#: (``form-draft/qr-panel.vue``). Collect itself encodes its own codes at ``L``
#: (collect ``qr-code/.../QRCodeEncoder.kt``).
APP_USER_QR_ERROR = "L"
DRAFT_QR_ERROR = "Q"

#: The quiet zone the QR specification asks for, in modules.
QR_BORDER = 4

FORM_UPDATE_MODE_MATCH_EXACTLY = "match_exactly"
AUTOSEND_WIFI_AND_CELLULAR = "wifi_and_cellular"

#: Keys Collect accepts under ``general`` (collect
#: ``settings/src/main/resources/client-settings.schema.json``). Collect silently drops any
#: other key on import, so a typo here would configure nothing; refuse it instead.
COLLECT_GENERAL_KEYS = frozenset({
    "protocol", "server_url", "username", "password", "selected_google_account",
    "google_sheets_url", "appTheme", "app_language", "font_size", "navigation",
    "basemap_source", "google_map_style", "mapbox_map_style", "usgs_map_style",
    "carto_map_style", "reference_layer", "form_update_mode", "periodic_form_updates_check",
    "automatic_update", "hide_old_form_versions", "autosend", "delete_send",
    "constraint_behavior", "high_resolution", "image_size", "guidance_hint",
    "external_app_recording", "instance_sync", "analytics", "metadata_username",
    "metadata_phonenumber", "metadata_email", "background_location", "background_recording",
})


def collect_settings(server_url: str, project_name: str, *, managed: bool = False,
                     extra_general: dict[str, Any] | None = None,
                     icon: str | None = None) -> dict[str, Any]:
    """The settings object a Collect QR code carries, shaped as Central's front end makes it.

    ``managed`` adds exactly what Central's "managed" code adds: Collect then keeps its forms
    identical to the server's list (checking on its default every-fifteen-minutes schedule)
    and sends finalized forms as soon as it has a connection. ``admin`` must be present,
    even empty: Collect's schema requires it. ``icon`` is the project's one-character badge
    (Central uses ``📝`` for draft testing); Collect derives one from the name otherwise.
    """
    general: dict[str, Any] = {"server_url": server_url}
    if managed:
        general["form_update_mode"] = FORM_UPDATE_MODE_MATCH_EXACTLY
        general["autosend"] = AUTOSEND_WIFI_AND_CELLULAR
    if extra_general:
        unknown = sorted(set(extra_general) - COLLECT_GENERAL_KEYS)
        if unknown:
            raise ValueError(f"Collect has no general setting named {', '.join(unknown)}")
        general.update(extra_general)
    project: dict[str, Any] = {"name": project_name}
    if icon:
        project["icon"] = icon
    return {"general": general, "project": project, "admin": {}}


def settings_payload(settings: dict[str, Any]) -> str:
    """The text inside a Collect QR code: base64(zlib(compact UTF-8 JSON))."""
    raw = json.dumps(settings, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def decode_payload(payload: str) -> dict[str, Any]:
    """Read a Collect QR payload back into settings (tests, diagnostics, imported codes)."""
    try:
        data = zlib.decompress(base64.b64decode(payload.strip(), validate=True))
        settings = json.loads(data.decode("utf-8"))
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a Collect settings payload") from exc
    if not isinstance(settings, dict):
        raise ValueError("not a Collect settings payload")
    return settings


def qr_code(payload: str, *, error: str = APP_USER_QR_ERROR) -> segno.QRCode:
    """The QR symbol for ``payload`` at exactly the given error-correction level."""
    try:
        return segno.make_qr(payload, error=error, boost_error=False)
    except segno.DataOverflowError as exc:
        raise ValueError("the settings are too long for one QR code") from exc


def qr_png(payload: str, *, scale: int = 6, error: str = APP_USER_QR_ERROR,
           border: int = QR_BORDER) -> bytes:
    """A PNG of the code, black on white, with a quiet zone. Same input, same bytes."""
    out = io.BytesIO()
    qr_code(payload, error=error).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_svg(payload: str, *, scale: int = 6, error: str = APP_USER_QR_ERROR,
           border: int = QR_BORDER) -> bytes:
    """An SVG of the code (UTF-8, with XML declaration), with a quiet zone."""
    out = io.BytesIO()
    qr_code(payload, error=error).save(out, kind="svg", scale=scale, border=border,
                                       xmldecl=True, svgns=True, nl=False)
    return out.getvalue()


def app_user_url(public_url: str, token: str, project_id: int) -> str:
    """The server URL for an app user: Collect appends ``/formList``, ``/submission``."""
    return f"{public_url.rstrip('/')}/v1/key/{token}/projects/{project_id}"


def draft_url(public_url: str, draft_token: str, project_id: int, xml_form_id: str) -> str:
    """The server URL for testing a form draft, laid out as Central's (``/v1/test/…/draft``)."""
    return (f"{public_url.rstrip('/')}/v1/test/{draft_token}/projects/{project_id}"
            f"/forms/{url_component(xml_form_id)}/draft")
