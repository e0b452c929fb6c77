"""metalnic.redact: secret keys, credentials in strings, log records, answers and patches.

The rule is checked in every shape it must catch (URL userinfo with and
without a scheme, reprs, query strings, PEM keys, nested data, any case), in
what it must leave alone, and where it is applied: the views, the JSON
response class, errors, the node model, JSON patch ``test`` and the log
record factory.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metalnic import jsonpatch, redact
from metalnic.baremetal.api import views
from metalnic.baremetal.drivers.base import DriverConfigError
from metalnic.baremetal.models import Node, NodeHistory, Port
from metalnic.errors import InvalidInput, InvalidPatch
from metalnic.httpjson import JSONResponse, SecretKeysJSONResponse
from metalnic.network import views as network_views
from metalnic.network.models import NetworkPort

MASK = "******"
PW = "Hunter2-pw"

# --- secret keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "ipmi_password",
        "redfish_password",
        "IPMI_PASSWORD",
        "passwd",
        "sys_pswd",
        "secret",
        "client_secret",
        "auth_token",
        "Token",
        "ssh_private_key",
        "key_passphrase",
        "keystone_credential",
        "ipmi_kg_key",
        "configdrive",
    ],
)
def test_secret_keys(key: str) -> None:
    assert redact.is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["ipmi_username", "ipmi_address", "deploy_kernel", "public_key", "port", "root_gb", ""]
)
def test_non_secret_keys(key: str) -> None:
    assert not redact.is_secret_key(key)


def test_mask_constant() -> None:
    assert redact.MASK == MASK


def test_mask_flat() -> None:
    data = {"ipmi_username": "admin", "ipmi_password": "hunter2", "ipmi_port": 623}
    assert redact.redact(data) == {
        "ipmi_username": "admin",
        "ipmi_password": MASK,
        "ipmi_port": 623,
    }


def test_mask_nested_and_in_lists() -> None:
    data = {
        "driver_info": {
            "redfish_password": "pw",
            "nested": {"deeper": {"api_token": "t", "name": "n"}},
            "hosts": [{"address": "10.0.0.1", "secret": "s"}, "plain", ["password"]],
        },
        "configdrive": {"meta_data": {"x": 1}},
        "image_source": "http://example.com/img",
    }
    assert redact.redact(data) == {
        "driver_info": {
            "redfish_password": MASK,
            "nested": {"deeper": {"api_token": MASK, "name": "n"}},
            "hosts": [{"address": "10.0.0.1", "secret": MASK}, "plain", ["password"]],
        },
        "configdrive": MASK,  # a secret key's whole value is hidden, even an object
        "image_source": "http://example.com/img",
    }


@pytest.mark.parametrize("value", ["", 0, False, [], {}, "x"])
def test_mask_hides_every_non_null_secret_value(value: Any) -> None:
    assert redact.redact({"password": value}) == {"password": MASK}


def test_mask_keeps_null_secrets_visible() -> None:
    # An unset secret is not a secret: clients may see that it is unset.
    assert redact.redact({"password": None, "token": None}) == {"password": None, "token": None}


def test_mask_does_not_modify_its_input() -> None:
    data = {"a": {"password": "pw", "l": [{"secret": "s"}]}}
    snapshot = copy.deepcopy(data)
    masked = redact.redact(data)
    assert data == snapshot
    assert masked["a"] is not data["a"]
    assert masked["a"]["l"] is not data["a"]["l"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1, 1),
        ("password", "password"),
        (["password"], ["password"]),
        ([{"password": 1}, {"user": "u"}], [{"password": MASK}, {"user": "u"}]),
    ],
)
def test_mask_non_objects(value: Any, expected: Any) -> None:
    assert redact.redact(value) == expected


# --- credentials inside strings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"https://admin:{PW}@bmc.example/redfish/v1", f"https://{MASK}@bmc.example/redfish/v1"),
        (f"HTTPS://admin:{PW}@10.0.0.5:8000", f"HTTPS://{MASK}@10.0.0.5:8000"),
        (f"redfish+https://admin:{PW}@[fd00::5]/x", f"redfish+https://{MASK}@[fd00::5]/x"),
        (f"https://{PW}@bmc", f"https://{MASK}@bmc"),  # a token as the user name
        (f"https://admin:{PW}@@bmc", f"https://{MASK}@bmc"),
        (f"https://admin:p@ss/w:rd{PW}@bmc/x", f"https://{MASK}@bmc/x"),  # '@' and '/' in it
        (f"https://admin:pa'ss\"{PW}@bmc", f"https://{MASK}@bmc"),  # quotes in it
        (f"admin:{PW}@bmc.example", f"{MASK}@bmc.example"),  # no scheme (redfish_address)
        (f"admin:{PW}@10.0.0.5:623", f"{MASK}@10.0.0.5:623"),
        (
            f"Redfish BMC https://u:{PW}@127.0.0.1:1 is unreachable (manage)",
            f"Redfish BMC https://{MASK}@127.0.0.1:1 is unreachable (manage)",
        ),
        (
            f"['https://a:{PW}@h1', 'https://b:{PW}@h2']",
            f"['https://{MASK}@h1', 'https://{MASK}@h2']",
        ),
        (
            f"GET /v1/nodes/https%3A//u%3A{PW}%40bmc HTTP/1.1",
            f"GET /v1/nodes/https://{MASK}@bmc HTTP/1.1",
        ),
        (f"https%253A%252F%252Fu%253A{PW}%2540bmc", f"https://{MASK}@bmc"),  # quoted twice
        (f"ipmi_password={PW}&ipmi_username=u", f"ipmi_password={MASK}&ipmi_username=u"),
        (
            f"{{'ipmi_password': '{PW}', 'port': 623}}",
            f"{{'ipmi_password': '{MASK}', 'port': 623}}",
        ),
        (f'{{"Redfish_Password": "{PW}"}}', f'{{"Redfish_Password": "{MASK}"}}'),
        (f"X-Auth-Token: {PW}", f"X-Auth-Token: {MASK}"),
        (f"Authorization: Basic {PW}Zm9v", f"Authorization: Basic {MASK}"),
        (f"bearer {PW}", f"bearer {MASK}"),
        (
            f"a\n-----BEGIN RSA PRIVATE KEY-----\nMII{PW}\n-----END RSA PRIVATE KEY-----\nb",
            f"a\n-----BEGIN RSA PRIVATE KEY-----{MASK}-----END RSA PRIVATE KEY-----\nb",
        ),
        (
            f"-----BEGIN PRIVATE KEY-----\nMII{PW}",  # cut short: masked to the end
            f"-----BEGIN PRIVATE KEY-----{MASK}-----END PRIVATE KEY-----",
        ),
    ],
)
def test_credentials_in_strings_are_masked(text: str, shown: str) -> None:
    assert redact.redact_text(text) == shown
    assert PW not in redact.redact_text(text)
    assert redact.redact_text(shown) == shown  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "https://bmc.example/redfish/v1/Systems/1",
        "http://[fd00::1]:6385/v1",
        "user@example.com",
        "git@github.com:owner/repo",
        "port_id p0@nic",
        "Invalid or missing agent_token.",
        "ipmi_username",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "fe80::1%eth0",
        "100% of 50%40 nodes",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact.redact_text(text) == text


def test_strings_are_redacted_at_any_depth() -> None:
    data = {"extra": {"notes": [f"see https://u:{PW}@bmc", {"url": f"u:{PW}@bmc"}]}, "n": 1}
    assert redact.redact(data) == {
        "extra": {"notes": [f"see https://{MASK}@bmc", {"url": f"{MASK}@bmc"}]},
        "n": 1,
    }


def test_mask_keys_false_keeps_secret_keys_but_redacts_strings() -> None:
    data = {"agent_token": "tok-123", "url": f"https://u:{PW}@bmc"}
    assert redact.redact(data, mask_keys=False) == {
        "agent_token": "tok-123",
        "url": f"https://{MASK}@bmc",
    }


def test_secret_values_and_private_keys_are_found_at_any_depth() -> None:
    data = {"a": [{"ipmi_password": PW}, {"x": {"Token": "t1"}}], "token": 5}
    assert sorted(redact.secret_values(data)) == sorted([PW, "t1"])
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----"
    assert redact.holds_private_key({"a": [{"b": "x"}, pem]})
    assert redact.holds_private_key({pem: 1})
    assert redact.holds_private_key(pem.lower())
    assert not redact.holds_private_key({"a": ["-----BEGIN CERTIFICATE-----"]})


# --- where the rule is applied ------------------------------------------------------------


def test_every_json_answer_loses_url_credentials() -> None:
    body = {
        "anything": [{"deep": f"https://u:{PW}@bmc"}],
        "quoted": f"/v1/nodes/https%3A%2F%2Fu%3A{PW}%40bmc",
        "error_message": f"Redfish BMC u:{PW}@bmc is unreachable",
    }
    raw = JSONResponse(body).body
    assert PW.encode() not in raw
    assert orjson.loads(raw)["anything"][0]["deep"] == f"https://{MASK}@bmc"


def test_answers_without_at_or_percent_skip_the_walk() -> None:
    assert not redact.might_hold_credentials(orjson.dumps({"ports": [{"address": "52:54"}]}))
    assert redact.might_hold_credentials(b'{"a":"x@y"}')
    assert redact.might_hold_credentials(b'{"a":"x%40y"}')


def _node(**values: Any) -> Node:
    fields = {"uuid": "2f9b6b1e-1f0e-4a43-9d4a-7d5ad5a5e0aa", "driver": "fake-hardware"}
    return Node(**fields, **values)


@pytest.mark.parametrize(
    "field", ["driver_info", "instance_info", "driver_internal_info", "extra", "properties"]
)
def test_node_views_mask_secret_keys_in_every_free_form_field(field: str) -> None:
    value = {"Nested": [{"IPMI_Password": PW}], "api_key": PW, "note": f"password={PW}"}
    shown = views.node(_node(**{field: value}), "http://h", [field, "uuid"])
    assert shown[field] == {
        "Nested": [{"IPMI_Password": MASK}],
        "api_key": MASK,
        "note": f"password={MASK}",
    }


def test_port_and_network_port_views_mask_secret_keys() -> None:
    port = Port(uuid="u", address="52:54:00:00:00:01", extra={"db": {"Secret": PW}})
    assert views.port(port, "http://h", ["extra"])["extra"] == {"db": {"Secret": MASK}}
    network_port = NetworkPort(
        id="p", profile={"password": PW, "x": [{"token": PW}]}, vif_details={}
    )
    network_port.security_groups = []
    shown = network_views.port(network_port)
    assert shown["binding:profile"] == {"password": MASK, "x": [{"token": MASK}]}


def test_secret_keys_answer_keeps_keys_for_their_caller_only() -> None:
    raw = SecretKeysJSONResponse({"config": {"agent_token": "tok-abc"}, "u": f"u:{PW}@h"}).body
    assert orjson.loads(raw) == {"config": {"agent_token": "tok-abc"}, "u": f"{MASK}@h"}


def test_error_messages_are_redacted_when_built() -> None:
    exc = DriverConfigError(f"redfish_address https://root:{PW}@bmc is wrong")
    assert PW not in exc.message and PW not in str(exc)
    assert PW not in InvalidInput(f"{{'ipmi_password': '{PW}'}}").message


def test_last_error_and_history_are_redacted_on_assignment() -> None:
    node = Node(last_error=f"failed: https://root:{PW}@bmc unreachable")
    assert node.last_error == f"failed: https://{MASK}@bmc unreachable"
    node.last_error = None
    assert node.last_error is None
    assert PW not in NodeHistory(event=f"password={PW}").event


# --- JSON patch test: as a GET shows the document -----------------------------------------

DOC = {
    "driver_info": {"ipmi_password": PW, "redfish_address": f"https://root:{PW}@bmc"},
    "extra": {"k": "v"},
}


def _test_answer(path: str, value: Any) -> str:
    try:
        jsonpatch.apply(DOC, [{"op": "test", "path": path, "value": value}])
    except InvalidPatch as exc:
        return exc.message
    return "ok"


@pytest.mark.parametrize(
    ("path", "right", "wrong"),
    [
        ("/driver_info/ipmi_password", PW, "wrong-guess"),
        ("/driver_info/redfish_address", f"https://root:{PW}@bmc", "https://root:x@bmc"),
        ("/driver_info", DOC["driver_info"], {**DOC["driver_info"], "ipmi_password": "x"}),
    ],
)
def test_patch_test_answers_the_same_for_right_and_wrong_guesses(
    path: str, right: Any, wrong: Any
) -> None:
    assert _test_answer(path, right) == _test_answer(path, wrong) != "ok"


def test_patch_test_sees_what_a_get_shows() -> None:
    assert _test_answer("/driver_info/ipmi_password", MASK) == "ok"
    assert _test_answer("/driver_info/redfish_address", f"https://{MASK}@bmc") == "ok"
    assert _test_answer("/extra/k", "v") == "ok"
    patched = jsonpatch.apply(DOC, [{"op": "replace", "path": "/extra/k", "value": "w"}])
    assert patched["driver_info"] == DOC["driver_info"]  # other ops work on the real values


# --- logs ---------------------------------------------------------------------------------


class _Holder:
    def __repr__(self) -> str:
        return f"Holder(url='https://u:{PW}@bmc')"


def _record(msg: Any, *args: Any, exc: bool = False) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    if exc:
        try:
            raise RuntimeError(f"boom https://u:{PW}@bmc")
        except RuntimeError:
            import sys

            record.exc_info = sys.exc_info()
    redact.scrub_record(record)
    return record


def test_log_records_are_redacted_args_and_traceback_included() -> None:
    formatter = logging.Formatter("%(message)s")
    records = [
        _record("connecting to %s", f"https://u:{PW}@bmc"),
        _record("info %r", _Holder()),
        _record("dict %(url)s", {"url": f"u:{PW}@bmc"}),
        _record(f"inline https://u:{PW}@bmc"),
        _record("status %d from %s", 500, f"ipmi_password={PW}"),
        _record("failed", exc=True),
    ]
    for record in records:
        assert PW not in formatter.format(record)
    assert formatter.format(records[4]) == f"status 500 from ipmi_password={MASK}"


def test_remembered_values_leave_logs_only() -> None:
    secret = "remembered-value-7f3a"
    redact.remember(secret, "short", None)
    assert redact.redact_log(f"user said {secret}!") == f"user said {MASK}!"
    assert redact.redact_log("short stays") == "short stays"
    # Never in answers: matching tenants' text against known secrets would be an oracle.
    assert redact.redact_text(f"user said {secret}!") == f"user said {secret}!"
    assert secret.encode() in JSONResponse({"extra": {"note": secret}}).body


def test_install_logging_redacts_every_logger_once() -> None:
    previous = logging.getLogRecordFactory()
    try:
        redact.install_logging()
        redact.install_logging()
        factory = logging.getLogRecordFactory()
        assert getattr(factory, "metalnic_redacts", False)
        record = logging.getLogger("any.library").makeRecord(
            "any.library", logging.WARNING, __file__, 1, "to %s", (f"https://u:{PW}@h",), None
        )
        assert record.getMessage() == f"to https://{MASK}@h"
    finally:
        logging.setLogRecordFactory(previous)


# --- the scan that lets a list skip the walk (redact.json_is_clean) ----------------------

# Pieces that spell, or almost spell, what redaction looks for: markers in any case,
# split markers, URL and PEM pieces, scheme names, escapes and case-folding letters.
_PIECES = [
    *redact._SECRET_MARKERS,
    "PassWord",
    "TOKEN",
    "pass",
    "word",
    "tok",
    "to",
    "en",
    "https://",
    "user:pw@",
    "@",
    "%40",
    "%2540",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----",
    "Basic ",
    "bearer\t",
    "key=",
    "hostname",
    "pf0hpf",
    "nic-1",
    "K",  # the Kelvin sign: lower() makes it a "k"
    "toKen",
    "ſ",  # the long s: a case-insensitive match for "s"
    "\\u0070",
    "é",
    " ",
    ":",
    "=",
    "'",
    '"',
]
_text = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=3000, deadline=None)
@given(_json)
def test_a_clean_scan_means_redaction_changes_nothing(value: Any) -> None:
    """The class: a list renders a port's JSON without the walk only when the scan of
    its text says the walk would change nothing.  Whatever the value, that must hold
    (with the JSON text as SQLAlchemy stores it and as orjson would write it)."""
    for text in (json.dumps(value), orjson.dumps(value).decode()):
        if redact.json_is_clean(text):
            assert redact.redact(value) == value, text


@pytest.mark.parametrize(
    "text",
    [
        '{"ipmi_password": "x"}',
        '{"a": "https://u:p@host"}',
        '{"a": "Bearer abcdefgh"}',
        '{"a": "-----BEGIN PRIVATE KEY-----"}',
        '{"a": "%2540"}',
        '{"to\\u212aen": "x"}',
        '{"tokén": "x"}',
    ],
)
def test_the_scan_sends_anything_that_looks_secret_the_full_way(text: str) -> None:
    assert not redact.json_is_clean(text)


def test_the_scan_passes_ordinary_binding_profiles() -> None:
    profile = {"local_link_information": [{"hostname": "nic-1", "port_id": "pf0hpf"}]}
    assert redact.json_is_clean(json.dumps(profile))
    assert redact.json_is_clean(json.dumps({"port_filter": True, "bridge_name": "br-int"}))
