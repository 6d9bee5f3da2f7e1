"""The snmp: section: references checked with hints, secrets from env/files and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from collector.snmp.config import SnmpSection


def section(text: str) -> SnmpSection:
    return SnmpSection.model_validate(yaml.safe_load(text))


GOOD = """
credentials:
  campus: {version: 2c, community: s3cret-community}
  core: {version: 3, user: ow, auth_protocol: sha256, auth_key: auth-key-123,
         priv_protocol: aes256c, priv_key: priv-key-456, context: vrf1}
targets:
  - {name: sw1, address: 10.0.0.1, credentials: campus, labels: {criticality: high}}
  - {name: rt1, address: rt1.example.net, port: 1161, credentials: core,
     profiles: [system, if_mib, cisco], interval: 30s, timeout: 500ms}
"""


def test_valid_section_takes_both_versions_and_durations() -> None:
    s = section(GOOD)
    assert s.credentials["core"].version == "3"
    assert s.credentials["campus"].version == "2c"
    assert s.targets[1].interval == 30.0 and s.targets[1].timeout == 0.5
    assert s.targets[0].profiles == ["system", "if_mib"]


def test_secrets_never_in_repr_or_errors() -> None:
    s = section(GOOD)
    assert "s3cret-community" not in repr(s) and "priv-key-456" not in repr(s)
    assert s.credentials["campus"].secret("community") == "s3cret-community"
    bad = GOOD.replace("auth-key-123", "short")
    with pytest.raises(ValidationError) as info:
        section(bad)
    assert "auth_key must be at least 8 characters" in str(info.value)
    assert all("priv-key-456" not in e["msg"] for e in info.value.errors())


def test_unknown_credentials_and_profiles_are_named_with_their_path() -> None:
    bad = GOOD.replace("credentials: campus,", "credentials: campas,").replace("cisco]", "ciscoo]")
    with pytest.raises(ValidationError) as info:
        section(bad)
    text = str(info.value)
    assert "targets[0].credentials: unknown credentials 'campas' (did you mean 'campus'?)" in text
    assert "targets[1].profiles[2]: unknown profile 'ciscoo' (did you mean 'cisco'?)" in text


def test_duplicate_target_names_are_rejected() -> None:
    bad = GOOD.replace("name: rt1", "name: sw1")
    with pytest.raises(ValidationError, match="duplicate target name 'sw1'"):
        section(bad)


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        ("{version: 2c}", "needs community"),
        ("{version: 2c, community: x, user: u}", "user is for version 3 only"),
        ("{version: 3}", "version 3 needs user"),
        ("{version: 3, user: u, priv_protocol: aes, priv_key: 12345678}", "needs auth_protocol"),
        ("{version: 3, user: u, auth_protocol: sha}", "auth_protocol and auth_key"),
        ("{version: 3, user: u, auth_protocol: sha1, auth_key: 12345678}", "auth_protocol"),
        ("{version: 3, user: u, engine_id: zz}", "engine_id must be 5-32 bytes of hex"),
        ("{version: 4, community: x}", "version"),
    ],
)
def test_incomplete_credentials_say_what_is_missing(credential: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        section(f"credentials: {{c: {credential}}}")


def test_keys_from_files_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "priv").write_text("priv-from-file\n")
    monkeypatch.setenv("OW_AUTH", "auth-from-env")
    s = section(
        f"credentials: {{c: {{version: 3, user: u, auth_protocol: sha, auth_key: '${{OW_AUTH}}',"
        f" priv_protocol: aes, priv_key_file: {tmp_path / 'priv'}}}}}"
    )
    assert s.credentials["c"].secret("auth_key") == "auth-from-env"
    assert s.credentials["c"].secret("priv_key") == "priv-from-file"


def test_user_profiles_dir_adds_profiles(tmp_path: Path) -> None:
    (tmp_path / "ups.yaml").write_text(
        "name: ups\nmetrics:\n  - {name: upsBatteryCharge, oid: 1.3.6.1.2.1.33.1.2.4}\n"
    )
    s = section(
        f"profiles_dir: {tmp_path}\ncredentials: {{c: {{community: x}}}}\n"
        "targets: [{name: u1, address: 10.0.0.9, credentials: c, profiles: [ups]}]"
    )
    assert s.targets[0].profiles == ["ups"]


def test_broken_user_profile_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nmetrics:\n  - {name: x, oid: not.an.oid}\n")
    with pytest.raises(ValidationError, match=r"profiles_dir: profile .*bad.yaml"):
        section(f"profiles_dir: {tmp_path}")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("{target: other}", "'target' is the target's name"),
        ("{bad-label: x}", "'bad-label' is not a Prometheus label name"),
        ("{__meta: x}", "'__meta' is not a Prometheus label name"),
    ],
)
def test_target_labels_are_label_names_and_never_target(labels: str, message: str) -> None:
    """Two targets relabelled to one `target` would give duplicate series: refused up front."""
    with pytest.raises(ValidationError, match=message):
        section(GOOD.replace("labels: {criticality: high}", f"labels: {labels}"))
