"""CITATION.cff: valid Citation File Format 1.2.0 fields, and the same version, licence and URLs as settings.ini."""

import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPDX = {"apache2": "Apache-2.0", "mit": "MIT", "gpl3": "GPL-3.0-only", "bsd3": "BSD-3-Clause"}


def _settings() -> dict:
    cp = configparser.ConfigParser()
    cp.read(ROOT / "settings.ini")
    return dict(cp["DEFAULT"])


def test_citation_file_has_the_required_fields():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "abstract"):
        assert cff.get(key), key
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    for ref in cff.get("references", []):
        assert ref["type"] and ref["title"] and ref["authors"]


def test_citation_matches_settings_ini():
    cff, cfg = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8")), _settings()
    assert str(cff["version"]) == cfg["version"]
    assert cff["license"] == SPDX[cfg["license"]]
    assert cff["repository-code"] == cfg["git_url"]
    assert cff["url"].rstrip("/") == cfg["doc_host"] + cfg["doc_baseurl"]
