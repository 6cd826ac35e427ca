"""The Microsoft Teams app package (manifest.json + two icons) that a school uploads to Teams.

The icons are drawn with Pillow at build time, so the repository holds no binary files. Fields a
school must fill in before publishing are marked ``VUL-IN`` (see docs/teams.md).
"""
from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

from bot.settings import Settings, get_settings

MANIFEST_VERSION = "1.16"
MANIFEST_SCHEMA = f"https://developer.microsoft.com/en-us/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
ACCENT_COLOR = "#1F6F8B"
COLOR_SIZE = 192
OUTLINE_SIZE = 32
PLACEHOLDER = "VUL-IN"
# Reserved example domain: a package with these URLs is clearly not finished.
DEVELOPER_PLACEHOLDER = {
    "name": f"{PLACEHOLDER}: naam school/bureau",  # at most 32 characters
    "websiteUrl": f"https://{PLACEHOLDER.lower()}.example.org/website",
    "privacyUrl": f"https://{PLACEHOLDER.lower()}.example.org/privacyverklaring",
    "termsOfUseUrl": f"https://{PLACEHOLDER.lower()}.example.org/gebruiksvoorwaarden",
}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed, so the same settings give the same package


def _valid_domains(settings: Settings) -> list[str]:
    host = urlsplit(settings.public_url).hostname or ""
    domains = [host] if host and host not in LOCAL_HOSTS else []
    return domains + ["token.botframework.com"]


def build_manifest(settings: Optional[Settings] = None, developer: Optional[Dict[str, str]] = None,
                   version: str = "1.0.0") -> Dict[str, Any]:
    """The manifest for this bot's app id; ``developer`` replaces the VUL-IN placeholders."""
    settings = settings or get_settings()
    app_id = settings.teams_app_id.strip()
    if not app_id:
        raise ValueError("MICROSOFT_APP_ID is not set: the manifest needs the bot's app id")
    try:
        uuid.UUID(app_id)
    except ValueError as error:
        raise ValueError("MICROSOFT_APP_ID must be the GUID of the Azure app registration") from error
    bot_name = (settings.teams_bot_name or "Mentorwijzer").strip()[:30]
    developer = {**DEVELOPER_PLACEHOLDER, **(developer or {})}
    if len(developer["name"]) > 32:
        raise ValueError("developer name: at most 32 characters in a Teams manifest")
    return {
        "$schema": MANIFEST_SCHEMA,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id,
        "developer": developer,
        "name": {"short": bot_name, "full": f"{bot_name}: assistent voor mentoren van pabostudenten"[:100]},
        "description": {
            "short": "Vragen over je mentorrol en de mentorscan, voor mentoren van pabostudenten"[:80],
            "full": (
                f"{bot_name} is een geautomatiseerde assistent (een chatbot, geen mens) voor mentoren op "
                "basisscholen die pabostudenten begeleiden. Je kunt vragen stellen over je taken als "
                "mentor, over de rollen in Samen Opleiden (schoolopleider, instituutsopleider, SLB-er) "
                "en over wat je van je student mag verwachten. Antwoorden noemen hun bron. Je kunt ook "
                "de mentorscan invullen, een korte zelfevaluatie, en je resultaten bekijken. Typ 'privacy' "
                "om je gegevens in te zien of te laten wissen."
            ),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": ACCENT_COLOR,
        "localizationInfo": {"defaultLanguageTag": "nl-nl"},
        "bots": [
            {
                "botId": app_id,
                "scopes": ["personal"],
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {
                        "scopes": ["personal"],
                        "commands": [
                            {"title": "help", "description": "Laat zien waar ik je mee kan helpen"},
                            {"title": "mentorscan", "description": "Vul de mentorscan in"},
                            {"title": "privacy", "description": "Bekijk of wis je gegevens"},
                        ],
                    }
                ],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": _valid_domains(settings),
    }


def _draw_m(draw: ImageDraw.ImageDraw, size: int, margin: float, width: int, fill: Any) -> None:
    """A bold "M" (for Mentorwijzer) from straight strokes, so no font file is needed."""
    left, right = size * margin, size * (1 - margin)
    top, bottom = size * margin, size * (1 - margin)
    middle = size / 2
    points = [(left, bottom), (left, top), (middle, size * 0.62), (right, top), (right, bottom)]
    draw.line(points, fill=fill, width=width, joint="curve")


def color_icon() -> bytes:
    """192x192 full-colour icon: white M on the accent colour."""
    image = Image.new("RGBA", (COLOR_SIZE, COLOR_SIZE), ACCENT_COLOR)
    _draw_m(ImageDraw.Draw(image), COLOR_SIZE, margin=0.25, width=18, fill="white")
    return _png(image)


def outline_icon() -> bytes:
    """32x32 outline icon: white on transparent, as Teams requires."""
    image = Image.new("RGBA", (OUTLINE_SIZE, OUTLINE_SIZE), (255, 255, 255, 0))
    _draw_m(ImageDraw.Draw(image), OUTLINE_SIZE, margin=0.16, width=3, fill=(255, 255, 255, 255))
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def write_package(out_path: Path, settings: Optional[Settings] = None,
                  developer: Optional[Dict[str, str]] = None, version: str = "1.0.0") -> Path:
    """Write the Teams app package zip (manifest.json, color.png, outline.png) to out_path."""
    out_path = Path(out_path)
    manifest = build_manifest(settings, developer=developer, version=version)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    files = {
        "manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8") + b"\n",
        "color.png": color_icon(),
        "outline.png": outline_icon(),
    }
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            package.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data, compress_type=zipfile.ZIP_DEFLATED)
    return out_path
