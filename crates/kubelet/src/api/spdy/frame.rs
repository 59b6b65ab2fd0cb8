//! SPDY/3.1 frames: the 8-byte header of control frames (version 3, a type) and data frames
//! (a stream id), the payloads of the control frames a server meets, read from bytes with
//! every length checked and written back. Header blocks pass through the connection's
//! zlib streams (`headers.rs`).

use tokio::io::{AsyncRead, AsyncReadExt};

use super::headers::{decode_block, encode_block, Deflater, Headers, Inflater};
use super::SpdyError;

/// Largest frame payload read (SPDY allows 16 MiB; Kubernetes' peers send 32 KiB at most).
pub const MAX_FRAME: usize = 1 << 20;

pub const FLAG_FIN: u8 = 0x01;
const VERSION: u16 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;

/// A frame read or to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        fin: bool,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// `(flags, id, value)` entries; read, never needed.
    Settings(Vec<(u8, u32, u32)>),
    Ping(u32),
    GoAway {
        last_stream: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A control frame of a type a server does not act on (SPDY says to ignore it).
    Ignored(u16),
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, SpdyError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| SpdyError::Protocol("a control frame is too short".into()))
}

/// The 31-bit stream id at `at`.
fn id_at(b: &[u8], at: usize) -> Result<u32, SpdyError> {
    Ok(u32_at(b, at)? & 0x7fff_ffff)
}

fn exact(b: &[u8], len: usize, what: &str) -> Result<(), SpdyError> {
    if b.len() != len {
        return Err(SpdyError::Protocol(format!("{what} of {} bytes", b.len())));
    }
    Ok(())
}

/// Reads one frame: `Ok(None)` at a clean end of the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    inflater: &mut Inflater,
) -> Result<Option<Frame>, SpdyError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(SpdyError::Io(e)),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(SpdyError::Protocol(format!(
            "a frame of {len} bytes (at most {MAX_FRAME})"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    decode(head, payload, inflater).map(Some)
}

/// Decodes a frame from its header and payload.
pub fn decode(head: [u8; 8], p: Vec<u8>, inflater: &mut Inflater) -> Result<Frame, SpdyError> {
    let flags = head[4];
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        let stream = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
        return Ok(Frame::Data {
            stream,
            fin,
            data: p,
        });
    }
    let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
    if version != VERSION {
        return Err(SpdyError::Protocol(format!("SPDY version {version}")));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let block = |at: usize, inflater: &mut Inflater| -> Result<Headers, SpdyError> {
        decode_block(&inflater.inflate(p.get(at..).unwrap_or_default())?)
    };
    Ok(match kind {
        SYN_STREAM => {
            if p.len() < 10 {
                return Err(SpdyError::Protocol("a short SYN_STREAM".into()));
            }
            Frame::SynStream {
                stream: id_at(&p, 0)?,
                fin,
                headers: block(10, inflater)?,
            }
        }
        SYN_REPLY | HEADERS => {
            let stream = id_at(&p, 0)?;
            // The block is read to keep the zlib stream in step; a server needs none.
            block(4, inflater)?;
            if kind == SYN_REPLY {
                Frame::SynReply { stream, fin }
            } else {
                Frame::Headers { stream, fin }
            }
        }
        RST_STREAM => {
            exact(&p, 8, "RST_STREAM")?;
            Frame::RstStream {
                stream: id_at(&p, 0)?,
                status: u32_at(&p, 4)?,
            }
        }
        SETTINGS => {
            let n = u32_at(&p, 0)? as usize;
            exact(&p, 4 + n.min(MAX_FRAME) * 8, "SETTINGS")?;
            let entries = (0..n)
                .map(|i| {
                    let fid = u32_at(&p, 4 + i * 8)?;
                    Ok(((fid >> 24) as u8, fid & 0xff_ffff, u32_at(&p, 8 + i * 8)?))
                })
                .collect::<Result<_, SpdyError>>()?;
            Frame::Settings(entries)
        }
        PING => {
            exact(&p, 4, "PING")?;
            Frame::Ping(u32_at(&p, 0)?)
        }
        GOAWAY => {
            exact(&p, 8, "GOAWAY")?;
            Frame::GoAway {
                last_stream: id_at(&p, 0)?,
                status: u32_at(&p, 4)?,
            }
        }
        WINDOW_UPDATE => {
            exact(&p, 8, "WINDOW_UPDATE")?;
            Frame::WindowUpdate {
                stream: id_at(&p, 0)?,
                delta: u32_at(&p, 4)? & 0x7fff_ffff,
            }
        }
        other => Frame::Ignored(other),
    })
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

fn fin_flag(fin: bool) -> u8 {
    if fin {
        FLAG_FIN
    } else {
        0
    }
}

/// Encodes a frame; header blocks are compressed with `deflater`. Data must fit a frame
/// (callers split it).
pub fn encode(frame: &Frame, deflater: &mut Deflater) -> Vec<u8> {
    let words = |ws: &[u32]| ws.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
    match frame {
        Frame::SynStream {
            stream,
            fin,
            headers,
        } => {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let mut p = words(&[*stream, 0]);
            p.extend_from_slice(&[0, 0]);
            p.extend(deflater.deflate(&encode_block(&h)));
            control(SYN_STREAM, fin_flag(*fin), &p)
        }
        Frame::SynReply { stream, fin } | Frame::Headers { stream, fin } => {
            let mut p = words(&[*stream]);
            p.extend(deflater.deflate(&encode_block(&[])));
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                SYN_REPLY
            } else {
                HEADERS
            };
            control(kind, fin_flag(*fin), &p)
        }
        Frame::RstStream { stream, status } => control(RST_STREAM, 0, &words(&[*stream, *status])),
        Frame::Settings(entries) => {
            let mut p = words(&[entries.len() as u32]);
            for (flags, id, value) in entries {
                p.extend(words(&[u32::from(*flags) << 24 | id, *value]));
            }
            control(SETTINGS, 0, &p)
        }
        Frame::Ping(id) => control(PING, 0, &words(&[*id])),
        Frame::GoAway {
            last_stream,
            status,
        } => control(GOAWAY, 0, &words(&[*last_stream, *status])),
        Frame::WindowUpdate { stream, delta } => {
            control(WINDOW_UPDATE, 0, &words(&[*stream, *delta]))
        }
        Frame::Data { stream, fin, data } => {
            let mut f = words(&[*stream & 0x7fff_ffff]);
            f.push(fin_flag(*fin));
            f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            f.extend_from_slice(data);
            f
        }
        Frame::Ignored(kind) => control(*kind, 0, &[]),
    }
}

/// What gives back the `n` bytes received on `stream` at once: WINDOW_UPDATE of the stream
/// and of the session.
pub fn give_back(stream: u32, n: usize) -> [Frame; 2] {
    let delta = n as u32;
    [
        Frame::WindowUpdate { stream, delta },
        Frame::WindowUpdate { stream: 0, delta },
    ]
}

/// The id of a stream the client opens after `last`: odd and growing, as SPDY requires.
pub fn client_stream(stream: u32, last: u32) -> Result<u32, SpdyError> {
    if stream.is_multiple_of(2) || stream <= last {
        return Err(SpdyError::Protocol(format!(
            "the client opened stream {stream} after {last}"
        )));
    }
    Ok(stream)
}

/// The refusal of a stream the client opened.
pub fn refused(stream: u32) -> Frame {
    Frame::RstStream {
        stream,
        status: REFUSED_STREAM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8]) -> Result<Vec<Frame>, SpdyError> {
        let mut r = bytes;
        let mut i = Inflater::default();
        let mut out = Vec::new();
        while let Some(f) = read_frame(&mut r, &mut i).await? {
            out.push(f);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                fin: false,
                headers: vec![("streamtype".into(), "error".into())],
            },
            Frame::SynReply {
                stream: 1,
                fin: false,
            },
            Frame::Data {
                stream: 3,
                fin: true,
                data: b"hello".to_vec(),
            },
            Frame::Data {
                stream: 5,
                fin: false,
                data: vec![],
            },
            Frame::RstStream {
                stream: 7,
                status: REFUSED_STREAM,
            },
            Frame::Settings(vec![(0, 7, 65536), (1, 4, 100)]),
            Frame::Ping(9),
            Frame::GoAway {
                last_stream: 5,
                status: 0,
            },
            Frame::Headers {
                stream: 1,
                fin: true,
            },
            Frame::WindowUpdate {
                stream: 0,
                delta: 1000,
            },
        ];
        let mut d = Deflater::default();
        let bytes: Vec<u8> = frames.iter().flat_map(|f| encode(f, &mut d)).collect();
        assert_eq!(read_all(&bytes).await.unwrap(), frames);
    }

    #[tokio::test]
    async fn known_bytes() {
        // A PING with id 1, and a FIN data frame of "ab" on stream 3, as the spec lays
        // them out.
        let bytes = [
            0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 3, 1, 0, 0, 2, b'a', b'b',
        ];
        let got = read_all(&bytes).await.unwrap();
        assert_eq!(
            got,
            [
                Frame::Ping(1),
                Frame::Data {
                    stream: 3,
                    fin: true,
                    data: b"ab".to_vec()
                }
            ]
        );
        // An unknown control type is skipped, not fatal.
        let unknown = [0x80, 3, 0, 10, 0, 0, 0, 2, 1, 2];
        assert_eq!(read_all(&unknown).await.unwrap(), [Frame::Ignored(10)]);
    }

    #[tokio::test]
    async fn bad_frames_refused() {
        // Longer than MAX_FRAME: refused from the header, before reading the payload.
        let len = (MAX_FRAME + 1) as u32;
        let mut big = vec![0, 0, 0, 1, 0];
        big.extend_from_slice(&len.to_be_bytes()[1..]);
        assert!(matches!(
            read_all(&big).await,
            Err(SpdyError::Protocol(m)) if m.contains("at most")
        ));
        // SPDY/2, a 5-byte PING, a truncated payload, a SETTINGS whose count lies.
        for bad in [
            &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..],
            &[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0],
            &[0, 0, 0, 1, 0, 0, 0, 9, 1],
            &[0x80, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
            &[0x80, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1],
        ] {
            assert!(read_all(bad).await.is_err(), "{bad:?}");
        }
    }
}
