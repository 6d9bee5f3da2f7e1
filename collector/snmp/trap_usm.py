"""SNMPv3 message processing and USM (RFC 3412, 3414, 3826, 7860) for the trap receiver.

Why not pysnmp: the package keeps pysnmp in one module (usm.py, the poller's), and a receiver
needs little of it: parse one v3 message, check its HMAC, decrypt it, and for informs answer
with a Response or a Report. The PDU inside is decoded by our own BER codec (ber.py).

Who is authoritative decides the keys. A v3 *trap* is sent by its authoritative engine, so its
keys are localized to the sender's engine ID (configured per user). A v3 *inform* is sent to
us, so its keys are localized to our engine ID, and a sender first discovers that ID with an
unauthenticated probe, which we answer with a usmStatsUnknownEngineIDs Report.

Ciphers: DES-CBC (RFC 3414 8.1), AES-CFB128 (RFC 3826), AES-192/256 with the key extended as
net-snmp does (Blumenthal draft) or as Cisco does (Reeder draft); HMACs per RFC 3414 and 7860.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from collector.snmp.ber import decode_message, encode_message
from collector.snmp.errors import SnmpDecodeError
from collector.snmp.model import Message, Oid, Pdu, PduType, Tag, VarBind, Version
from collector.snmp.trap_config import TrapUser, engine_id_bytes

AUTH = {
    "md5": ("md5", 12),
    "sha": ("sha1", 12),
    "sha-224": ("sha224", 16),
    "sha-256": ("sha256", 24),
    "sha-384": ("sha384", 32),
    "sha-512": ("sha512", 48),
}
"""auth protocol → (hash, truncated MAC length)."""
PRIV_KEY_SIZE = {"des": 16, "aes": 16, "aes-192": 24, "aes-256": 32, "aes-192c": 24, "aes-256c": 32}
USM_STATS = {
    "unsupported_security_level": 1,
    "not_in_time_window": 2,
    "unknown_user": 3,
    "unknown_engine_id": 4,
    "discovery": 4,
    "wrong_digest": 5,
    "decryption_error": 6,
}
"""Drop reason → the usmStats counter (1.3.6.1.6.3.15.1.1.N.0) a Report about it carries."""
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
USM_MODEL = 3
TIME_WINDOW = 150  # seconds, RFC 3414 section 2.2.3
MAX_BOOTS = 2147483647
MAX_SIZE = 65507  # our msgMaxSize: the largest UDP/IPv4 payload
_MEGABYTE = 1048576  # RFC 3414 A.2: the passphrase is stretched over 2^20 octets


# ---------------------------------------------------------------- keys


def password_to_key(password: bytes, hash_name: str) -> bytes:
    """Ku: the hash of the passphrase repeated to one megabyte (RFC 3414 A.2)."""
    return hashlib.new(
        hash_name, (password * (_MEGABYTE // len(password) + 1))[:_MEGABYTE]
    ).digest()


def localize(ku: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Kul = H(Ku || engineID || Ku): the key one authoritative engine uses (RFC 3414 2.6)."""
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


def extend_priv_key(protocol: str, kul: bytes, engine_id: bytes, hash_name: str) -> bytes:
    """Stretch a localized key to the cipher's size in the protocol's dialect."""
    key = kul
    while len(key) < PRIV_KEY_SIZE[protocol]:
        if protocol.endswith("c"):  # Reeder (Cisco): run password-to-key on the key itself
            key += localize(password_to_key(key, hash_name), engine_id, hash_name)
        else:  # Blumenthal (net-snmp): append H(key so far)
            key += hashlib.new(hash_name, key).digest()
    return key[: PRIV_KEY_SIZE[protocol]]


@dataclass(frozen=True, slots=True)
class LocalUser:
    """A USM user with keys localized to one authoritative engine."""

    name: bytes
    auth: str | None
    priv: str | None
    auth_key: bytes = field(repr=False)
    priv_key: bytes = field(repr=False)

    @property
    def level(self) -> int:
        """The msgFlags security bits this user's messages must carry."""
        return (FLAG_AUTH if self.auth else 0) | (FLAG_PRIV if self.priv else 0)


class KeyCache:
    """Ku per (passphrase, hash): the megabyte hash is done once, not once per engine."""

    def __init__(self) -> None:
        self._ku: dict[tuple[bytes, str], bytes] = {}

    def localized(self, user: TrapUser, engine_id: bytes) -> LocalUser:
        """A trap receiver's user with its keys localized to `engine_id`."""
        auth_key = user.auth_key.get_secret_value() if user.auth_key else None
        priv_key = user.priv_key.get_secret_value() if user.priv_key else None
        return self.localize_user(
            user.name, user.auth_protocol, auth_key, user.priv_protocol, priv_key, engine_id
        )

    def localize_user(
        self,
        name: str,
        auth: str | None,
        auth_key: str | None,
        priv: str | None,
        priv_key: str | None,
        engine_id: bytes,
    ) -> LocalUser:
        """Keys of one user for one engine; protocols as trap_config names them (`sha-256`)."""
        if auth is None or auth_key is None:
            return LocalUser(name.encode(), None, None, b"", b"")
        hash_name = AUTH[auth][0]
        localized_auth = localize(self._get(auth_key, hash_name), engine_id, hash_name)
        localized_priv = b""
        if priv is not None and priv_key is not None:
            kul = localize(self._get(priv_key, hash_name), engine_id, hash_name)
            localized_priv = extend_priv_key(priv, kul, engine_id, hash_name)
        return LocalUser(
            name.encode(), auth, priv if localized_priv else None, localized_auth, localized_priv
        )

    def _get(self, password: str, hash_name: str) -> bytes:
        key = (password.encode(), hash_name)
        if key not in self._ku:
            self._ku[key] = password_to_key(key[0], hash_name)
        return self._ku[key]


def digest(user: LocalUser, whole: bytes) -> bytes:
    """The truncated HMAC over the message with its auth parameters zeroed."""
    assert user.auth is not None
    hash_name, size = AUTH[user.auth]
    return hmac.new(user.auth_key, whole, hash_name).digest()[:size]


def _cipher(
    user: LocalUser, boots: int, engine_time: int, salt: bytes
) -> Cipher[modes.CBC] | Cipher[CFB]:
    if len(salt) != 8:
        raise _Reject("decryption_error")
    if user.priv == "des":
        iv = bytes(a ^ b for a, b in zip(user.priv_key[8:16], salt, strict=True))
        return Cipher(TripleDES(user.priv_key[:8] * 3), modes.CBC(iv))  # K1=K2=K3 is DES
    iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
    return Cipher(algorithms.AES(user.priv_key), CFB(iv))


def decrypt(user: LocalUser, boots: int, engine_time: int, salt: bytes, data: bytes) -> bytes:
    """The plaintext scoped PDU; DES leaves padding behind it, which the parser ignores."""
    if user.priv == "des" and len(data) % 8:
        raise _Reject("decryption_error")
    decryptor = _cipher(user, boots, engine_time, salt).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def encrypt(user: LocalUser, boots: int, engine_time: int, plain: bytes) -> tuple[bytes, bytes]:
    """(salt, ciphertext) with a fresh random salt."""
    salt = secrets.token_bytes(8)
    if user.priv == "des":
        plain += b"\x00" * (-len(plain) % 8)
    encryptor = _cipher(user, boots, engine_time, salt).encryptor()
    return salt, encryptor.update(plain) + encryptor.finalize()


# ---------------------------------------------------------------- wire format


@dataclass(frozen=True, slots=True)
class V3Message:
    """An SNMPv3 message with USM parameters; `auth_span` locates the MAC in `raw`."""

    msg_id: int
    flags: int
    security_model: int
    engine_id: bytes
    boots: int
    engine_time: int
    user_name: bytes
    auth_params: bytes
    priv_params: bytes
    auth_span: tuple[int, int]
    data: bytes  # the plaintext ScopedPDU, or the ciphertext when FLAG_PRIV is set
    raw: bytes = field(repr=False)


def _tlv(buf: bytes, i: int, end: int, tag: int) -> tuple[int, int]:
    """The content span of the TLV at `i` if it has `tag` and fits before `end`."""
    if i + 2 > end or buf[i] != tag:
        raise SnmpDecodeError(f"expected tag 0x{tag:02x} at {i}")
    n, i = buf[i + 1], i + 2
    if n & 0x80:
        k = n & 0x7F
        if not 0 < k <= 4 or i + k > end:
            raise SnmpDecodeError("bad BER length")
        n, i = int.from_bytes(buf[i : i + k], "big"), i + k
    if i + n > end:
        raise SnmpDecodeError("TLV runs past its container (truncated)")
    return i, i + n


def _uint(buf: bytes, i: int, end: int) -> tuple[int, int]:
    s, e = _tlv(buf, i, end, Tag.INTEGER)
    value = int.from_bytes(buf[s:e], "big", signed=True)
    if s == e or not 0 <= value <= MAX_BOOTS:  # every v3 header integer is 0..2^31-1
        raise SnmpDecodeError("header INTEGER out of range")
    return value, e


def _octets(buf: bytes, i: int, end: int) -> tuple[bytes, int]:
    s, e = _tlv(buf, i, end, Tag.OCTET_STRING)
    return buf[s:e], e


def parse_message(raw: bytes) -> V3Message:
    """Parse a v3 message's headers; anything malformed raises `SnmpDecodeError`."""
    s, end = _tlv(raw, 0, len(raw), 0x30)
    version, i = _uint(raw, s, end)
    gs, ge = _tlv(raw, i, end, 0x30)
    msg_id, j = _uint(raw, gs, ge)
    _max_size, j = _uint(raw, j, ge)
    flags, j = _octets(raw, j, ge)
    model, j = _uint(raw, j, ge)
    if version != 3 or len(flags) != 1 or j != ge or end != len(raw):
        raise SnmpDecodeError("not an SNMPv3 message")
    ps, pe = _tlv(raw, ge, end, Tag.OCTET_STRING)
    us, ue = _tlv(raw, ps, pe, 0x30)
    engine_id, k = _octets(raw, us, ue)
    boots, k = _uint(raw, k, ue)
    engine_time, k = _uint(raw, k, ue)
    user_name, k = _octets(raw, k, ue)
    auth_start, auth_end = _tlv(raw, k, ue, Tag.OCTET_STRING)
    priv_params, k = _octets(raw, auth_end, ue)
    if k != ue or ue != pe:
        raise SnmpDecodeError("bytes after the USM parameters")
    data = raw[pe:end]
    if flags[0] & FLAG_PRIV:
        ds, de = _tlv(raw, pe, end, Tag.OCTET_STRING)
        data = raw[ds:de]
    return V3Message(
        msg_id,
        flags[0],
        model,
        engine_id,
        boots,
        engine_time,
        user_name,
        raw[auth_start:auth_end],
        priv_params,
        (auth_start, auth_end),
        data,
        raw,
    )


def parse_scoped_pdu(plain: bytes) -> tuple[bytes, bytes, Pdu]:
    """(contextEngineID, contextName, PDU); bytes after the ScopedPDU (DES padding) ignored."""
    s, e = _tlv(plain, 0, len(plain), 0x30)
    context_engine_id, i = _octets(plain, s, e)
    context_name, i = _octets(plain, i, e)
    # The PDU is the same as in v2c: wrap it in a v2c message and let ber.py decode it.
    message = decode_message(_enc(0x30, b"\x02\x01\x01\x04\x00" + plain[i:e]))
    if not isinstance(message.pdu, Pdu):
        raise SnmpDecodeError("v1 Trap-PDU inside SNMPv3")
    return context_engine_id, context_name, message.pdu


def scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu: Pdu) -> bytes:
    """Encode a ScopedPDU."""
    wrapped = encode_message(Message(Version.V2C, b"", pdu))
    s, _ = _tlv(wrapped, 0, len(wrapped), 0x30)
    return _enc(0x30, _str(context_engine_id) + _str(context_name) + wrapped[s + 5 :])


def _enc(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def _int(value: int) -> bytes:
    return _enc(Tag.INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _str(value: bytes) -> bytes:
    return _enc(Tag.OCTET_STRING, value)


# ---------------------------------------------------------------- the security model


class _Reject(Exception):
    """This message is refused for `reason`; a Report about it is authenticated as `user`."""

    def __init__(self, reason: str, user: LocalUser | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user = user


@dataclass(frozen=True, slots=True)
class V3Incoming:
    """An authentic v3 PDU and what answering it needs."""

    pdu: Pdu
    message: V3Message
    user: LocalUser
    context_engine_id: bytes
    context_name: bytes


@dataclass(frozen=True, slots=True)
class V3Rejected:
    """A refused v3 message: the drop reason, and the Report to send back, if any."""

    reason: str
    report: bytes | None


class Usm:
    """Our engine's USM: checks v3 traps and informs, and encodes our answers."""

    def __init__(
        self,
        engine_id: bytes,
        boots: int,
        users: Sequence[TrapUser],
        uptime: Callable[[], float],
    ) -> None:
        self.engine_id = engine_id
        # boots only has to rise across restarts; the start time does that without a state file
        self.boots = max(1, min(boots, MAX_BOOTS - 1))
        self._uptime = uptime
        self._started = uptime()
        cache = KeyCache()
        self._inform_users = {}
        for user in reversed(users):  # the first entry of a name wins
            self._inform_users[user.name.encode()] = cache.localized(user, engine_id)
        self._trap_users = {
            (engine_id_bytes(u.engine_id), u.name.encode()): cache.localized(
                u, engine_id_bytes(u.engine_id)
            )
            for u in users
            if u.engine_id is not None
        }
        self._senders: dict[bytes, tuple[int, float]] = {}  # engine → (boots, its clock start)
        self.stats: Counter[str] = Counter()

    @property
    def engine_time(self) -> int:
        """Seconds since this engine started (snmpEngineTime)."""
        return int(self._uptime() - self._started)

    def receive(self, data: bytes) -> V3Incoming | V3Rejected:
        """Authenticate and decrypt one message; malformed bytes raise `SnmpDecodeError`."""
        message = parse_message(data)
        try:
            return self._accept(message)
        except _Reject as reject:
            self.stats[reject.reason] += 1
            report = None
            if message.flags & FLAG_REPORTABLE and reject.reason in USM_STATS:
                report = self._report(message, reject)
            return V3Rejected(reject.reason, report)

    def response(self, incoming: V3Incoming) -> bytes:
        """The Response PDU acknowledging an inform, at the inform's security level."""
        pdu = incoming.pdu
        answer = Pdu(PduType.RESPONSE, pdu.request_id, 0, 0, pdu.varbinds)
        scoped = scoped_pdu(incoming.context_engine_id, incoming.context_name, answer)
        level = incoming.message.flags & (FLAG_AUTH | FLAG_PRIV)
        return self._encode(incoming.message, level, incoming.user, scoped)

    # ------------------------------------------------------------ steps of RFC 3414 3.2

    def _accept(self, message: V3Message) -> V3Incoming:
        if message.security_model != USM_MODEL:
            raise _Reject("unsupported_security_model")
        if message.flags & FLAG_PRIV and not message.flags & FLAG_AUTH:
            raise _Reject("invalid_flags")
        user = self._user(message)
        if message.flags & (FLAG_AUTH | FLAG_PRIV) != user.level:
            raise _Reject("unsupported_security_level")
        if user.auth is not None:
            self._authenticate(message, user)
        plain = message.data
        if user.priv is not None:
            plain = decrypt(user, message.boots, message.engine_time, message.priv_params, plain)
        try:
            context_engine_id, context_name, pdu = parse_scoped_pdu(plain)
        except SnmpDecodeError:
            raise _Reject("decryption_error" if user.priv else "malformed") from None
        return V3Incoming(pdu, message, user, context_engine_id, context_name)

    def _user(self, message: V3Message) -> LocalUser:
        if message.engine_id == self.engine_id:
            user = self._inform_users.get(message.user_name)
        elif not message.engine_id:  # a probe only if it asks for an answer
            raise _Reject("discovery" if message.flags & FLAG_REPORTABLE else "unknown_engine_id")
        else:
            user = self._trap_users.get((message.engine_id, message.user_name))
            if user is None and all(e != message.engine_id for e, _ in self._trap_users):
                raise _Reject("unknown_engine_id")
        if user is None:
            raise _Reject("unknown_user")
        return user

    def _authenticate(self, message: V3Message, user: LocalUser) -> None:
        start, end = message.auth_span
        zeroed = message.raw[:start] + bytes(end - start) + message.raw[end:]
        if not hmac.compare_digest(digest(user, zeroed), message.auth_params):
            raise _Reject("wrong_digest")
        if message.engine_id == self.engine_id:
            self._check_our_clock(message, user)
        else:
            self._check_sender_clock(message)

    def _check_our_clock(self, message: V3Message, user: LocalUser) -> None:
        late = abs(message.engine_time - self.engine_time) > TIME_WINDOW
        if message.boots != self.boots or late:
            raise _Reject("not_in_time_window", user)

    def _check_sender_clock(self, message: V3Message) -> None:
        """Refuse replays: a sender's clock may not run backwards (RFC 3414 3.2 step 7b)."""
        now = self._uptime()
        started = now - message.engine_time
        known = self._senders.get(message.engine_id)
        if message.boots >= MAX_BOOTS:
            raise _Reject("not_in_time_window")
        if known is not None and (message.boots, -started) < (known[0], -known[1] - TIME_WINDOW):
            raise _Reject("not_in_time_window")
        if known is None or (message.boots, -started) > (known[0], -known[1]):
            self._senders[message.engine_id] = (message.boots, started)

    # ------------------------------------------------------------ answers

    def _report(self, message: V3Message, reject: _Reject) -> bytes:
        oid = Oid((1, 3, 6, 1, 6, 3, 15, 1, 1, USM_STATS[reject.reason], 0))
        varbind = VarBind(oid, Tag.COUNTER32, self.stats[reject.reason] & 0xFFFFFFFF)
        report = Pdu(PduType.REPORT, _request_id(message), 0, 0, (varbind,))
        scoped = scoped_pdu(self.engine_id, b"", report)
        level = FLAG_AUTH if reject.user is not None else 0  # RFC 3414 3.2 step 7a: authNoPriv
        return self._encode(message, level, reject.user, scoped)

    def _encode(
        self, request: V3Message, level: int, user: LocalUser | None, scoped: bytes
    ) -> bytes:
        header = Header(self.engine_id, self.boots, self.engine_time, request.msg_id, level)
        return encode_v3(header, request.user_name, user, scoped)


@dataclass(frozen=True, slots=True)
class Header:
    """What an outgoing v3 message says about its authoritative engine and itself."""

    engine_id: bytes
    boots: int
    engine_time: int
    msg_id: int
    flags: int  # FLAG_AUTH | FLAG_PRIV | FLAG_REPORTABLE


def encode_v3(header: Header, user_name: bytes, user: LocalUser | None, scoped: bytes) -> bytes:
    """Encode, encrypt and sign one v3 message (`user` None: noAuthNoPriv)."""
    data, priv_params = scoped, b""
    if header.flags & FLAG_PRIV and user is not None:
        priv_params, ciphertext = encrypt(user, header.boots, header.engine_time, scoped)
        data = _str(ciphertext)
    mac_size = AUTH[user.auth][1] if header.flags & FLAG_AUTH and user and user.auth else 0
    params = _enc(
        0x30,
        _str(header.engine_id) + _int(header.boots) + _int(header.engine_time)
        + _str(user_name) + _str(bytes(mac_size)) + _str(priv_params),
    )  # fmt: skip
    head = _int(header.msg_id) + _int(MAX_SIZE) + _str(bytes([header.flags])) + _int(USM_MODEL)
    whole = _enc(0x30, _int(3) + _enc(0x30, head) + _str(params) + data)
    if not mac_size or user is None:
        return whole
    start, end = parse_message(whole).auth_span
    return whole[:start] + digest(user, whole) + whole[end:]


def _request_id(message: V3Message) -> int:
    """The request-id of a plaintext PDU (a discovery probe), else 0 (RFC 3412 7.1 step 3)."""
    if message.flags & FLAG_PRIV:
        return 0
    try:
        return parse_scoped_pdu(message.data)[2].request_id
    except SnmpDecodeError:
        return 0
