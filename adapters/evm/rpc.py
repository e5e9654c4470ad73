"""The boundary between Ferry and one EVM node's HTTP JSON-RPC endpoint.

Owns: the web3 `HTTPProvider` of one chain, used raw (``make_request``: no middleware, no
result formatters), the translation of every transport and JSON-RPC fault into Ferry's error
tree, and the bounded retry policy of reads. Must not interpret results (the adapter does) nor
retry writes: a broadcast is sent once, and the caller, who persisted the transaction hash
first, decides what to do next.

Translation (web3.py's own provider retries are switched off so tenacity is the only one):

    requests / aiohttp connection errors, timeouts, OSError  -> RpcUnavailable
    HTTP 5xx and 429                                         -> RpcUnavailable
    a body that is not JSON (a proxy's error page)           -> RpcUnavailable
    JSON-RPC error object                                    -> errors.translate_rpc_error
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import requests
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)
from web3 import HTTPProvider
from web3.exceptions import ProviderConnectionError
from web3.types import RPCEndpoint

from adapters.errors import RetryableChainError, RpcUnavailable
from adapters.evm.errors import RpcError, translate_rpc_error

log = logging.getLogger(__name__)

# Faults of the transport itself; all mean "the node could not be asked".
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    aiohttp.ClientError,
    ProviderConnectionError,
    TimeoutError,
    OSError,
)


class JsonRpc:
    """JSON-RPC client of one chain's endpoint.

    Args:
        url: ``http(s)://`` endpoint.
        chain: CAIP-2 id carried by every error raised.
        timeout_s: seconds before one HTTP request is abandoned.
        read_attempts: most attempts of a read (>= 1).
        read_deadline_s: no new read attempt starts once this many seconds have passed since
            the first (so a read gives up within about ``read_deadline_s + timeout_s``).
    """

    def __init__(
        self,
        url: str,
        *,
        chain: str,
        timeout_s: float,
        read_attempts: int = 4,
        read_deadline_s: float = 30.0,
    ) -> None:
        if read_attempts < 1 or read_deadline_s <= 0:
            raise ValueError("read_attempts must be >= 1 and read_deadline_s > 0")
        self.url = url
        self.chain = chain
        self.provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
        )
        self._read_attempts = read_attempts
        self._read_deadline_s = read_deadline_s

    def request(self, method: str, params: list[Any]) -> Any:
        """Send one request, once; return its ``result`` member untouched (raw JSON).

        Raises:
            RpcUnavailable: transport fault, timeout, HTTP 5xx/429, non-JSON body, rate limit.
            NonceTooLow: the node refused a transaction whose nonce is already used.
            RpcError: any other JSON-RPC error object, or a response without ``result``.
        """
        try:
            response = self.provider.make_request(RPCEndpoint(method), params)
        except requests.HTTPError as exc:
            raise self._http_error(exc, method) from exc
        except _TRANSPORT_ERRORS as exc:
            raise RpcUnavailable(f"{method}: {type(exc).__name__}", chain=self.chain) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # the body was not JSON
            raise RpcUnavailable(f"{method}: undecodable response", chain=self.chain) from exc
        if not isinstance(response, dict):
            raise RpcError(f"{method}: response is not an object", chain=self.chain)
        if response.get("error") is not None:
            raise translate_rpc_error(response["error"], chain=self.chain, method=method)
        if "result" not in response:
            raise RpcError(f"{method}: response has no result", chain=self.chain)
        return response["result"]

    def read(self, method: str, params: list[Any]) -> Any:
        """`request`, retried on `RetryableChainError` only, bounded by attempts and by time.

        Only for idempotent reads. The last error is re-raised unchanged.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(RetryableChainError),
            stop=stop_after_attempt(self._read_attempts) | stop_before_delay(self._read_deadline_s),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "rpc read retry chain=%s method=%s attempt=%d error=%s",
                self.chain,
                method,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
        )
        return retrying(self.request, method, params)

    def _http_error(self, exc: requests.HTTPError, method: str) -> Exception:
        response = exc.response
        status = response.status_code if response is not None else None
        if status is None or status >= 500 or status == 429:
            return RpcUnavailable(f"{method}: HTTP {status}", chain=self.chain)
        try:  # some gateways send a JSON-RPC error object with a 4xx status
            body = response.json() if response is not None else None
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error") is not None:
            return translate_rpc_error(body["error"], chain=self.chain, method=method)
        return RpcError(f"{method}: HTTP {status}", chain=self.chain, rpc_code=status)
