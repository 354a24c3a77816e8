//! Gzip decompression with one decoder per thread, reset for each file.
//!
//! Real trails are millions of files of a few KB. Making a gzip decoder
//! allocates and zeroes zlib-rs's inflate state and window (about 50,000
//! instructions, calloc and memset): on a real-shape trail that was 6% of
//! `import --dry-run`, as much as inflating a quiet region's file. So each
//! thread keeps one flate2 [`GzDecoder`] and resets it for the next file
//! (`inflateReset` keeps the window's memory).
//!
//! [`Gunzip`] reads every member of a multi-member file, exactly as
//! flate2's `MultiGzDecoder` does (another member follows a clean end of one
//! when input is left; an error ends the stream); a test checks the two
//! against each other on generated input. No gzip format is parsed here:
//! headers, CRCs and sizes are flate2's.
//!
//! Invariant: the decoder a thread keeps holds no file between two files
//! (its input is dropped when a file is done).

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;

/// Bytes read from a file at a time.
const FILE_BUFFER: usize = 64 << 10;

/// A file's bytes, owned, so that a thread's decoder can hold them while
/// it reads: a file being read, or bytes in memory (an S3 object).
pub enum Feed {
    Empty,
    File(BufReader<std::fs::File>),
    Bytes(io::Cursor<Vec<u8>>),
}

impl Feed {
    pub fn file(file: std::fs::File) -> Feed {
        Feed::File(BufReader::with_capacity(FILE_BUFFER, file))
    }

    pub fn bytes(bytes: Vec<u8>) -> Feed {
        Feed::Bytes(io::Cursor::new(bytes))
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Feed::Empty => Ok(0),
            Feed::File(file) => file.read(buf),
            Feed::Bytes(bytes) => bytes.read(buf),
        }
    }
}

impl BufRead for Feed {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Feed::Empty => Ok(&[]),
            Feed::File(file) => file.fill_buf(),
            Feed::Bytes(bytes) => bytes.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Feed::Empty => {}
            Feed::File(file) => file.consume(amount),
            Feed::Bytes(bytes) => bytes.consume(amount),
        }
    }
}

/// Every member of a gzip file, one flate2 decoder reset between members
/// and between files.
pub struct Gunzip {
    member: GzDecoder<Feed>,
    /// A member failed: the stream is over (as `MultiGzDecoder`'s).
    failed: bool,
}

impl Gunzip {
    fn new() -> Gunzip {
        Gunzip {
            member: GzDecoder::new(Feed::Empty),
            failed: false,
        }
    }

    /// Starts on a new file.
    fn start(&mut self, feed: Feed) {
        self.member.reset(feed);
        self.failed = false;
    }

    /// Lets go of the file (closes it, frees its bytes).
    fn finish(&mut self) {
        self.member.reset(Feed::Empty);
    }
}

impl Read for Gunzip {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.failed {
            return Ok(0);
        }
        loop {
            match self.member.read(buf) {
                Ok(0) => {}
                Ok(n) => return Ok(n),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
            // A member ended cleanly: another follows if input is left.
            let more = match self.member.get_mut().fill_buf() {
                Ok(rest) => !rest.is_empty(),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            };
            if !more {
                return Ok(0);
            }
            let feed = std::mem::replace(self.member.get_mut(), Feed::Empty);
            self.member.reset(feed);
        }
    }
}

thread_local! {
    /// The decoder of this thread, between files.
    static DECODER: RefCell<Option<Gunzip>> = const { RefCell::new(None) };
}

/// Runs `read` over the uncompressed content of `feed` (a gzip file), with
/// this thread's decoder (a new one if the thread has none free).
pub fn with_gunzip<T>(feed: Feed, read: impl FnOnce(&mut Gunzip) -> T) -> T {
    let mut gunzip = DECODER
        .with(|slot| slot.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
        .unwrap_or_else(Gunzip::new);
    gunzip.start(feed);
    let result = read(&mut gunzip);
    gunzip.finish();
    DECODER.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(gunzip);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// What a reader gives: the bytes, and whether it ended in an error.
    fn drain(reader: &mut dyn Read) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (out, false),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return (out, true),
            }
        }
    }

    fn flate2_multi(input: &[u8]) -> (Vec<u8>, bool) {
        drain(&mut flate2::bufread::MultiGzDecoder::new(input))
    }

    fn ours(input: &[u8]) -> (Vec<u8>, bool) {
        with_gunzip(Feed::bytes(input.to_vec()), |g| drain(g))
    }

    #[test]
    fn reads_as_flate2_multi_member_decoder() {
        let a = gz(b"{\"Records\":[]}");
        let b = gz(&b"x".repeat(100_000));
        let empty = gz(b"");
        let mut corrupt = gz(b"hello world, hello world");
        let last = corrupt.len() - 5;
        corrupt[last] ^= 0xff; // the CRC
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("one member", a.clone()),
            ("two members", [a.clone(), b.clone()].concat()),
            (
                "an empty member between",
                [a.clone(), empty.clone(), b.clone()].concat(),
            ),
            ("garbage after a member", [a.clone(), b"garbage".to_vec()].concat()),
            ("truncated", b[..b.len() / 2].to_vec()),
            ("a bad CRC, then a member", [corrupt.clone(), a.clone()].concat()),
            ("not gzip", b"plain text".to_vec()),
            ("nothing", Vec::new()),
        ];
        for (what, input) in cases {
            assert_eq!(ours(&input), flate2_multi(&input), "{what}");
        }
    }

    #[test]
    fn the_decoder_is_reused_and_holds_nothing_between_files() {
        // A file that fails does not spoil the next one.
        assert!(ours(&gz(b"abc")[..10]).1);
        assert_eq!(ours(&gz(b"second file")), (b"second file".to_vec(), false));
        DECODER.with(|slot| {
            let slot = slot.borrow();
            let gunzip = slot.as_ref().expect("kept for the next file");
            assert!(matches!(gunzip.member.get_ref(), Feed::Empty));
        });
    }

    proptest! {
        #[test]
        fn generated_members_decode_as_flate2_does(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
            cut in proptest::option::of(0usize..2000),
            flip in proptest::option::of((0usize..2000, 1u8..=255)),
        ) {
            let mut input: Vec<u8> = parts.iter().flat_map(|p| gz(p)).collect();
            if let Some((at, bits)) = flip {
                let at = at % input.len();
                input[at] ^= bits;
            }
            if let Some(cut) = cut {
                input.truncate(cut % (input.len() + 1));
            }
            prop_assert_eq!(ours(&input), flate2_multi(&input));
        }
    }
}
