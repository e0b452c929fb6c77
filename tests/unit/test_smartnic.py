"""metalnic.baremetal.smartnic: the rules for a port's local_link_connection."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from metalnic.baremetal import smartnic
from metalnic.errors import InvalidInput
from tests.support import make_ca, make_cert, pem, remote_llc, ssh_public_key

SWITCH = {"switch_id": "52:54:00:12:34:56", "port_id": "Ethernet1/1"}
LOCAL_NIC = {"hostname": "nic-1", "port_id": "pf0hpf"}


@pytest.fixture(scope="module")
def material() -> dict[str, str]:
    """PEM and SSH material shared by the remote NIC tests (EC keys: cheap to make)."""
    ca = make_ca("nic-ca")
    same_cn_ca = make_ca("nic-ca")  # another CA that happens to have the same name
    other_ca = make_ca("other-ca")
    ca_key_pem = (
        ca[1]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    ssh_private = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return {
        "ca": pem(ca[0]),
        "cert": pem(make_cert(ca, "nic-remote-1")),
        "same_cn_ca": pem(same_cn_ca[0]),
        "same_cn_cert": pem(make_cert(same_cn_ca, "nic-remote-1")),
        "other_ca": pem(other_ca[0]),
        "other_cert": pem(make_cert(other_ca, "nic-remote-1")),
        "ca_key": ca_key_pem,
        "ssh": ssh_public_key(),
        "ssh_private": ssh_private,
    }


def remote(material: dict[str, str], **overrides: str | None) -> dict[str, str]:
    llc = {
        **LOCAL_NIC,
        "ssh_public_key": material["ssh"],
        "ovsdb_cert": material["cert"],
        "ovsdb_ca_cert": material["ca"],
    }
    for key, value in overrides.items():
        if value is None:
            llc.pop(key, None)
        else:
            llc[key] = value
    return llc


# --- shape checks common to every port ---------------------------------------------


@pytest.mark.parametrize("is_smartnic", [True, False])
@pytest.mark.parametrize("llc", [[], "hostname=nic-1", 1, ["hostname", "nic-1"]])
def test_rejects_non_objects(llc: Any, is_smartnic: bool) -> None:
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        smartnic.validate(llc, is_smartnic)


@pytest.mark.parametrize("is_smartnic", [True, False])
@pytest.mark.parametrize("value", [None, 1, True, {"a": "b"}, ["x"], "", "   ", "\n"])
def test_rejects_values_that_are_not_non_empty_strings(value: Any, is_smartnic: bool) -> None:
    llc = {**SWITCH, **LOCAL_NIC, "port_id": value}
    with pytest.raises(InvalidInput, match=r"local_link_connection\.port_id must be a non-empty"):
        smartnic.validate(llc, is_smartnic)


@pytest.mark.parametrize("is_smartnic", [True, False])
def test_rejects_overlong_values(is_smartnic: bool) -> None:
    too_long = "x" * (smartnic.MAX_VALUE_LENGTH + 1)
    llc = {**SWITCH, **LOCAL_NIC, "switch_info": too_long}
    with pytest.raises(InvalidInput, match=r"switch_info is too long"):
        smartnic.validate(llc, is_smartnic)


def test_accepts_value_at_the_length_limit() -> None:
    llc = {**SWITCH, "switch_info": "x" * smartnic.MAX_VALUE_LENGTH}
    assert smartnic.validate(llc, False)["switch_info"] == llc["switch_info"]


@pytest.mark.parametrize("is_smartnic", [True, False])
def test_rejects_unknown_keys(is_smartnic: bool) -> None:
    llc = {**SWITCH, **LOCAL_NIC, "vlan": "100", "bogus": "x"}
    with pytest.raises(InvalidInput, match="Unknown key.*bogus, vlan") as info:
        smartnic.validate(llc, is_smartnic)
    assert "smart NIC ports only" not in info.value.message


# --- ordinary (switch) ports -------------------------------------------------------


@pytest.mark.parametrize("llc", [None, {}])
def test_switch_port_may_have_no_connection(llc: Any) -> None:
    assert smartnic.validate(llc, False) == {}


def test_switch_port_valid() -> None:
    llc = {**SWITCH, "switch_info": "tor-1", "hostname": "tor-1.example.com"}
    assert smartnic.validate(llc, False) == llc


@pytest.mark.parametrize(
    ("switch_id", "normalised"),
    [
        ("52-54-00-AB-CD-EF", "52:54:00:ab:cd:ef"),
        ("525400ABCDEF", "52:54:00:ab:cd:ef"),
        ("0x00000000000000AB", "0x00000000000000ab"),
        ("00000000000000Ab", "00000000000000ab"),
    ],
)
def test_switch_id_is_normalised(switch_id: str, normalised: str) -> None:
    llc = {"switch_id": switch_id, "port_id": "p1"}
    result = smartnic.validate(llc, False)
    assert result == {"switch_id": normalised, "port_id": "p1"}
    assert llc["switch_id"] == switch_id  # the input is not modified


@pytest.mark.parametrize(
    "switch_id",
    ["tor-1", "0x000000000000000", "0x0000000000000000a", "0X00000000000000AB", "52:54:00:12:34"],
)
def test_bad_switch_id(switch_id: str) -> None:
    with pytest.raises(InvalidInput, match="neither a MAC address nor an OpenFlow datapath ID"):
        smartnic.validate({"switch_id": switch_id, "port_id": "p1"}, False)


@pytest.mark.parametrize(
    "llc",
    [
        {"switch_id": "52:54:00:12:34:56"},
        {"port_id": "p1"},
        {"switch_info": "tor-1"},
        {"hostname": "nic-1", "port_id": "pf0hpf"},  # a smart NIC connection on a plain port
    ],
)
def test_switch_port_needs_switch_id_and_port_id(llc: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="needs both switch_id and port_id"):
        smartnic.validate(llc, False)


@pytest.mark.parametrize("key", sorted(smartnic.REMOTE_KEYS))
def test_switch_port_rejects_remote_keys_with_a_hint(key: str) -> None:
    with pytest.raises(InvalidInput, match=key) as info:
        smartnic.validate({**SWITCH, key: "x"}, False)
    assert "belong to smart NIC ports only" in info.value.message


# --- local smart NIC ports ---------------------------------------------------------


def test_smartnic_local_valid() -> None:
    assert smartnic.validate(dict(LOCAL_NIC), True) == LOCAL_NIC


def test_smartnic_may_also_name_its_switch() -> None:
    llc = {**LOCAL_NIC, "switch_id": "52-54-00-12-34-56", "switch_info": "tor"}
    assert smartnic.validate(llc, True)["switch_id"] == "52:54:00:12:34:56"


@pytest.mark.parametrize(
    ("llc", "missing"),
    [
        (None, "missing: hostname, port_id"),
        ({}, "missing: hostname, port_id"),
        ({"port_id": "pf0hpf"}, "missing: hostname."),
        ({"hostname": "nic-1"}, "missing: port_id."),
        (SWITCH, "missing: hostname."),
    ],
)
def test_smartnic_needs_hostname_and_port_id(llc: Any, missing: str) -> None:
    with pytest.raises(InvalidInput) as info:
        smartnic.validate(llc, True)
    assert missing in info.value.message


@pytest.mark.parametrize(
    "hostname",
    [
        "nic-1",
        "n",
        "NIC1.example.com",
        "a" * 63,
        ".".join(["a" * 63] * 3) + "." + "b" * 61,
        "1.2.3.4",
        "x-y.z",
    ],
)
def test_smartnic_valid_hostnames(hostname: str) -> None:
    assert smartnic.validate({"hostname": hostname, "port_id": "p0"}, True)["hostname"] == hostname


@pytest.mark.parametrize(
    "hostname",
    [
        "nic_1",
        "-nic",
        "nic-",
        "nic..example",
        ".nic",
        "nic.",
        "a" * 64,
        ".".join(["a" * 63] * 4),  # 255 characters
        "nic 1",
        "nïc",
    ],
)
def test_smartnic_invalid_hostnames(hostname: str) -> None:
    with pytest.raises(InvalidInput, match="is not a valid hostname"):
        smartnic.validate({"hostname": hostname, "port_id": "p0"}, True)


@pytest.mark.parametrize("port_id", ["pf0hpf", "p0", "eth0.100", "a:b", "x@y", "a_b-c", "p" * 64])
def test_smartnic_valid_port_ids(port_id: str) -> None:
    assert smartnic.validate({"hostname": "nic", "port_id": port_id}, True)["port_id"] == port_id


@pytest.mark.parametrize("port_id", ["p 0", "p/0", "p" * 65, "pf0;rm", "pörť"])
def test_smartnic_invalid_port_ids(port_id: str) -> None:
    with pytest.raises(InvalidInput, match="is not a valid port name"):
        smartnic.validate({"hostname": "nic", "port_id": port_id}, True)


@pytest.mark.parametrize(
    ("llc", "is_smartnic"),
    [
        ({"hostname": "nic-1\n", "port_id": "pf0hpf"}, True),
        ({"hostname": "nic-1", "port_id": "pf0hpf\n"}, True),
        ({"switch_id": "00000000000000ab\n", "port_id": "p1"}, False),
    ],
)
def test_trailing_newline_is_rejected(llc: dict[str, str], is_smartnic: bool) -> None:
    with pytest.raises(InvalidInput):
        smartnic.validate(llc, is_smartnic)


# --- remotely managed smart NIC ports ------------------------------------------------


def test_is_remote() -> None:
    assert not smartnic.is_remote({})
    assert not smartnic.is_remote(dict(LOCAL_NIC))
    for key in smartnic.REMOTE_KEYS:
        assert smartnic.is_remote({**LOCAL_NIC, key: "x"})


def test_remote_llc_from_support_is_valid() -> None:
    llc = remote_llc()
    assert smartnic.validate(llc, True) == llc


def test_remote_valid_with_ca(material: dict[str, str]) -> None:
    llc = remote(material)
    assert smartnic.validate(llc, True) == llc


def test_remote_valid_without_ca(material: dict[str, str]) -> None:
    llc = remote(material, ovsdb_ca_cert=None)
    assert smartnic.validate(llc, True) == llc


def test_remote_tolerates_surrounding_whitespace(material: dict[str, str]) -> None:
    llc = remote(
        material,
        ssh_public_key="\n  " + material["ssh"] + "  \n",
        ovsdb_cert="\n" + material["cert"] + "\n\n",
        ovsdb_ca_cert="  " + material["ca"],
    )
    assert smartnic.validate(llc, True) == llc


def test_remote_ca_bundle_may_hold_several_authorities(material: dict[str, str]) -> None:
    bundle = material["other_ca"] + material["same_cn_ca"] + material["ca"]
    llc = remote(material, ovsdb_ca_cert=bundle)
    assert smartnic.validate(llc, True) == llc


def test_remote_cert_may_be_followed_by_its_chain(material: dict[str, str]) -> None:
    llc = remote(material, ovsdb_cert=material["cert"] + material["ca"])
    assert smartnic.validate(llc, True) == llc


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"ssh_public_key": None}, "missing: ssh_public_key."),
        ({"ovsdb_cert": None}, "missing: ovsdb_cert."),
        ({"ssh_public_key": None, "ovsdb_cert": None}, "missing: ssh_public_key, ovsdb_cert."),
        ({"ssh_public_key": None, "ovsdb_ca_cert": None}, "missing: ssh_public_key."),
    ],
)
def test_remote_needs_ssh_key_and_cert(
    material: dict[str, str], overrides: dict[str, None], missing: str
) -> None:
    with pytest.raises(InvalidInput, match="needs both ssh_public_key and ovsdb_cert") as info:
        smartnic.validate(remote(material, **overrides), True)
    assert missing in info.value.message


def test_remote_keys_still_need_hostname_and_port_id(material: dict[str, str]) -> None:
    with pytest.raises(InvalidInput, match="missing: hostname"):
        smartnic.validate(remote(material, hostname=None), True)


@pytest.mark.parametrize(
    "key",
    [
        "garbage",
        "ssh-ed25519 AAAAnotbase64!!",
        "ssh-ed25519",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "cert",
    ],
)
def test_remote_rejects_bad_ssh_public_key(material: dict[str, str], key: str) -> None:
    value = material.get(key, key)
    with pytest.raises(InvalidInput, match="ssh_public_key is not a valid OpenSSH public key"):
        smartnic.validate(remote(material, ssh_public_key=value), True)


def test_remote_rejects_truncated_ssh_public_key(material: dict[str, str]) -> None:
    kind, blob, _comment = material["ssh"].split(" ")
    with pytest.raises(InvalidInput, match="ssh_public_key"):
        smartnic.validate(remote(material, ssh_public_key=f"{kind} {blob[:-8]}"), True)


@pytest.mark.parametrize("key", ["ovsdb_cert", "ovsdb_ca_cert"])
@pytest.mark.parametrize(
    "value",
    [
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "ssh",
    ],
)
def test_remote_rejects_things_that_are_not_certificates(
    material: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(InvalidInput, match=rf"{key} is not a PEM X\.509 certificate"):
        smartnic.validate(remote(material, **{key: material.get(value, value)}), True)


@pytest.mark.parametrize("key", ["ovsdb_cert", "ovsdb_ca_cert", "ssh_public_key"])
@pytest.mark.parametrize(
    "value",
    [
        "{ca_key}",  # a private key pasted where a certificate belongs
        "{cert}{ca_key}",  # a bundle: the certificate followed by its key
        "{ca_key}{cert}",
        "{ssh_private}",
        "{cert}{ssh_private}",
        "{cert}-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----",
    ],
)
def test_remote_refuses_private_key_material_in_any_field(
    material: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(InvalidInput, match=rf"{key} contains a private key"):
        smartnic.validate(remote(material, **{key: value.format(**material)}), True)


@pytest.mark.parametrize(
    "extra",
    [
        "-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n",
        "trailing words\n",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
    ],
)
def test_remote_certificate_fields_hold_certificates_only(
    material: dict[str, str], extra: str
) -> None:
    with pytest.raises(InvalidInput, match=r"only CERTIFICATE blocks are accepted"):
        smartnic.validate(remote(material, ovsdb_cert=material["cert"] + extra), True)


def test_remote_rejects_a_certificate_in_der_form(material: dict[str, str]) -> None:
    body = "".join(material["cert"].splitlines()[1:-1])  # base64 without the PEM armour
    with pytest.raises(InvalidInput, match="ovsdb_cert is not a PEM X.509 certificate"):
        smartnic.validate(remote(material, ovsdb_cert=body), True)


@pytest.mark.parametrize(
    ("cert", "ca"),
    [
        ("other_cert", "ca"),  # issued by a CA with a different name
        ("same_cn_cert", "ca"),  # same issuer name, different key: signature does not verify
        ("cert", "other_ca"),
        ("cert", "same_cn_ca"),
        ("ca", "other_ca"),  # a self-signed CA certificate presented as the NIC's
    ],
)
def test_remote_cert_must_be_issued_by_the_ca(material: dict[str, str], cert: str, ca: str) -> None:
    llc = remote(material, ovsdb_cert=material[cert], ovsdb_ca_cert=material[ca])
    with pytest.raises(InvalidInput, match="ovsdb_cert was not issued by ovsdb_ca_cert"):
        smartnic.validate(llc, True)


def test_remote_only_the_first_certificate_is_the_nics(material: dict[str, str]) -> None:
    # A foreign certificate first, the right one second: the NIC's is the first.
    llc = remote(material, ovsdb_cert=material["other_cert"] + material["cert"])
    with pytest.raises(InvalidInput, match="was not issued by"):
        smartnic.validate(llc, True)


def test_remote_ca_cannot_be_a_leaf_of_itself(material: dict[str, str]) -> None:
    # The NIC certificate given as its own CA: not self-signed, so not its issuer.
    llc = remote(material, ovsdb_ca_cert=material["cert"])
    with pytest.raises(InvalidInput, match="was not issued by"):
        smartnic.validate(llc, True)
