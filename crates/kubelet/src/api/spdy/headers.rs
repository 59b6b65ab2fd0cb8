//! SPDY/3 name/value header blocks: the block's layout (a count, then length-prefixed names
//! and values) and its zlib compression with the SPDY/3 dictionary. Each direction of a
//! connection keeps ONE zlib stream for all its blocks ([`Inflater`] for what is read,
//! [`Deflater`] for what is written), each block ending with a sync flush.

use std::sync::LazyLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// Largest decompressed header block accepted.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Most name/value pairs in a block.
pub const MAX_HEADERS: usize = 64;

/// A block's pairs, names lower-case as SPDY/3 requires.
pub type Headers = Vec<(String, String)>;

/// The length-prefixed words the SPDY/3 dictionary begins with (section 2.6.10.1).
const WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The text the dictionary ends with, unprefixed.
const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415\
416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently\
400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error\
501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec \
00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,\
image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate\
max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// The SPDY/3 zlib dictionary.
pub static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
});

/// Lays `headers` out as an uncompressed block.
pub fn encode_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        for s in [name, value] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
    b
}

/// Reads an uncompressed block; every length must lie inside it.
pub fn decode_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |why: &str| SpdyError::Protocol(format!("header block: {why}"));
    let mut rest = b;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        if rest.len() < n {
            return Err(bad("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
    if count > MAX_HEADERS {
        return Err(bad(&format!("more than {MAX_HEADERS} headers")));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            let len = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            *s = String::from_utf8(take(len)?.to_vec()).map_err(|_| bad("not UTF-8"))?;
        }
        let [name, value] = pair;
        if name.is_empty() || name.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(bad(&format!("invalid name {name:?}")));
        }
        out.push((name, value));
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the last header"));
    }
    Ok(out)
}

/// The zlib stream of the blocks a peer sends.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Self(Decompress::new(true))
    }
}

impl Inflater {
    /// Decompresses one block (at most [`MAX_HEADER_BLOCK`] bytes once inflated).
    pub fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let zlib = |e: String| SpdyError::Protocol(format!("header compression: {e}"));
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut pos = 0;
        loop {
            let (in0, out0) = (self.0.total_in(), self.0.total_out());
            let r = self
                .0
                .decompress(&input[pos..], &mut buf, FlushDecompress::Sync);
            let used = (self.0.total_in() - in0) as usize;
            let made = (self.0.total_out() - out0) as usize;
            pos += used;
            out.extend_from_slice(&buf[..made]);
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Protocol(format!(
                    "a header block inflates to more than {MAX_HEADER_BLOCK} bytes"
                )));
            }
            match r {
                Ok(Status::StreamEnd) => return Err(zlib("the stream ended".into())),
                Ok(_) if pos == input.len() && made < buf.len() => return Ok(out),
                Ok(_) if used == 0 && made == 0 => return Err(zlib("truncated block".into())),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| zlib(e.to_string()))?;
                }
                Err(e) => return Err(zlib(e.to_string())),
            }
        }
    }
}

/// The zlib stream of the blocks sent to the peer.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(&DICTIONARY)
            .expect("a dictionary is accepted before the first block");
        Self(c)
    }
}

impl Deflater {
    /// Compresses one block, flushed so the peer can read it whole.
    pub fn deflate(&mut self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(1024);
            }
            let in0 = self.0.total_in();
            self.0
                .compress_vec(&block[pos..], &mut out, FlushCompress::Sync)
                .expect("compressing into memory cannot fail");
            pos += (self.0.total_in() - in0) as usize;
            // Done once everything is in and the flush left room to spare.
            if pos == block.len() && out.capacity() - out.len() >= 64 {
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(DICTIONARY.ends_with(b"utf-,*,enq=0."));
    }

    #[test]
    fn blocks_round_trip_through_one_stream() {
        let mut d = Deflater::default();
        let mut i = Inflater::default();
        for headers in [
            vec![("streamtype", "error")],
            vec![],
            vec![("streamtype", "stdout"), ("x-multi", "a\0b")],
        ] {
            let block = encode_block(&headers);
            let z = d.deflate(&block);
            let back = decode_block(&i.inflate(&z).unwrap()).unwrap();
            let back: Vec<_> = back.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            assert_eq!(back, headers);
        }
    }

    /// Two blocks as Python's zlib (`compressobj(zdict=DICTIONARY)`, a sync flush after
    /// each) compresses `streamtype: error`, then `streamtype: stdin`.
    #[test]
    fn known_blocks() {
        let first = hex(KNOWN_FIRST);
        let second = hex(KNOWN_SECOND);
        let mut i = Inflater::default();
        let h = decode_block(&i.inflate(&first).unwrap()).unwrap();
        assert_eq!(h, [("streamtype".to_string(), "error".to_string())]);
        let h = decode_block(&i.inflate(&second).unwrap()).unwrap();
        assert_eq!(h, [("streamtype".to_string(), "stdin".to_string())]);
    }

    const KNOWN_FIRST: &str = "78bbe3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff";
    const KNOWN_SECOND: &str = "c22e555c02cc2e00000000ffff";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn bad_blocks_refused() {
        assert!(decode_block(&[0, 0, 0]).is_err());
        assert!(decode_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(decode_block(&encode_block(&[("Upper", "x")])).is_err());
        assert!(decode_block(&[0, 0, 0, 0, 1]).is_err());
        let many: Vec<_> = (0..=MAX_HEADERS).map(|_| ("a", "b")).collect();
        assert!(decode_block(&encode_block(&many)).is_err());
        // A bomb: one huge value inflates past the bound.
        let big = "x".repeat(MAX_HEADER_BLOCK);
        let z = Deflater::default().deflate(&encode_block(&[("a", &big)]));
        assert!(z.len() < 1024);
        assert!(Inflater::default().inflate(&z).is_err());
        assert!(Inflater::default().inflate(b"not zlib").is_err());
    }
}
