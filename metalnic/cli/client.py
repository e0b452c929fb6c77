"""A small synchronous client of the bare-metal API, for the CLI and the demo."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx

from metalnic.jsontypes import JSONObject

API_VERSION = "1.53"


class ApiError(Exception):
    """An error answer from the server, with the message it gave."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


def error_message(response: httpx.Response) -> str:
    """The human message out of Ironic's (or Neutron's) error body."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict) and "error_message" in body:
        inner = body["error_message"]
        try:
            return str(json.loads(inner).get("faultstring", inner))
        except (ValueError, AttributeError):
            return str(inner)
    if isinstance(body, dict) and "NeutronError" in body:
        return str(body["NeutronError"].get("message"))
    return response.text


class BaremetalClient:
    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        cacert: str | None = None,
    ) -> None:
        auth = httpx.BasicAuth(username, password or "") if username else None
        # Certificates are always verified: against --cacert when given,
        # else against the system's trusted CAs.
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=cacert) if cacert else True
        )
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            auth=auth,
            verify=verify,
            timeout=timeout,
            headers={"X-OpenStack-Ironic-API-Version": API_VERSION},
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"Cannot reach {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def list_all(self, path: str, key: str, params: dict[str, str]) -> list[JSONObject]:
        """Follow ``next`` links until the listing is complete."""
        items: list[JSONObject] = []
        body = self.request("GET", path, params=params)
        items.extend(body[key])
        while "next" in body:
            body = self.request("GET", body["next"])
            items.extend(body[key])
        return items
