"""Amazon SES v2 transport: ``SendEmail`` with raw content, through boto3.

The message bytes go unchanged in ``Content.Raw.Data`` (DKIM signatures pass
through); the envelope sender is ``FromEmailAddress`` and the envelope
recipients ``Destination.ToAddresses``. Credentials come from boto3's usual
chain (environment, shared files, instance roles) unless given explicitly.
boto3 is the optional ``ses`` extra: ``pip install 'mailscale[ses]'``.

boto3 is synchronous, so :meth:`send_async` runs :meth:`send` in a worker
thread (the documented offload of :class:`TransportBase`); :meth:`send` itself
runs up to ``concurrency`` ``SendEmail`` calls at once on the thread-safe
client.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import attrs

from mailscale._log import get_logger
from mailscale.errors import (
    ConfigurationError,
    InvalidMessage,
    MailscaleError,
    TransportAuthError,
    TransportConnectionError,
    TransportError,
    TransportTimeout,
)
from mailscale.message import Envelope, SendResult, SendStatus
from mailscale.transports._compat import deprecated_method, module_getattr
from mailscale.transports._http import (
    MAYBE_DELIVERED,
    PREPARE_ERRORS,
    rate_limit_headers,
    retry_after_from,
)
from mailscale.transports.base import (
    Signer,
    TransportBase,
    TransportURL,
    check_signer,
    redact_url,
    signed_bytes,
)

__all__ = ["SESTransport", "status_for_error"]

_log = get_logger("mailscale.transports")

_TAG_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}\Z")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_-]{0,256}\Z")
MAX_RECIPIENTS = 50
MAX_RAW_BYTES = 40 * 1024 * 1024

#: Error codes meaning the credentials were refused: a whole-call failure.
AUTH_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "InvalidSignatureException",
        "AuthFailure",
    }
)


def _auth_failure(outcome: object) -> bool:
    """True for a botocore ClientError saying the credentials were refused."""
    response = getattr(outcome, "response", None)
    if not isinstance(outcome, Exception) or not isinstance(response, dict):
        return False
    return str(response.get("Error", {}).get("Code", "")) in AUTH_CODES


#: Error codes that are transient (throttling, quota, service trouble).
TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def status_for_error(code: str, http_status: int | None) -> SendStatus:
    """Map an SES error to deferred (throttling, 429, 5xx) or rejected (everything else)."""
    if code in TRANSIENT_CODES or (
        http_status is not None and (http_status == 429 or http_status >= 500)
    ):
        return SendStatus.DEFERRED
    return SendStatus.REJECTED


class _Unreadable:
    """A call whose answer botocore could not parse (the message may have been sent)."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise ConfigurationError(
            "the ses transport needs boto3: install it with pip install 'mailscale[ses]'"
        ) from None
    return boto3


class SESTransport(TransportBase):
    """Send raw MIME through Amazon SES v2.

    URL: ``ses://?region=eu-west-1`` (credentials from boto3's chain), or
    ``ses://ACCESS_KEY_ID:SECRET_ACCESS_KEY@default?region=eu-west-1``.

    Args:
        region: the AWS region (default: boto3's configuration).
        endpoint_url: another endpoint (a VPC endpoint, or a local emulator in tests).
        access_key_id: explicit credentials: the access key id,
        secret_access_key: its secret,
        session_token: and a session token (optional).
        profile: a named profile from the shared AWS configuration.
        configuration_set: the SES configuration set (``ConfigurationSetName``).
        connect_timeout: seconds to connect.
        read_timeout: seconds to wait for a response.
        max_attempts: botocore attempts per call (default 1: retries belong to
            mailscale's RetryPolicy, and throttling must reach the shaper).
        concurrency: ``SendEmail`` calls in flight at once for a batch (worker threads).
        client: an existing ``sesv2`` client to use instead.
        signer: an object with ``sign(bytes) -> bytes`` (a DKIM signer) applied
            to each message before it is sent.
    """

    name: ClassVar[str] = "ses"
    schemes: ClassVar[tuple[str, ...]] = ("ses",)
    payload: str = "mime"
    max_batch: int = 1
    rate_preset: ClassVar[str | None] = "ses"

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        configuration_set: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 1,
        concurrency: int = 4,
        client: Any = None,
        signer: Signer | None = None,
    ) -> None:
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigurationError(
                "ses: give both access_key_id and secret_access_key, or neither"
            )
        check_signer(signer, "ses")
        self.signer = signer
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.configuration_set = configuration_set
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._session_token = session_token
        self._client = client
        self._own_client = client is None  # a client given by the caller stays theirs
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        if concurrency < 1:
            raise ConfigurationError(f"ses: concurrency must be >= 1, got {concurrency}")
        self.concurrency = concurrency
        if client is None:
            _import_boto3()

    @classmethod
    def tls_of(cls, url: TransportURL) -> str:
        """``"required"`` (HTTPS), or ``"none"`` for a plain ``http://`` ``?endpoint_url=``."""
        endpoint = url.query.get("endpoint_url", "")
        return "none" if endpoint.lower().startswith("http://") else "required"

    @classmethod
    def from_url(cls, url: TransportURL, **options: Any) -> SESTransport:
        """Build from ``ses://[KEY_ID:SECRET@]default?region=...[&configuration_set=...]``."""
        query = dict(url.query)
        kw: dict[str, Any] = {}
        url.check_values(("region", "endpoint_url", "profile", "configuration_set"))
        for name in ("region", "endpoint_url", "profile", "configuration_set"):
            if name in query:
                kw[name] = query.pop(name)
        if query:
            raise ConfigurationError(
                f"transport URL {url.redacted()!r}: unknown option(s) {', '.join(sorted(query))}"
            )
        if url.username or url.password:
            if not (url.username and url.password):
                raise ConfigurationError(
                    f"transport URL {url.redacted()!r}: give ACCESS_KEY_ID:SECRET_ACCESS_KEY "
                    "or no credentials (boto3's chain)"
                )
            kw["access_key_id"] = url.username
            kw["secret_access_key"] = url.password
        kw.update(options)
        return cls(**kw)

    def _repr_fields(self) -> Mapping[str, Any]:
        endpoint = redact_url(self.endpoint_url) if self.endpoint_url else None
        return {
            "region": self.region,
            "endpoint_url": endpoint,
            "configuration_set": self.configuration_set,
        }

    @property
    def client(self) -> Any:
        """The boto3 ``sesv2`` client, created on first use."""
        if self._client is None:
            boto3 = _import_boto3()
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError

            config = Config(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
                user_agent_extra="mailscale",
            )
            try:
                session = boto3.session.Session(
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_access_key,
                    aws_session_token=self._session_token,
                    profile_name=self.profile,
                )
                self._client = session.client(
                    "sesv2",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=config,
                )
            except BotoCoreError as exc:
                raise ConfigurationError(f"ses: cannot create the client: {exc}") from None
        return self._client

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        client, self._client = self._client, None
        if client is not None and self._own_client and hasattr(client, "close"):
            client.close()

    def build_payload(self, env: Envelope) -> dict[str, Any]:
        """The ``SendEmail`` parameters for *env*."""
        params: dict[str, Any] = {
            "FromEmailAddress": env.sender,
            "Destination": {"ToAddresses": list(env.recipients)},
            "Content": {"Raw": {"Data": signed_bytes(env, self.signer)}},
        }
        tags = [{"Name": k, "Value": v} for k, v in env.metadata.items()]
        tags.extend({"Name": t, "Value": "true"} for t in env.tags)
        for tag in tags:
            # SES refuses the whole call for a bad tag; checked here so only this message fails.
            if not _TAG_NAME.match(tag["Name"]) or not _TAG_VALUE.match(tag["Value"]):
                raise InvalidMessage(
                    f"SES tag {tag['Name'][:40]!r}={tag['Value'][:40]!r}: names (1-256) and "
                    "values (up to 256) may hold only letters, digits, '_' and '-'"
                )
        if tags:
            params["EmailTags"] = tags
        if self.configuration_set:
            params["ConfigurationSetName"] = self.configuration_set
        return params

    def plan_requests(self, batch: Sequence[Envelope]) -> list[tuple[int, ...]]:
        """The ``SendEmail`` calls :meth:`send` would make for *batch*: one per envelope
        within SES's recipient limit (see ``HTTPTransportBase.plan_requests``)."""
        return [(i,) for i, env in enumerate(batch) if len(env.recipients) <= MAX_RECIPIENTS]

    def send(self, batch: Sequence[Envelope]) -> list[SendResult]:
        """Send each envelope with one ``SendEmail`` call (``concurrency`` at once), in order."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._closed:
            raise TransportError("ses transport is closed", provider=self.name)
        client = self.client
        results: list[SendResult | None] = [None] * len(batch)
        todo: list[tuple[int, dict[str, Any]]] = []
        for i, env in enumerate(batch):
            if len(env.recipients) > MAX_RECIPIENTS:
                results[i] = self._result(
                    env,
                    SendStatus.REJECTED,
                    status_code="local",
                    status_text=f"{len(env.recipients)} recipients; "
                    f"SES takes at most {MAX_RECIPIENTS} per message",
                )
                continue
            try:
                params = self.build_payload(env)
            except PREPARE_ERRORS as exc:
                what = str(exc) if isinstance(exc, MailscaleError) else type(exc).__name__
                results[i] = self._result(
                    env,
                    SendStatus.REJECTED,
                    status_code="local",
                    status_text=f"message cannot be prepared: {what}",
                )
                continue
            if len(params["Content"]["Raw"]["Data"]) > MAX_RAW_BYTES:
                results[i] = self._result(
                    env,
                    SendStatus.REJECTED,
                    status_code="local",
                    status_text="message larger than SES's 40 MB",
                )
                continue
            todo.append((i, params))

        def one(item: tuple[int, dict[str, Any]]) -> tuple[int, Any, float]:
            start = time.perf_counter()
            try:
                answer: Any = client.send_email(**item[1])
            except (ClientError, BotoCoreError) as exc:
                answer = exc
            except Exception as exc:  # botocore's parser choking on SES's answer
                answer = _Unreadable(type(exc).__name__)
            return item[0], answer, time.perf_counter() - start

        if len(todo) > 1 and self.concurrency > 1:
            outcomes = list(self._executor().map(one, todo))
        else:
            outcomes = [one(item) for item in todo]
        # Answered: SES said something about a message (not a network failure, not
        # refused credentials). Then other calls' failures defer instead of raising.
        answered = any(
            not isinstance(o[1], BotoCoreError) and not _auth_failure(o[1]) for o in outcomes
        )
        for index, outcome, latency in outcomes:
            results[index] = self._parse_response(batch[index], outcome, latency, answered)
        return [r for r in results if r is not None]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="mailscale-ses"
            )
        return self._pool

    def _parse_response(
        self, env: Envelope, outcome: Any, latency: float, answered: bool
    ) -> SendResult:
        """One envelope's result from SES's answer or error; raises for whole-call failures."""
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        if isinstance(outcome, ClientError):
            error = outcome.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            meta = outcome.response.get("ResponseMetadata", {})
            rate = rate_limit_headers(meta.get("HTTPHeaders", {}))
            if code in AUTH_CODES:
                _log.warning("transport.auth_refused", provider=self.name, code=code)
                if answered:
                    return self._result(
                        env,
                        SendStatus.DEFERRED,
                        status_code=code,
                        latency=latency,
                        status_text=f"the credentials were refused ({code}); not sent",
                    )
                # SES's own message is left out: it may quote the request's credential scope.
                raise TransportAuthError(
                    f"ses: the credentials were refused ({code})",
                    provider=self.name,
                    status=code,
                    recipients=env.recipients,
                )
            status = status_for_error(code, meta.get("HTTPStatusCode"))
            return self._result(
                env,
                status,
                status_code=code,
                status_text=str(error.get("Message", code)),
                latency=latency,
                rate_limit=rate,
                retry_after=retry_after_from(rate) if status is SendStatus.DEFERRED else None,
            )
        if isinstance(outcome, _Unreadable):
            return self._unsure(env, latency, None, f"could not be read ({outcome.error})")
        if isinstance(outcome, (NoCredentialsError, PartialCredentialsError)):
            if answered:
                return self._result(
                    env,
                    SendStatus.DEFERRED,
                    latency=latency,
                    status_text=f"no usable credentials ({type(outcome).__name__}); not sent",
                )
            raise TransportAuthError(
                f"ses: no usable credentials ({type(outcome).__name__})",
                provider=self.name,
                recipients=env.recipients,
            )
        if isinstance(outcome, Exception):
            # Connection refused or dropped, time-outs: nothing came back for this call.
            _log.warning("transport.send_failed", provider=self.name, error=type(outcome).__name__)
            if not answered:
                timeout = isinstance(outcome, (ConnectTimeoutError, ReadTimeoutError))
                cls: type[TransportError] = (
                    TransportTimeout if timeout else TransportConnectionError
                )
                raise cls(
                    f"ses: {type(outcome).__name__} reaching the SES endpoint",
                    provider=self.name,
                    recipients=env.recipients,
                )
            return self._result(
                env,
                SendStatus.DEFERRED,
                latency=latency,
                status_text=f"{type(outcome).__name__}; it may or may not have been delivered",
            )
        http_status = outcome.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        message_id = outcome.get("MessageId")
        if not isinstance(message_id, str) or not message_id:
            # SES's success answer carries the MessageId; without one it says nothing sure.
            return self._unsure(env, latency, http_status, "has no MessageId")
        return self._result(
            env,
            SendStatus.ACCEPTED,
            message_id=message_id,
            status_code=http_status,
            status_text="accepted",
            latency=latency,
        )

    def _unsure(
        self, env: Envelope, latency: float, http_status: int | None, problem: str
    ) -> SendResult:
        """A message whose answer cannot be interpreted: deferred, perhaps already sent."""
        _log.warning(
            "transport.answer_unreadable", provider=self.name, status=http_status, problem=problem
        )
        result = self._result(
            env,
            SendStatus.DEFERRED,
            status_code=http_status,
            latency=latency,
            status_text=f"SES's answer {problem}; {MAYBE_DELIVERED}",
        )
        return attrs.evolve(result, possibly_delivered=True)

    def _result(
        self,
        env: Envelope,
        status: SendStatus,
        *,
        status_code: int | str | None = None,
        status_text: str = "",
        message_id: str | None = None,
        latency: float = 0.0,
        rate_limit: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> SendResult:
        return SendResult(
            status=status,
            recipients=env.recipients,
            transport=self.name,
            message_id=message_id,
            status_code=status_code,
            status_text=status_text,
            latency=latency,
            rate_limit=rate_limit or {},
            retry_after=retry_after,
            idempotency_key=env.idempotency_key,
        )

    request_for = deprecated_method("request_for", "build_payload")


__getattr__ = module_getattr(
    __name__, {"error_status": "mailscale.transports.ses:status_for_error"}
)
