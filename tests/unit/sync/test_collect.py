"""Collect set-up: settings JSON, the QR payload as Collect decodes it, the QR images, URLs."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib

import pytest
import segno
from lxml import etree

from sync.collect import (
    AUTOSEND_WIFI_AND_CELLULAR,
    FORM_UPDATE_MODE_MATCH_EXACTLY,
    app_user_url,
    collect_settings,
    decode_payload,
    draft_url,
    qr_code,
    qr_png,
    qr_svg,
    settings_payload,
)

PUBLIC = "https://dodoso.example"
SERVER = f"{PUBLIC}/v1/key/Ab3$xY!9/projects/7"
SVG = "{http://www.w3.org/2000/svg}"


def collect_decompress(payload: str) -> str:
    """What Collect's CompressionUtils.decompress does: Base64 (standard) → Inflater → UTF-8."""
    raw = base64.standard_b64decode(payload)
    inflater = zlib.decompressobj()  # zlib-wrapped, like java.util.zip.Inflater()
    text = inflater.decompress(raw) + inflater.flush()
    assert inflater.eof and not inflater.unused_data
    return text.decode("utf-8")


# --- settings -----------------------------------------------------------------------------


def test_collect_settings__legacy_code_is_server_url_and_project_name():
    assert collect_settings(SERVER, "Labour migration 2026") == {
        "general": {"server_url": SERVER},
        "admin": {},
        "project": {"name": "Labour migration 2026"},
    }


def test_collect_settings__managed_code_matches_forms_exactly_and_autosends():
    settings = collect_settings(SERVER, "Labour migration 2026", managed=True)
    assert settings["general"] == {
        "server_url": SERVER,
        "form_update_mode": "match_exactly",
        "autosend": "wifi_and_cellular",
    }
    assert (FORM_UPDATE_MODE_MATCH_EXACTLY, AUTOSEND_WIFI_AND_CELLULAR) == (
        "match_exactly", "wifi_and_cellular")
    assert settings["admin"] == {}


def test_collect_settings__extra_general_keys_are_merged_last():
    settings = collect_settings(SERVER, "P", managed=True, extra_general={
        "autosend": "wifi_only", "periodic_form_updates_check": "every_one_hour",
        "delete_send": True,
    })
    assert settings["general"]["autosend"] == "wifi_only"
    assert settings["general"]["periodic_form_updates_check"] == "every_one_hour"
    assert settings["general"]["delete_send"] is True


def test_collect_settings__unknown_general_key_is_refused():
    with pytest.raises(ValueError, match="auto_send"):
        collect_settings(SERVER, "P", extra_general={"auto_send": "wifi_only"})


def test_collect_settings__project_icon_is_optional():
    assert collect_settings(SERVER, "[Draft] Kaya", icon="📝")["project"] == {
        "name": "[Draft] Kaya", "icon": "📝"}
    assert "icon" not in collect_settings(SERVER, "Kaya")["project"]


def test_collect_settings__do_not_share_state_between_calls():
    extra = {"delete_send": True}
    a = collect_settings(SERVER, "P", extra_general=extra)
    a["general"]["server_url"] = "changed"
    a["admin"]["admin_pw"] = "x"
    b = collect_settings(SERVER, "P", extra_general=extra)
    assert b["general"]["server_url"] == SERVER
    assert b["admin"] == {}
    assert extra == {"delete_send": True}


# --- payload ------------------------------------------------------------------------------

SETTINGS_CASES = [
    collect_settings(SERVER, "Labour migration 2026"),
    collect_settings(SERVER, "Uhamiaji wa wafanyakazi — kaya", managed=True),
    collect_settings(SERVER, "هجرة العمال", managed=True, icon="📝"),
    collect_settings(SERVER, 'Quotes " and \\ backslashes & <tags>'),
]


@pytest.mark.parametrize("settings", SETTINGS_CASES)
def test_settings_payload__round_trips(settings):
    assert decode_payload(settings_payload(settings)) == settings


@pytest.mark.parametrize("settings", SETTINGS_CASES)
def test_settings_payload__is_what_collect_decompresses(settings):
    payload = settings_payload(settings)
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", payload), "standard base64, one line"
    assert len(payload) % 4 == 0, "padded"
    assert base64.standard_b64decode(payload)[:1] == b"\x78", "zlib header, not raw or gzip"
    text = collect_decompress(payload)
    assert json.loads(text) == settings
    assert text == json.dumps(settings, ensure_ascii=False, separators=(",", ":"))


def test_settings_payload__keeps_non_latin_text_as_utf8():
    settings = collect_settings(SERVER, "هجرة العمال")
    assert "هجرة العمال" in collect_decompress(settings_payload(settings))


def test_settings_payload__is_deterministic():
    settings = collect_settings(SERVER, "P", managed=True)
    assert settings_payload(settings) == settings_payload(json.loads(json.dumps(settings)))


@pytest.mark.parametrize("junk", [
    "", "not base64!", base64.b64encode(b"plain text").decode(),
    base64.b64encode(zlib.compress(b"[1, 2]")).decode(),
    base64.b64encode(zlib.compress(b"{not json")).decode(),
])
def test_decode_payload__refuses_what_is_not_a_settings_payload(junk):
    with pytest.raises(ValueError):
        decode_payload(junk)


# --- QR images ----------------------------------------------------------------------------


def png_pixels(png: bytes) -> tuple[int, int, bytearray]:
    """Decode a greyscale PNG to one byte per pixel (0 black, 255 white). Test-only reader."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + data) == struct.unpack(">I", png[pos + 8 + length:][:4])[0]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert colour == 0 and interlace == 0 and depth in (1, 8)
    stride = (width * depth + 7) // 8
    raw, out, previous = zlib.decompress(idat), bytearray(), bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - 1] if i else 0
            up, up_left = previous[i], previous[i - 1] if i else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        previous = line
        if depth == 8:
            out += line
        else:
            out += bytes(255 if line[x // 8] >> (7 - x % 8) & 1 else 0 for x in range(width))
    return width, height, out


def svg_pixels(svg: bytes) -> tuple[int, int, bytearray]:
    """Rasterise segno's SVG (one path of 1-module-high horizontal strokes). Test-only."""
    root = etree.fromstring(svg)
    width, height = int(root.get("width")), int(root.get("height"))
    [path] = root.iter(SVG + "path")
    scale = float(re.fullmatch(r"scale\((\d+(?:\.\d+)?)\)", path.get("transform")).group(1))
    modules = round(width / scale)
    grid = [[False] * modules for _ in range(modules)]
    x = y = 0.0
    for cmd, a, b in re.findall(r"([MmHh])(-?[\d.]+)(?:[ ,]?(-?[\d.]+))?", path.get("d")):
        if cmd in "Mm":
            x, y = (float(a), float(b)) if cmd == "M" else (x + float(a), y + float(b))
        else:
            end = float(a) if cmd == "H" else x + float(a)
            for col in range(int(x), int(end)):
                grid[int(y)][col] = True
            x = end
    out = bytearray()
    for row in range(height):
        for col in range(width):
            out.append(0 if grid[int(row / scale)][int(col / scale)] else 255)
    return width, height, out


def read_qr(width: int, height: int, pixels: bytearray):
    zxingcpp = pytest.importorskip("zxingcpp")
    found = zxingcpp.read_barcodes(memoryview(pixels).cast("B", (height, width)),
                                   formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1
    return found[0]


@pytest.fixture
def payload() -> str:
    return settings_payload(collect_settings(SERVER, "Uhamiaji wa wafanyakazi", managed=True))


def test_qr_png__decodes_back_to_the_payload_at_level_l(payload):
    code = read_qr(*png_pixels(qr_png(payload)))
    assert code.text == payload
    assert code.ec_level == "L"
    assert decode_payload(code.text)["project"]["name"] == "Uhamiaji wa wafanyakazi"


def test_qr_svg__decodes_back_to_the_payload(payload):
    code = read_qr(*svg_pixels(qr_svg(payload)))
    assert code.text == payload


def test_qr_png__draft_codes_can_use_level_q(payload):
    assert read_qr(*png_pixels(qr_png(payload, error="Q"))).ec_level == "Q"


def test_qr_png__size_is_modules_plus_quiet_zone_times_scale(payload):
    modules = len(segno.make_qr(payload, error="L", boost_error=False).matrix)
    for scale in (1, 6, 9):
        width, height, pixels = png_pixels(qr_png(payload, scale=scale))
        assert width == height == (modules + 2 * 4) * scale
        quiet = 4 * scale
        assert set(pixels[:quiet * width]) == {255}, "top quiet zone is white"
        assert set(pixels[-quiet * width:]) == {255}, "bottom quiet zone is white"
        assert all(set(pixels[r * width:r * width + quiet]) == {255} for r in range(height))


def test_qr_png_and_svg__are_deterministic(payload):
    assert qr_png(payload) == qr_png(payload)
    assert qr_svg(payload) == qr_svg(payload)


def test_qr_svg__is_well_formed_svg_of_the_right_size(payload):
    body = qr_svg(payload, scale=5)
    assert body.startswith(b"<?xml")
    root = etree.fromstring(body)
    assert root.tag == SVG + "svg"
    modules = len(qr_code(payload).matrix)
    assert int(root.get("width")) == int(root.get("height")) == (modules + 8) * 5


def test_qr_code__matrix_is_segnos_for_the_same_payload_at_level_l(payload):
    code = qr_code(payload)
    assert code.error == "L"
    assert code.matrix == segno.make_qr(payload, error="L", boost_error=False).matrix


def test_qr_code__too_much_data_is_a_value_error():
    with pytest.raises(ValueError):
        qr_code("A" * 8000)


# --- URLs ---------------------------------------------------------------------------------


def test_app_user_url__is_centrals_key_path():
    assert app_user_url(PUBLIC, "Ab3$xY!9", 7) == SERVER
    assert app_user_url(PUBLIC + "/", "Ab3$xY!9", 7) == SERVER


def test_draft_url__is_centrals_test_path():
    assert draft_url(PUBLIC, "Dt0k", 7, "household") == (
        f"{PUBLIC}/v1/test/Dt0k/projects/7/forms/household/draft")


@pytest.mark.parametrize(("form_id", "segment"), [
    ("a b", "a%20b"),  # central-frontend's own test case
    ("kaya/2026?v=1#x", "kaya%2F2026%3Fv%3D1%23x"),
    ("dodoso_kaya-v2.1", "dodoso_kaya-v2.1"),
    ("ñandú", "%C3%B1and%C3%BA"),
])
def test_draft_url__quotes_the_form_id_like_encodeURIComponent(form_id, segment):
    assert draft_url(PUBLIC + "/", "tok", 3, form_id) == (
        f"{PUBLIC}/v1/test/tok/projects/3/forms/{segment}/draft")
