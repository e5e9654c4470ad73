"""Delivery of a validator's attestations to the relayer inbox (``POST /v1/attestations``).

Owns: batching, what counts as delivered (a 2xx answer to every batch), and logging the items
the relayer rejected inside a 2xx answer. Must not sign, retry, or persist anything: the daemon
decides what to send, and moves its cursors only when `deliver` returned True (at-least-once).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

logger = logging.getLogger(__name__)

ATTESTATIONS_PATH = "/v1/attestations"
RELAYER_TIMEOUT_S = 10.0


class FailoverTransport(httpx.BaseTransport):
    """An httpx transport over several relayer replicas (``[validator] relayer_urls``): a
    request that cannot reach the current replica (connect error, timeout, dropped connection)
    is sent to the next one, in order, and the replica that answered becomes the current one.

    Safe because everything a validator sends the relayer is idempotent (attestations are
    stored once per signer and event; custody plan reads have no effect).

    Args:
        base_urls: relayer base URLs (``http://host:port``), first preferred; at least one.
        transport: the underlying transport (tests: ``httpx.MockTransport``).
    """

    def __init__(self, base_urls: list[str], transport: httpx.BaseTransport | None = None) -> None:
        if not base_urls:
            raise ValueError("at least one relayer URL")
        self.urls = [httpx.URL(u.rstrip("/")) for u in base_urls]
        self.current = 0
        self._inner = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        last: httpx.TransportError | None = None
        for step in range(len(self.urls)):
            i = (self.current + step) % len(self.urls)
            base = self.urls[i]
            request.url = request.url.copy_with(scheme=base.scheme, host=base.host,
                                                 port=base.port)
            request.headers["host"] = base.netloc.decode()
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError as exc:
                logger.warning("relayer replica %s unreachable: %s", base.netloc.decode(), exc)
                last = exc
                continue
            if i != self.current:
                logger.info("relayer replica %s now current", base.netloc.decode())
                self.current = i
            return response
        assert last is not None
        raise last

    def close(self) -> None:
        self._inner.close()


def relayer_client(base_urls: list[str], timeout_s: float = 10.0,
                   transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client for the relayer that fails over between replicas (`FailoverTransport`)."""
    return httpx.Client(base_url=base_urls[0], timeout=timeout_s,
                        transport=FailoverTransport(base_urls, transport))


def deliver(
    relayer: httpx.Client, payloads: list[dict[str, Any]], *, batch_size: int, relayer_url: str
) -> bool:
    """POST `payloads` to the relayer inbox in batches of at most `batch_size`.

    Args:
        relayer: an httpx client whose base URL is the relayer.
        payloads: attestation payloads (`validators.signer`), sent in this order.
        batch_size: most attestations per POST (>= 1).
        relayer_url: the relayer's URL, for logs only.

    Returns:
        True only if the relayer answered 2xx to every batch; False at the first batch it
        refused or could not be reached for (later batches are not sent). Per-item rejections
        in a 2xx answer count as delivered and are logged.
    """
    for start in range(0, len(payloads), batch_size):
        batch = payloads[start : start + batch_size]
        try:
            response = relayer.post(ATTESTATIONS_PATH, json={"attestations": batch})
        except httpx.HTTPError as exc:
            logger.warning("relayer unreachable at %s: %s", relayer_url, exc)
            return False
        if not response.is_success:
            logger.warning(
                "relayer refused batch status=%d body=%s",
                response.status_code,
                response.text[:200],
            )
            return False
        _log_rejections(batch, response)
    return True


def _log_rejections(batch: list[dict[str, Any]], response: httpx.Response) -> None:
    try:
        answer = response.json()
        rejected = answer.get("rejected") or []
    except (ValueError, AttributeError):
        logger.warning("relayer answered 2xx with a malformed body; treating as accepted")
        return
    for item in rejected:
        index = item.get("index") if isinstance(item, dict) else None
        sent = batch[index] if isinstance(index, int) and 0 <= index < len(batch) else {}
        body = sent.get("body") or {}
        logger.warning(
            "relayer rejected attestation kind=%s event_id=%s burn_id=%s code=%s",
            sent.get("kind"),
            body.get("event_id"),
            sent.get("burn_id"),
            item.get("code") if isinstance(item, dict) else None,
        )
