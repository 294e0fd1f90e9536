"""Tests for wif.settings: flag, then environment, then default; checked values."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.sts.settings import StsSettings
from wif.settings import SettingsError, host_port, load_settings, optional, setting


@dataclass(frozen=True)
class DemoSettings:
    """A demo service."""

    listen: str = setting(
        "127.0.0.1:9000", "listen address", env="DEMO_LISTEN", parse=host_port
    )
    retries: int = setting(3, "how often to retry", env="DEMO_RETRIES", parse=int)
    label: str | None = setting(None, "a label", env="DEMO_LABEL", parse=optional)


@dataclass(frozen=True)
class Source:
    name: str
    argv: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)
    expected: int = 0


PRECEDENCE = [
    Source("default", expected=3),
    Source("environment", environ={"DEMO_RETRIES": "5"}, expected=5),
    Source("flag", argv=["--retries", "7"], expected=7),
    Source(
        "flag over environment",
        argv=["--retries", "7"],
        environ={"DEMO_RETRIES": "5"},
        expected=7,
    ),
    Source(
        "another setting's variable does not count",
        environ={"DEMO_LISTEN": "127.0.0.1:1"},
        expected=3,
    ),
]


@pytest.mark.parametrize("case", PRECEDENCE, ids=lambda case: case.name)
def test_load_settings_takes_flag_then_environment_then_default(case: Source) -> None:
    settings = load_settings(DemoSettings, case.argv, case.environ)

    assert settings.retries == case.expected


def test_load_settings_parses_values_from_the_environment() -> None:
    settings = load_settings(
        DemoSettings, [], {"DEMO_LISTEN": "127.0.0.1:0", "DEMO_LABEL": "blue"}
    )

    assert settings == DemoSettings(listen="127.0.0.1:0", retries=3, label="blue")


def test_load_settings_turns_an_empty_optional_value_into_none() -> None:
    settings = load_settings(DemoSettings, ["--label", ""], {"DEMO_LABEL": "blue"})

    assert settings.label is None


def test_load_settings_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_RETRIES", "9")

    assert load_settings(DemoSettings, []).retries == 9


def test_load_settings_names_the_setting_and_variable_of_a_bad_env_value() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings, [], {"DEMO_LISTEN": "nowhere"})

    assert str(caught.value) == (
        "setting listen (DEMO_LISTEN): 'nowhere' is not valid: must be host:port"
    )


def test_load_settings_names_the_setting_and_variable_of_a_bad_flag() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings, ["--retries", "many"], {})

    assert str(caught.value) == (
        "setting retries (DEMO_RETRIES): 'many' is not valid: "
        "invalid literal for int() with base 10: 'many'"
    )


def test_settings_error_stops_start_up() -> None:
    with pytest.raises(SystemExit):
        load_settings(DemoSettings, [], {"DEMO_RETRIES": "x"})


def test_help_names_each_setting_with_its_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        load_settings(DemoSettings, ["--help"], {}, prog="demo")

    out = capsys.readouterr().out
    assert caught.value.code == 0
    assert "A demo service." in out
    assert "--listen LISTEN" in out
    assert "[DEMO_LISTEN]" in out
    assert "[DEMO_RETRIES]" in out
    assert "[DEMO_LABEL]" in out


@pytest.mark.parametrize(
    "value", ["127.0.0.1:0", "localhost:65535", "[::1]:50051", "0.0.0.0:8080"]
)
def test_host_port_accepts_an_address(value: str) -> None:
    assert host_port(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "127.0.0.1",
        ":8080",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        "127.0.0.1:-1",
        "127.0.0.1: 80",
    ],
)
def test_host_port_refuses_a_malformed_address(value: str) -> None:
    with pytest.raises(ValueError, match=r"^must be host:port$"):
        host_port(value)


#: Services refuse plaintext unless told; settings tests without TLS say so.
PLAINTEXT = {"WIF_ALLOW_PLAINTEXT": "true"}


def test_sts_settings_default_to_loopback_addresses() -> None:
    settings = load_settings(StsSettings, [], PLAINTEXT)

    assert settings == StsSettings(allow_plaintext=True)
    assert settings.grpc_listen == "127.0.0.1:50052"
    assert settings.http_listen == "127.0.0.1:8082"
    assert settings.its_address == "127.0.0.1:50051"
    assert settings.policy_address == "127.0.0.1:50053"
    assert settings.etcd_endpoint == "127.0.0.1:2379"
    assert settings.audit_log is None
    assert settings.ready_file is None
    assert settings.log_level == "info"


def test_sts_settings_read_common_and_own_settings() -> None:
    settings = load_settings(
        StsSettings,
        ["--grpc-listen", "127.0.0.1:0"],
        {
            "WIF_ETCD_ENDPOINT": "127.0.0.1:2399",
            "WIF_AUDIT_LOG": "/tmp/audit.jsonl",
            **PLAINTEXT,
        },
    )

    assert settings.grpc_listen == "127.0.0.1:0"
    assert settings.etcd_endpoint == "127.0.0.1:2399"
    assert settings.audit_log == "/tmp/audit.jsonl"


def test_sts_settings_refuse_a_bad_policy_address() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            StsSettings, [], {"WIF_POLICY_ADDRESS": "127.0.0.1:99999", **PLAINTEXT}
        )

    assert str(caught.value) == (
        "setting policy_address (WIF_POLICY_ADDRESS): '127.0.0.1:99999' "
        "is not valid: must be host:port"
    )


def test_sts_token_admin_audience_defaults_to_wif_sts_and_must_be_an_id() -> None:
    default = load_settings(StsSettings, [], PLAINTEXT)
    chosen = load_settings(StsSettings, ["--token-admin-audience", "sts-2"], PLAINTEXT)

    with pytest.raises(SettingsError) as caught:
        load_settings(
            StsSettings,
            [],
            {"WIF_STS_TOKEN_ADMIN_AUDIENCE": "https://sts.example", **PLAINTEXT},
        )

    assert (default.token_admin_audience, chosen.token_admin_audience) == (
        "wif-sts",
        "sts-2",
    )
    assert str(caught.value).startswith(
        "setting token_admin_audience (WIF_STS_TOKEN_ADMIN_AUDIENCE): "
        "'https://sts.example' is not valid: must be an audience id"
    )


def test_tls_settings_are_off_by_default() -> None:
    settings = load_settings(StsSettings, [], PLAINTEXT)

    assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file) == (
        None,
        None,
        None,
    )
    assert settings.sts_ids == settings.operator_ids == settings.enforcer_ids == ()


def test_tls_settings_are_read_together() -> None:
    settings = load_settings(
        StsSettings,
        ["--tls-cert-file", "/certs/sts.pem"],
        {"WIF_TLS_KEY_FILE": "/certs/sts.key", "WIF_TLS_CA_FILE": "/certs/ca.pem"},
    )

    assert settings.tls_cert_file == "/certs/sts.pem"
    assert settings.tls_key_file == "/certs/sts.key"
    assert settings.tls_ca_file == "/certs/ca.pem"


def test_tls_settings_missing_one_name_what_is_missing() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            StsSettings,
            [],
            {"WIF_TLS_CERT_FILE": "/certs/sts.pem", "WIF_TLS_KEY_FILE": "/k"},
        )

    assert str(caught.value) == (
        "settings tls_cert_file, tls_key_file and tls_ca_file go together; "
        "missing: tls_ca_file (WIF_TLS_CA_FILE)"
    )


def test_caller_ids_are_comma_separated_spiffe_ids() -> None:
    settings = load_settings(
        StsSettings,
        [],
        {
            "WIF_OPERATOR_IDS": "spiffe://a.example/ops/1, spiffe://a.example/ops/2,",
            **PLAINTEXT,
        },
    )

    assert settings.operator_ids == (
        "spiffe://a.example/ops/1",
        "spiffe://a.example/ops/2",
    )


def test_caller_ids_refuse_what_is_not_a_spiffe_id() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(StsSettings, [], {"WIF_STS_IDS": "https://sts.example"})

    assert "setting sts_ids (WIF_STS_IDS)" in str(caught.value)
    assert "is not a SPIFFE ID" in str(caught.value)


def test_settings_without_tls_refuse_to_start_unless_plaintext_is_allowed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(StsSettings, [], {})

    assert "set allow_plaintext (WIF_ALLOW_PLAINTEXT=true)" in str(caught.value)


def test_peer_server_names_default_to_the_trust_domain_names() -> None:
    settings = load_settings(StsSettings, [], PLAINTEXT)

    assert settings.its_server_name is settings.policy_server_name is None


def test_peer_server_names_are_read_from_the_environment() -> None:
    settings = load_settings(
        StsSettings,
        ["--its-server-name", "its.wif.prod.example"],
        {"WIF_POLICY_SERVER_NAME": "policy.wif.prod.example", **PLAINTEXT},
    )

    assert settings.its_server_name == "its.wif.prod.example"
    assert settings.policy_server_name == "policy.wif.prod.example"


def test_peer_server_name_refuses_a_wildcard() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            StsSettings, [], {"WIF_ITS_SERVER_NAME": "*.wif.internal", **PLAINTEXT}
        )

    assert str(caught.value) == (
        "setting its_server_name (WIF_ITS_SERVER_NAME): '*.wif.internal' is not "
        "valid: must be a lower-case DNS name without wildcard"
    )


def test_http_limits_default_to_ten_seconds_and_512_connections() -> None:
    settings = load_settings(StsSettings, [], PLAINTEXT)

    assert settings.http_head_timeout_seconds == 10.0
    assert settings.http_max_connections == 512


def test_http_limits_are_read_from_the_environment() -> None:
    settings = load_settings(
        StsSettings,
        [],
        {
            "WIF_HTTP_HEAD_TIMEOUT_SECONDS": "0.5",
            "WIF_HTTP_MAX_CONNECTIONS": "3",
            **PLAINTEXT,
        },
    )

    assert settings.http_head_timeout_seconds == 0.5
    assert settings.http_max_connections == 3


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "WIF_HTTP_HEAD_TIMEOUT_SECONDS",
            "0",
            "must be a number of seconds above zero",
        ),
        (
            "WIF_HTTP_HEAD_TIMEOUT_SECONDS",
            "inf",
            "must be a number of seconds above zero",
        ),
        (
            "WIF_HTTP_HEAD_TIMEOUT_SECONDS",
            "nan",
            "must be a number of seconds above zero",
        ),
        ("WIF_HTTP_MAX_CONNECTIONS", "0", "must be at least 1"),
    ],
)
def test_http_limits_out_of_range_stop_start_up(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(StsSettings, [], {variable: value, **PLAINTEXT})

    assert str(caught.value).endswith(f"{value!r} is not valid: {message}")
    assert f"({variable})" in str(caught.value)
