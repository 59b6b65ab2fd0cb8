"""A small SPDY/3.1 client for Kubernetes' remote command protocol, written from the SPDY/3
draft (framing, zlib-compressed name/value blocks with the SPDY/3 dictionary) and the
remotecommand stream conventions (one client-opened stream per `streamtype`).

It upgrades an HTTP/1.1 request over a socket the caller opened, opens the streams, and
collects what the server sends, so tests can drive the kubelet API's `/exec` without a Go
client.
"""

from __future__ import annotations

import socket
import struct
import zlib

# The SPDY/3 header dictionary (section 2.6.10.1): length-prefixed words, then plain text.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
assert len(DICTIONARY) == 1423

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FIN = 0x01


class Frame:
    def __init__(self, kind, flags, stream=None, data=b"", headers=None, value=None):
        self.kind = kind  # a control type, or "data"
        self.flags = flags
        self.stream = stream
        self.data = data
        self.headers = headers
        self.value = value  # PING id, RST/GOAWAY status, WINDOW_UPDATE delta

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    def __repr__(self):
        return f"Frame({self.kind}, flags={self.flags}, stream={self.stream}, value={self.value}, data={self.data[:40]!r})"


class Connection:
    def __init__(self, sock: socket.socket, leftover: bytes = b""):
        self.sock = sock
        self.buf = leftover
        self.deflate = zlib.compressobj(zdict=DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)

    # -- writing
    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        head = struct.pack(">HHI", 0x8000 | 3, kind, (flags << 24) | len(payload))
        self.sock.sendall(head + payload)

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            for s in (name.encode(), value.encode()):
                raw += struct.pack(">I", len(s)) + s
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream: int, headers: dict[str, str], fin: bool = False) -> None:
        payload = struct.pack(">IIH", stream, 0, 0) + self._block(headers)
        self._control(SYN_STREAM, FIN if fin else 0, payload)

    def data(self, stream: int, data: bytes, fin: bool = False) -> None:
        self.sock.sendall(struct.pack(">II", stream, ((FIN if fin else 0) << 24) | len(data)) + data)

    def ping(self, ident: int) -> None:
        self._control(PING, 0, struct.pack(">I", ident))

    def goaway(self, last: int) -> None:
        self._control(GOAWAY, 0, struct.pack(">II", last, 0))

    def raw(self, b: bytes) -> None:
        self.sock.sendall(b)

    # -- reading
    def _read(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _headers(self, block: bytes) -> dict[str, str]:
        raw = self.inflate.decompress(block)
        (count,) = struct.unpack(">I", raw[:4])
        pos, out = 4, {}
        for _ in range(count):
            pair = []
            for _ in range(2):
                (n,) = struct.unpack(">I", raw[pos : pos + 4])
                pair.append(raw[pos + 4 : pos + 4 + n].decode())
                pos += 4 + n
            out[pair[0]] = pair[1]
        assert pos == len(raw), "bytes after the header block"
        return out

    def read(self) -> Frame | None:
        """The next frame, or None when the server closed the connection."""
        head = self._read(8)
        if head is None:
            return None
        first, second = struct.unpack(">II", head)
        flags, length = second >> 24, second & 0xFFFFFF
        payload = self._read(length)
        assert payload is not None, "the connection ended inside a frame"
        if not first & 0x80000000:
            return Frame("data", flags, stream=first, data=payload)
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        assert version == 3, version
        if kind == SYN_REPLY:
            (stream,) = struct.unpack(">I", payload[:4])
            return Frame(kind, flags, stream=stream & 0x7FFFFFFF, headers=self._headers(payload[4:]))
        if kind in (RST_STREAM, GOAWAY, WINDOW_UPDATE):
            stream, value = struct.unpack(">II", payload)
            return Frame(kind, flags, stream=stream & 0x7FFFFFFF, value=value)
        if kind == PING:
            return Frame(kind, flags, value=struct.unpack(">I", payload)[0])
        return Frame(kind, flags, data=payload)


def upgrade(sock: socket.socket, path: str, headers: list[tuple[str, str]]) -> tuple[int, dict, bytes]:
    """Sends the upgrade request; returns the status, the response headers (lower-case names,
    values of repeated names joined with ", ") and what followed the headers."""
    lines = [f"POST {path} HTTP/1.1", "Host: kubelet", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    got: dict[str, str] = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        got[k] = f"{got[k]}, {v.strip()}" if k in got else v.strip()
    return status, got, rest
